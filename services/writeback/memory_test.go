package writeback_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

// TestClientKeptUntilTheConnectionChanges: the directory client (its
// parsed CA certificates and TLS configuration, its pooled connections) and
// the connection document behind it are reused from request to request
// without reading the database, and replaced as soon as the connection is
// saved, here or by another process on the same database.
func TestClientKeptUntilTheConnectionChanges(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.db.SetConfigRecheck(time.Hour)
	save := func(wb *writeback.Service, version int64, url string) {
		t.Helper()
		if _, err := wb.SaveConnection(ctx, audit.CommandLine, version, writeback.Input{Type: directory.TypeAD, URLs: []string{url},
			CAPEM: testbed.SelfSignedCAPEM(t), BindDN: "CN=svc,DC=example,DC=com", BindPassword: "service password", BaseDNs: []string{"OU=People,DC=example,DC=com"},
			PasswordWriteback: true}); err != nil {
			t.Fatal(err)
		}
	}
	save(f.wb, 0, "ldaps://dc1.example.com")
	first, c, err := f.wb.Client(ctx)
	if err != nil || c.URLs[0] != "ldaps://dc1.example.com" {
		t.Fatalf("client: %v %v", c.URLs, err)
	}
	if _, err := f.wb.State(ctx); err != nil {
		t.Fatal(err)
	}
	reads := f.db.ConfigReads()
	for range 10 {
		cl, _, err := f.wb.Client(ctx)
		if err != nil || cl != first {
			t.Fatalf("a new client (%v) for an unchanged connection", err)
		}
		if st, err := f.wb.State(ctx); err != nil || !st.Configured {
			t.Fatalf("state %+v %v", st, err)
		}
	}
	if n := f.db.ConfigReads() - reads; n != 0 {
		t.Errorf("10 requests read the settings documents from the database %d times", n)
	}

	save(f.wb, 1, "ldaps://dc2.example.com")
	second, c, err := f.wb.Client(ctx)
	if err != nil || second == first || c.URLs[0] != "ldaps://dc2.example.com" {
		t.Errorf("after a save: same client %v, URLs %v, %v", second == first, c.URLs, err)
	}

	// A command on the same data folder (another DB, the same key) saves;
	// the server's next recheck of the versions finds it.
	other, err := store.Open(ctx, filepath.Join(filepath.Dir(dbPath(t, f)), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cmd := writeback.New(other, settings.New(other), keyring.New(make([]byte, 32)), slog.New(slog.DiscardHandler))
	defer cmd.Close()
	save(cmd, 2, "ldaps://dc3.example.com")
	f.db.SetConfigRecheck(0)
	third, c, err := f.wb.Client(ctx)
	if err != nil || third == second || c.URLs[0] != "ldaps://dc3.example.com" {
		t.Errorf("after another process's save: same client %v, URLs %v, %v", third == second, c.URLs, err)
	}
}

// dbPath is the file of the fixture's database.
func dbPath(t *testing.T, f fixture) string {
	t.Helper()
	var seq int
	var name, file string
	if err := f.db.SQL().QueryRow(`PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		t.Fatal(err)
	}
	return file
}
