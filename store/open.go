package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// OpenError is why OpenDatabase could not open a database: where (the
// server's host and port and the database, or the SQLite file) and the
// reason, in words an operator can act on. It never holds a password.
type OpenError struct {
	Where  string // e.g. "PostgreSQL at db.example.com:5432 (database writeback)"
	Reason string // e.g. "password authentication failed for user \"portal\""
	err    error
}

func (e *OpenError) Error() string { return "cannot open the database: " + e.Where + ": " + e.Reason }

// Unwrap returns the driver's error (its text holds no password either).
func (e *OpenError) Unwrap() error { return e.err }

// OpenDatabase opens the database that databaseURL names: "" is the SQLite
// file FileName in dataDir (what a single machine uses); a postgres:// or
// postgresql:// URL is a PostgreSQL 15 or later database that several
// replicas share (e.g. postgres://portal:secret@db.example.com/writeback?sslmode=verify-full).
// Anything else, an unreachable server and a failed login are an
// *OpenError naming the host and the reason, never the password.
func OpenDatabase(ctx context.Context, databaseURL, dataDir string) (*DB, error) {
	if databaseURL == "" {
		return Open(ctx, filepath.Join(dataDir, FileName))
	}
	return OpenPostgres(ctx, databaseURL)
}

// OpenPostgres opens the PostgreSQL database of a postgres:// or
// postgresql:// URL (OpenDatabase).
func OpenPostgres(ctx context.Context, databaseURL string) (*DB, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		// url.Error quotes the URL, and its reasons quote pieces of it (a
		// password with a / in it reads as the host's port): name none.
		return nil, &OpenError{Where: "the database URL", Reason: "not a valid URL (characters such as @ : / % in the " +
			"user name or password must be %-encoded, e.g. %40 for @)"}
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return nil, &OpenError{Where: "the database URL", Reason: fmt.Sprintf(
			"scheme %q is not supported: want postgres:// or postgresql:// (or no URL for SQLite in the data folder)", u.Scheme)}
	}
	password, _ := u.User.Password()
	where := describe(u)
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		// pgconn's parse errors redact the password; scrub it anyway.
		// Only the why: its preamble quotes the URL.
		reason := err.Error()
		if i := strings.Index(reason, "`: "); strings.HasPrefix(reason, "cannot parse `") && i > 0 {
			reason = reason[i+3:]
		}
		return nil, &OpenError{Where: where, Reason: "invalid URL: " + scrub(reason, password)}
	}
	if cfg.ConnectTimeout == 0 {
		// Without one a server that drops packets holds the start for
		// minutes; connect_timeout in the URL overrides it.
		cfg.ConnectTimeout = 10 * time.Second
	}
	sdb := stdlib.OpenDB(*cfg)
	sdb.SetMaxOpenConns(16)
	sdb.SetMaxIdleConns(16)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := sdb.PingContext(ctx); err != nil {
		sdb.Close()
		return nil, &OpenError{Where: where, Reason: scrub(pgReason(err), password), err: err}
	}
	var version int
	if err := sdb.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		sdb.Close()
		return nil, &OpenError{Where: where, Reason: scrub(pgReason(err), password), err: err}
	}
	if version < 150000 {
		sdb.Close()
		return nil, &OpenError{Where: where, Reason: fmt.Sprintf("PostgreSQL %d.%d is too old: writeback needs 15 or later", version/10000, version%10000)}
	}
	return newDB(sdb, enginePostgres), nil
}

// describe names a PostgreSQL URL's server and database without its
// credentials.
func describe(u *url.URL) string {
	host := u.Host
	if host == "" {
		host = "localhost"
	}
	if u.Port() == "" && !strings.Contains(host, ",") {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "5432")
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = u.User.Username()
	}
	if db == "" {
		return "PostgreSQL at " + host
	}
	return "PostgreSQL at " + host + " (database " + db + ")"
}

// pgReason is the part of a connection error an operator acts on: the
// server's message (a failed login, an unknown database), or what went wrong
// on the network, without pgconn's preamble.
func pgReason(err error) string {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pe.Message
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "no answer in time (" + err.Error() + ")"
	case errors.As(err, &errno) && errno == syscall.ECONNREFUSED:
		return "connection refused (is PostgreSQL running and listening there?)"
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return "no answer in time (a firewall, or the wrong host?)"
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		return "cannot resolve the host name (" + de.Err + ")"
	}
	// The innermost error is the reason itself; the outer ones repeat the
	// user and database already named.
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// scrub removes secret from s: no error text should hold a password, and
// this makes sure of it whatever a driver writes.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "xxxxx")
	if esc := url.QueryEscape(secret); esc != secret {
		s = strings.ReplaceAll(s, esc, "xxxxx")
	}
	return s
}
