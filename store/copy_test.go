package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/writeback/writeback/testbed"
)

// fillEveryTable puts rows in every table of a SQLite database: the audit
// log through the store (thousands of events, a prune for its anchor, a
// verification for its checkpoint, a forwarder cursor), the rest as rows a
// portal would hold. A table a new migration adds must get rows here, or
// TestCopyToPostgres fails: that is how db copy is kept covering everything.
func fillEveryTable(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO admins (id, email, name, role, password_hash, disabled, created_ms, updated_ms) VALUES
			(1, 'ada@example.com', 'Ada', 'global-admin', '$argon2id$x', 0, 1000, 1000),
			(7, 'Bob@Example.com', 'Bøb Ünïcode', 'helpdesk-admin', '$argon2id$y', 1, 2000, 3000)`,
		`INSERT INTO admin_sessions (id_hash, admin_id, created_ms, last_seen_ms, client_ip, user_agent) VALUES ('s1', 1, 1000, 2000, '10.0.0.1', 'Firefox')`,
		`INSERT INTO admin_factors (id, admin_id, kind, name, secret, credential_id, created_ms, last_used_ms, last_step) VALUES
			(3, 1, 'totp', 'Phone', 'sealed-secret', '', 1000, 1500, 42), (4, 1, 'passkey', 'Key', 'sealed-cred', 'cred-id', 1000, 0, 0)`,
		`INSERT INTO admin_recovery_codes (admin_id, code_hash, created_ms, used_ms) VALUES (1, '` + strings.Repeat("a", 64) + `', 1000, NULL)`,
		`INSERT INTO admin_reset_tokens (token_hash, admin_id, created_ms, expires_ms, used_ms) VALUES ('` + strings.Repeat("b", 64) + `', 7, 1000, 2000, NULL)`,
		`INSERT INTO admin_signins (id_hash, admin_id, stage, created_ms, expires_ms) VALUES ('` + strings.Repeat("c", 64) + `', 1, 'factor', 1000, 2000)`,
		`INSERT INTO admin_enrol_required (admin_id, since_ms) VALUES (7, 1000)`,
		`INSERT INTO setup_tokens (token_hash, created_ms, expires_ms, used_ms) VALUES ('t1', 1000, 2000, 1500)`,
		`INSERT INTO key_check (id, value, created_ms) VALUES (1, '` + strings.Repeat("d", 64) + `', 1000)`,
		`INSERT INTO replicas (id, host, started_ms, seen_ms) VALUES ('r-old', 'portal1', 1000, 2000)`,
		`INSERT INTO leases (name, holder, acquired_ms, expires_ms) VALUES ('background', 'r-old', 1000, 2000)`,
		`INSERT INTO rate_counts (key, window_ms, count) VALUES ('public|10.0.0.1', 60000, 3)`,
		`INSERT INTO config (name, value, version, updated_ms, updated_by) VALUES ('directory', '{"url":"ldaps://dc1"}', 3, 1000, 'ada'),
			('sspr', '{"methods":["email","app"],"required":1}', 2, 1000, 'cli')`,
		`INSERT INTO signin_attempts (id, bucket, key, time_ms, pending) VALUES (5, 'admin-address', '10.0.0.1', 1000, 0)`,
		`INSERT INTO sspr_flows (id, kind, browser_hash, login, user_id, user_dn, eligible, verified, state, correlation_id, created_ms, expires_ms, done_ms, account)
			VALUES ('f1', 'reset', 'bh', 'alice', 'u-alice', 'CN=Alice,DC=example,DC=com', 1, '["email"]', '{}', 'corr', 1000, 2000, NULL, 'alice')`,
		`INSERT INTO sspr_codes (id, flow_id, purpose, user_id, destination, code_hash, created_ms, expires_ms, tries, used_ms, voided)
			VALUES (9, 'f1', 'email', 'u-alice', 'dest', 'ch', 1000, 2000, 1, NULL, 0)`,
		`INSERT INTO sspr_methods (user_id, method, secret, confirmed_ms, last_step) VALUES ('u-alice', 'email', 'sealed', 1000, 0), ('u-alice', 'app', 'sealed2', 1000, 7)`,
		`INSERT INTO sspr_passkeys (credential_id, user_id, name, secret, created_ms, last_used_ms) VALUES ('cred-1', 'u-alice', 'Phone', 'sealed3', 1000, 1500)`,
		`INSERT INTO sspr_failures (rowid, user_id, time_ms, pending) VALUES (11, 'u-alice', 1000, 0), (12, 'u-alice', 1100, 1)`,
		`INSERT INTO sspr_blocks (user_id, until_ms) VALUES ('u-bob', 99999)`,
		`INSERT INTO sspr_challenges_spent (id, expires_ms) VALUES ('spent-1', 99999)`,
		`INSERT INTO sspr_address_attempts (address, time_ms) VALUES ('addr-1', 1000), ('addr-1', 1100)`,
		`INSERT INTO sms_sends (id, user_key, number, client, sent, time_ms) VALUES (21, 'k-alice', 'n-1', 'c-1', 1, 1000), (22, 'k-ghost', '', 'c-1', 0, 1100)`,
		`INSERT INTO sspr_phones (user_id, number, confirmed_ms) VALUES ('u-alice', 'sealed-number', 1000)`,
		`INSERT INTO agents (id, name, sign_key, seal_key, enrolled_ms, enrolled_by, configured, password_writeback)
			VALUES ('agent-0123456789abcdef', 'Branch', x'` + strings.Repeat("01", 32) + `', x'` + strings.Repeat("02", 32) + `', 1000, 'ada', 1, 1)`,
		`INSERT INTO agent_tokens (token_hash, name, created_by, created_ms, expires_ms, used_ms, agent_id) VALUES ('` + strings.Repeat("d", 64) + `', 'Branch', 'ada', 1000, 2000, 1500, 'agent-0123456789abcdef')`,
		`INSERT INTO agent_ops (agent_id, minute_ms, ops) VALUES ('agent-0123456789abcdef', 60000, 12)`,
		`INSERT INTO agent_links (agent_id, replica, connected_ms, heartbeat_ms, remote_addr) VALUES ('agent-0123456789abcdef', 'local', 1000, 1500, '198.51.100.9')`,
		`INSERT INTO api_tokens (id, token_hash, name, role, created_by, created_ms, expires_ms, last_used_ms, last_used_ip, revoked_ms, revoked_by)
			VALUES (3, '` + strings.Repeat("e", 64) + `', 'Deploy', 'global-admin', 'ada', 1000, 9000, 2000, '192.0.2.1', 3000, 'bob'),
			(4, '` + strings.Repeat("f", 64) + `', 'Deploy', 'reports-reader', 'ada', 4000, 9000, NULL, '', NULL, '')`,
		`INSERT INTO expiry_reminders (user_id, threshold_days, password_set_ms, sent_ms) VALUES ('u-alice', 14, 1000, 2000), ('u-alice', 7, 1000, 3000)`,
		`INSERT INTO campaign_runs (id, state, started_ms, started_by, ended_ms, in_scope, not_registered, reconfirm_due)
			VALUES (5, 'finished', 1000, 'Ada', 2000, 40, 12, 3), (6, 'sending', 3000, 'Writeback', 0, 41, 11, 3)`,
		`INSERT INTO campaign_queue (run_id, seq, user_id, login, name, email, why, state, reason, updated_ms)
			VALUES (5, 0, 'u-alice', 'alice', 'Alice', '', 'register', 'sent', '', 1500),
			(6, 0, 'u-bob', 'bob', 'Bob Ø', 'bob@example.com', 'reconfirm', 'queued', '', 3000)`,
		`INSERT INTO registration_scope (id, as_of_ms, in_scope, not_registered, reconfirm_due) VALUES (1, 3000, 41, 11, 3)`,
	} {
		if _, err := db.sql.ExecContext(ctx, q); err != nil {
			t.Fatalf("%v: %s", err, q)
		}
	}
	// The audit log: events in a few transactions, odd text included.
	for batch := range 6 {
		err := db.InTx(ctx, func(tx *Tx) error {
			for i := range 500 {
				e := AuditEvent{TimeMS: int64(1000 + batch*500 + i), Category: "UserManagement", Activity: "Reset password (self-service)",
					ActorType: "user", ActorID: fmt.Sprint("u", i), ActorName: "Zoë \"Q\" <x>&\n", TargetDN: "CN=Zoë,DC=example,DC=com",
					Result: "success", Details: fmt.Sprintf(`{"n":%d,"note":"ü\n"}`, i)}
				if err := tx.AppendAudit(ctx, &e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.PruneAudit(ctx, 1100, AuditActor{Type: "system", ID: "system", Name: "Writeback"}); err != nil {
		t.Fatal(err)
	}
	if res, err := db.VerifyAudit(ctx); err != nil || !res.OK {
		t.Fatalf("verify the source: %+v %v", res, err)
	}
	if _, err := db.EnsureForwardCursor(ctx, "syslog"); err != nil {
		t.Fatal(err)
	}
}

// tableRows returns every row of table, each as text, sorted: the columns
// PostgreSQL has (SQLite's implicit rowid included), so the two compare.
func tableRows(t *testing.T, db *DB, table string, cols []string) []string {
	t.Helper()
	rows, err := db.sql.Query(`SELECT ` + strings.Join(cols, ", ") + ` FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range vals {
			switch x := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "%x|", x)
			case string:
				// A TEXT column SQLite hands back as string; a BLOB as []byte
				// on both sides.
				fmt.Fprintf(&b, "%q|", x)
			case int32:
				fmt.Fprintf(&b, "%d|", x)
			case nil:
				b.WriteString("NULL|")
			default:
				fmt.Fprintf(&b, "%v|", x)
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestCopyToPostgres: every table of a SQLite database whose every table
// holds rows is copied, row for row, into PostgreSQL; the audit chain
// verifies there; PostgreSQL numbers new rows after the copied IDs; and a
// second copy into the now non-empty database is refused and changes
// nothing.
func TestCopyToPostgres(t *testing.T) {
	ctx := context.Background()
	src, err := Open(ctx, filepath.Join(t.TempDir(), FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fillEveryTable(t, src)
	tables, err := queryStrings(ctx, src.sql, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> 'schema_migrations' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		var n int
		if err := src.sql.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil || n == 0 {
			t.Errorf("table %s has no rows in the fixture (%v): add some to fillEveryTable, so that db copy is tested on it", table, err)
		}
	}

	dst, err := OpenPostgres(ctx, testbed.NewPostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var heard []string
	copied, err := src.CopyTo(ctx, dst, func(c CopiedTable) { heard = append(heard, c.Name) })
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range copied {
		names = append(names, c.Name)
	}
	if !slices.Equal(heard, names) {
		t.Errorf("progress heard %v, copied %v", heard, names)
	}
	if slices.Sort(names); !slices.Equal(names, tables) {
		t.Fatalf("copied %v, want every table %v", names, tables)
	}
	// Foreign keys: a table comes after what it refers to.
	pos := map[string]int{}
	for i, c := range copied {
		pos[c.Name] = i
	}
	for _, pair := range [][2]string{{"admins", "admin_sessions"}, {"admins", "admin_factors"}, {"sspr_flows", "sspr_codes"}, {"agents", "agent_tokens"}, {"agents", "agent_ops"}, {"agents", "agent_links"}} {
		if pos[pair[0]] > pos[pair[1]] {
			t.Errorf("%s copied after %s, which refers to it", pair[0], pair[1])
		}
	}
	for _, table := range tables {
		cols, err := queryStrings(ctx, dst.sql, `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`, table)
		if err != nil {
			t.Fatal(err)
		}
		a, b := tableRows(t, src, table, cols), tableRows(t, dst, table, cols)
		if !slices.Equal(a, b) {
			t.Errorf("%s differs after the copy:\nSQLite:     %.300q\nPostgreSQL: %.300q", table, a, b)
		}
	}
	if res, err := dst.VerifyAudit(ctx); err != nil || !res.OK || res.Checked < 2900 || res.AnchorID == 0 {
		t.Errorf("verify the copy: %+v %v", res, err)
	}
	// New rows are numbered after the copied ones.
	var id int64
	if err := dst.sql.QueryRow(`INSERT INTO admins (email, name, role, password_hash, created_ms, updated_ms) VALUES ('new@example.com', 'New', 'reports-reader', 'x', 1, 1) RETURNING id`).Scan(&id); err != nil || id <= 7 {
		t.Errorf("a new administrator after the copy: id %d, %v", id, err)
	}
	if err := dst.sql.QueryRow(`INSERT INTO campaign_runs (state, started_ms, started_by) VALUES ('finished', 1, 'x') RETURNING id`).Scan(&id); err != nil || id <= 6 {
		t.Errorf("a new campaign run after the copy: id %d, %v", id, err)
	}
	if err := dst.sql.QueryRow(`INSERT INTO sspr_failures (user_id, time_ms) VALUES ('u', 1) RETURNING rowid`).Scan(&id); err != nil || id <= 12 {
		t.Errorf("a new failure after the copy: rowid %d, %v", id, err)
	}
	if err := dst.InTx(ctx, func(tx *Tx) error {
		return tx.AppendAudit(ctx, &AuditEvent{Category: "Policy", Activity: "x", Result: "success"})
	}); err != nil {
		t.Fatal(err)
	}
	if res, err := dst.VerifyAudit(ctx); err != nil || !res.OK {
		t.Errorf("verify after appending to the copy: %+v %v", res, err)
	}

	if seeded, err := seededTables(); err != nil || !seeded["data_versions"] || seeded["admins"] {
		t.Errorf("tables the migrations seed: %v %v", seeded, err)
	}

	// Again into the same, now full, database: refused, nothing changed.
	var before, after int
	count := `SELECT (SELECT count(*) FROM audit_events) + (SELECT count(*) FROM admins)`
	if err := dst.sql.QueryRow(count).Scan(&before); err != nil {
		t.Fatal(err)
	}
	_, err = src.CopyTo(ctx, dst, nil)
	var ne *NotEmptyError
	if !errors.Is(err, ErrTargetNotEmpty) || !errors.As(err, &ne) || !slices.Contains(ne.Tables, "admins") {
		t.Fatalf("copy into a full database: %v", err)
	}
	if err := dst.sql.QueryRow(count).Scan(&after); err != nil || after != before {
		t.Errorf("rows %d before the refused copy, %d after (%v)", before, after, err)
	}
}
