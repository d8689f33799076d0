package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/jackc/pgx/v5"
)

// GenerateAudit appends n realistic, correctly chained audit events spread
// evenly over [startMS, endMS), in transactions of batch events, bypassing
// AppendAudit's per-event head lookup. The tests and the benchmark (package
// store_test) share it.
func GenerateAudit(ctx context.Context, db *DB, n int, startMS, endMS int64, seed uint64) error {
	const batch = 20_000
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &eventGen{r: r}
	var lastID int64
	var lastHash string
	err := db.InTx(ctx, func(tx *Tx) error {
		err := tx.tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0), coalesce((SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1), '') FROM audit_events`).Scan(&lastID, &lastHash)
		if err == nil && lastID == 0 {
			lastID, lastHash, err = tx.chainAnchor(ctx)
		}
		return err
	})
	if err != nil {
		return err
	}
	step := float64(endMS-startMS) / float64(n)
	if db.engine == enginePostgres {
		return generatePostgres(ctx, db, n, g, startMS, step, lastID, lastHash)
	}
	for done := 0; done < n; {
		err := db.InTx(ctx, func(tx *Tx) error {
			st, err := tx.tx.PrepareContext(ctx, `INSERT INTO audit_events (id, time_ms, category, activity, actor_type, actor_id, actor_name,
				target_type, target_id, target_dn, target_name, result, reason, client_ip, user_agent, correlation_id, details, prev_hash, hash)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer st.Close()
			for i := 0; i < batch && done < n; i++ {
				e := g.next()
				e.ID = lastID + 1
				e.TimeMS = startMS + int64(float64(done)*step) + int64(r.IntN(max(int(step), 1)))
				e.PrevHash = lastHash
				e.Hash = ContentHash(e)
				if _, err := st.ExecContext(ctx, e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
					e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
					e.ClientIP, e.UserAgent, e.CorrelationID, e.Details, e.PrevHash, e.Hash); err != nil {
					return err
				}
				lastID, lastHash = e.ID, e.Hash
				done++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("generate audit: %w", err)
		}
	}
	return nil
}

// generatePostgres is GenerateAudit's loop on PostgreSQL: one COPY per
// batch, which takes a million events in seconds where row-by-row INSERTs
// took minutes on a loaded machine.
func generatePostgres(ctx context.Context, db *DB, n int, g *eventGen, startMS int64, step float64, lastID int64, lastHash string) error {
	cols := strings.Fields(strings.NewReplacer(",", " ").Replace(auditCols))
	for done := 0; done < n; {
		size := min(n-done, 20_000)
		i := 0
		// Made as COPY asks for them: no batch of rows in memory.
		next := func() ([]any, error) {
			e := g.next()
			e.ID = lastID + 1
			e.TimeMS = startMS + int64(float64(done+i)*step) + int64(g.r.IntN(max(int(step), 1)))
			e.PrevHash = lastHash
			e.Hash = ContentHash(e)
			lastID, lastHash = e.ID, e.Hash
			i++
			return []any{e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
				e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
				e.ClientIP, e.UserAgent, e.CorrelationID, e.Details, e.PrevHash, e.Hash}, nil
		}
		err := db.InTx(ctx, func(tx *Tx) error {
			if tx.head != nil {
				tx.head.known = false
			}
			return tx.pgx(ctx, func(c *pgx.Conn) error {
				_, err := c.CopyFrom(ctx, pgx.Identifier{"audit_events"}, cols, pgx.CopyFromFunc(func() ([]any, error) {
					if i == size {
						return nil, nil
					}
					return next()
				}))
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("generate audit: %w", err)
		}
		done += size
	}
	return nil
}

type eventGen struct {
	r           *rand.Rand
	corr        string
	corrLeft    int
	corrUser    int
	corrCounter int
}

var firstNames = []string{"Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kim", "Lena", "Marek", "Nora", "Omar", "Pia"}
var lastNames = []string{"Schmidt", "Smith", "Nguyen", "García", "Müller", "Kowalski", "Okafor", "Rossi", "Tanaka", "Dubois", "Jensen", "Silva"}
var agents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
}

const genUsers, genAdmins = 5000, 20

func userName(u int) string {
	return firstNames[u%len(firstNames)] + " " + lastNames[(u/len(firstNames))%len(lastNames)] + fmt.Sprintf(" %d", u)
}

func (g *eventGen) user() (id, name, dn string) {
	u := g.r.IntN(genUsers)
	name = userName(u)
	return fmt.Sprintf("u%05d", u), name, "CN=" + name + ",OU=Staff,DC=corp,DC=example"
}

func (g *eventGen) admin() (id, name string) {
	a := g.r.IntN(genAdmins)
	return fmt.Sprintf("%d", a+1), fmt.Sprintf("Admin %s", lastNames[a%len(lastNames)]+fmt.Sprint(a))
}

func details(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// next makes one event: a self-service attempt is several events sharing a
// correlation ID; the rest are administrator work and sign-ins.
func (g *eventGen) next() AuditEvent {
	r := g.r
	e := AuditEvent{
		ClientIP:  fmt.Sprintf("10.%d.%d.%d", r.IntN(4), r.IntN(256), 1+r.IntN(254)),
		UserAgent: agents[r.IntN(len(agents))],
		Result:    "success", Details: "{}",
	}
	if g.corrLeft > 0 {
		g.corrLeft--
		uid := fmt.Sprintf("u%05d", g.corrUser)
		name := userName(g.corrUser)
		e.Category, e.ActorType, e.ActorID, e.ActorName = "UserManagement", "user", uid, name
		e.TargetType, e.TargetID, e.TargetName = "User", uid, name
		e.TargetDN = "CN=" + name + ",OU=Staff,DC=corp,DC=example"
		e.CorrelationID = g.corr
		switch {
		case g.corrLeft > 0:
			e.Activity = "Self-service password reset flow activity progress"
			e.Details = details(map[string]any{"step": []string{"identify", "verify-email", "verify-sms", "questions"}[r.IntN(4)]})
			if r.IntN(10) == 0 {
				e.Result, e.Reason = "failure", "wrong verification code"
			}
		default:
			switch p := r.IntN(100); {
			case p < 60:
				e.Activity = "Reset password (self-service)"
			case p < 85:
				e.Activity = "Unlock user account (self-service)"
			default:
				e.Activity = "Change password (self-service)"
			}
			e.Details = details(map[string]any{"server": fmt.Sprintf("dc%d.corp.example", 1+r.IntN(3)), "ldap_result": 0})
			if r.IntN(12) == 0 {
				e.Result, e.Reason = "failure", "password does not meet the domain policy"
				e.Details = details(map[string]any{"server": "dc1.corp.example", "ldap_result": 19,
					"diagnostic": "0000052D: Constraint violation - check_password_restrictions"})
			}
		}
		return e
	}
	switch p := r.IntN(100); {
	case p < 55: // start a self-service attempt of 2-5 events
		g.corrCounter++
		g.corr = fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), 0x8000|r.IntN(1<<14), r.Uint64()&(1<<48-1))
		g.corrUser = r.IntN(genUsers)
		g.corrLeft = 2 + r.IntN(4)
		return g.next()
	case p < 70:
		id, name := g.admin()
		e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName = "Authentication", "Administrator sign-in", "admin", id, name
		e.TargetType, e.TargetID, e.TargetName = "Administrator", id, name
		if r.IntN(8) == 0 {
			e.Result, e.Reason = "failure", "invalid credentials"
		}
	case p < 76:
		id, name := g.admin()
		e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName = "Authentication", "Administrator sign-out", "admin", id, name
		e.TargetType, e.TargetID, e.TargetName = "Administrator", id, name
	case p < 86:
		id, name := g.admin()
		e.Category, e.ActorType, e.ActorID, e.ActorName = "UserManagement", "admin", id, name
		e.TargetType = "User"
		e.TargetID, e.TargetName, e.TargetDN = g.user()
		if r.IntN(3) == 0 {
			e.Activity = "Unlock user account (by admin)"
		} else {
			e.Activity = "Reset password (by admin)"
		}
		e.Details = details(map[string]any{"server": "dc2.corp.example", "ldap_result": 0, "must_change": true})
		if r.IntN(15) == 0 {
			e.Result, e.Reason = "failure", "insufficient access rights"
			e.Details = details(map[string]any{"server": "dc2.corp.example", "ldap_result": 50, "diagnostic": "00002098: SecErr: DSID-03150F94"})
		}
	case p < 93:
		e.Category, e.Activity, e.ActorType = "UserManagement", "User registered security info", "user"
		e.ActorID, e.ActorName, e.TargetDN = g.user()
		e.TargetType, e.TargetID, e.TargetName = "User", e.ActorID, e.ActorName
		e.Details = details(map[string]any{"methods": []string{"email", "sms"}})
	case p < 96:
		e.Category, e.Activity, e.ActorType, e.Result = "UserManagement", "Blocked from self-service password reset", "anonymous", "failure"
		e.TargetType = "User"
		e.TargetID, e.TargetName, e.TargetDN = g.user()
		e.Reason = "too many attempts"
	case p < 98:
		id, name := g.admin()
		e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName = "DirectoryManagement", "Test directory connection", "admin", id, name
		e.TargetType, e.TargetID, e.TargetName = "Directory", "corp", "corp.example"
		if r.IntN(5) == 0 {
			e.Result, e.Reason = "failure", "ldaps://dc1.corp.example:636: connection refused"
		}
	default:
		id, name := g.admin()
		e.ActorType, e.ActorID, e.ActorName = "admin", id, name
		switch r.IntN(4) {
		case 0:
			e.Category, e.Activity = "Policy", "Update self-service password reset policy"
			e.TargetType, e.TargetID, e.TargetName = "Policy", "sspr", "Self-service password reset"
			e.Details = details(map[string]any{"methods_required": map[string]any{"old": 1, "new": 2}})
		case 1:
			e.Category, e.Activity = "DirectoryManagement", "Update directory connection"
			e.TargetType, e.TargetID, e.TargetName = "Directory", "corp", "corp.example"
			e.Details = details(map[string]any{"servers": map[string]any{"old": []string{"dc1"}, "new": []string{"dc1", "dc2"}}})
		case 2:
			e.Category, e.Activity = "RoleManagement", "Update administrator"
			e.TargetType, e.TargetID, e.TargetName = "Administrator", "7", "Admin Rossi7"
			e.Details = details(map[string]any{"role": map[string]any{"old": "reports-reader", "new": "helpdesk-admin"}})
		default:
			e.Category, e.Activity = "DirectoryManagement", "Enable password writeback for directory"
			e.TargetType, e.TargetID, e.TargetName = "Directory", "corp", "corp.example"
		}
	}
	return e
}
