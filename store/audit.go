package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// AuditEvent is one row of the audit log.
type AuditEvent struct {
	ID            int64
	TimeMS        int64
	Category      string
	Activity      string
	ActorType     string // admin, user, system, cli, anonymous
	ActorID       string
	ActorName     string
	TargetType    string
	TargetID      string
	TargetDN      string
	TargetName    string
	Result        string // success, failure
	Reason        string
	ClientIP      string
	UserAgent     string
	CorrelationID string
	Details       string // JSON object
	PrevHash      string
	Hash          string
}

// GenesisHash is the previous-hash of the first event in an unpruned log.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ContentHash returns the chain hash of an event: SHA-256 over the previous
// hash and a canonical JSON array of every recorded field, in a fixed order:
// exactly the bytes json.Marshal gives for
//
//	[]any{e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
//		e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
//		e.ClientIP, e.UserAgent, e.CorrelationID, e.Details}
//
// written without reflection (a full verification hashes every event;
// json.Marshal was a third of its time).
func ContentHash(e AuditEvent) string {
	var buf [1024]byte
	b := append(buf[:0], e.PrevHash...)
	b = append(b, '[')
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, e.TimeMS, 10)
	for _, s := range [...]string{e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
		e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
		e.ClientIP, e.UserAgent, e.CorrelationID, e.Details} {
		b = append(b, ',')
		b = appendJSONString(b, s)
	}
	b = append(b, ']')
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// appendJSONString appends s as json.Marshal writes a string. Printable
// ASCII other than the characters it escapes (" \ and, HTML-safe, < > &)
// goes as it is; anything else takes json.Marshal itself, so the bytes stay
// the same by construction (FuzzContentHash compares the two).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendAudit appends an event inside the caller's transaction, chaining its
// hash to the newest event. It fills ID, TimeMS (when zero), PrevHash and Hash.
func (tx *Tx) AppendAudit(ctx context.Context, e *AuditEvent) error {
	if e.TimeMS == 0 {
		e.TimeMS = tx.db.nowMS()
	}
	if e.Details == "" {
		e.Details = "{}"
	}
	if e.ActorType == "" {
		e.ActorType = "system"
	}
	if tx.db.engine == enginePostgres {
		e.storableText()
	}
	var lastID int64
	var lastHash string
	head, ins, err := tx.db.auditStatements(ctx)
	if err != nil {
		return fmt.Errorf("store: append audit event: %w", err)
	}
	st := tx.tx.state
	if st != nil {
		ctx = context.WithoutCancel(ctx) // as every statement of a batch (txState)
	}
	if h := tx.head; h != nil && h.known {
		lastID, lastHash = h.id, h.hash
	} else {
		err = tx.tx.StmtContext(ctx, head).QueryRowContext(ctx).Scan(&lastID, &lastHash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			lastID, lastHash, err = tx.chainAnchor(ctx)
			if err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("store: append audit event: read chain head: %w", err)
		}
	}
	e.ID = lastID + 1
	e.PrevHash = lastHash
	e.Hash = ContentHash(*e)
	args := []any{e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
		e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
		e.ClientIP, e.UserAgent, e.CorrelationID, e.Details, e.PrevHash, e.Hash}
	if st != nil && st.savepoint != "" {
		// The fn's savepoint and its first append in one round trip: two
		// statements in one simple-protocol query (pgx quotes the values).
		sp := st.savepoint
		st.savepoint = ""
		_, err = tx.tx.Tx.ExecContext(ctx, `SAVEPOINT `+sp+`; `+tx.db.engine.bind(auditInsertSQL),
			append([]any{pgx.QueryExecModeSimpleProtocol}, args...)...)
	} else {
		_, err = tx.tx.Tx.StmtContext(ctx, ins).ExecContext(ctx, args...)
	}
	if err != nil {
		return fmt.Errorf("store: append audit event: %w", err)
	}
	if tx.head != nil {
		*tx.head = chainHead{known: true, id: e.ID, hash: e.Hash}
	}
	tx.appended = append(tx.appended, *e)
	return nil
}

// storableText replaces what PostgreSQL refuses in text, NUL and invalid
// UTF-8, with U+FFFD, before the event is hashed: an event that quotes odd
// bytes (a directory's diagnostic, a typed name) is recorded as SQLite would
// record it, but for those bytes, instead of failing the change it records.
func (e *AuditEvent) storableText() {
	for _, p := range []*string{&e.Category, &e.Activity, &e.ActorType, &e.ActorID, &e.ActorName, &e.TargetType,
		&e.TargetID, &e.TargetDN, &e.TargetName, &e.Result, &e.Reason, &e.ClientIP, &e.UserAgent, &e.CorrelationID, &e.Details} {
		if !utf8.ValidString(*p) || strings.IndexByte(*p, 0) >= 0 {
			*p = strings.ReplaceAll(strings.ToValidUTF8(*p, "\uFFFD"), "\x00", "\uFFFD")
		}
	}
}

// chainAnchor returns the ID and hash the first event of an empty table
// chains to: the last event removed by the newest prune, or ID 0 and
// GenesisHash when the log was never pruned. Continuing from the anchor's ID
// keeps IDs unique for ever, so an exported or forwarded event is never
// confused with a later one.
func (tx *Tx) chainAnchor(ctx context.Context) (int64, string, error) {
	a, err := latestAnchor(ctx, tx.tx)
	if err != nil {
		return 0, "", fmt.Errorf("store: append audit event: %w", err)
	}
	return a.ID, a.Hash, nil
}

const auditCols = `id, time_ms, category, activity, actor_type, actor_id, actor_name, target_type, target_id, target_dn,
	target_name, result, reason, client_ip, user_agent, correlation_id, details, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (AuditEvent, error) {
	var e AuditEvent
	err := row.Scan(&e.ID, &e.TimeMS, &e.Category, &e.Activity, &e.ActorType, &e.ActorID, &e.ActorName,
		&e.TargetType, &e.TargetID, &e.TargetDN, &e.TargetName, &e.Result, &e.Reason,
		&e.ClientIP, &e.UserAgent, &e.CorrelationID, &e.Details, &e.PrevHash, &e.Hash)
	return e, err
}

// RecentAudit returns up to limit newest events, optionally of one activity.
func (db *DB) RecentAudit(ctx context.Context, activity string, limit int) ([]AuditEvent, error) {
	q := `SELECT ` + auditCols + ` FROM audit_events`
	args := []any{}
	if activity != "" {
		q += ` WHERE activity = ?`
		args = append(args, activity)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: recent audit: %w", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("store: recent audit: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// AppendAudit's two statements are prepared once per database through
// db.prepare (stmts.go; database/sql then prepares each once per pooled
// connection): modernc's SQLite parses every statement it is given as text
// anew, and parsing took a quarter of an append (0.26 → 0.20 ms p50 here).
const (
	auditHeadSQL   = `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`
	auditInsertSQL = `INSERT INTO audit_events (id, time_ms, category, activity, actor_type, actor_id, actor_name,
		target_type, target_id, target_dn, target_name, result, reason, client_ip, user_agent, correlation_id, details, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

func (db *DB) auditStatements(ctx context.Context) (head, insert *sql.Stmt, err error) {
	if head, err = db.prepare(ctx, auditHeadSQL); err != nil {
		return nil, nil, err
	}
	if insert, err = db.prepare(ctx, auditInsertSQL); err != nil {
		return nil, nil, err
	}
	return head, insert, nil
}
