package writeback_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
)

type fixture struct {
	db  *store.DB
	set *settings.Service
	wb  *writeback.Service
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	set := settings.New(db)
	wb := writeback.New(db, set, keyring.New(make([]byte, 32)), slog.New(slog.DiscardHandler))
	t.Cleanup(func() { wb.Close() })
	return fixture{db: db, set: set, wb: wb}
}

func (f fixture) version(t *testing.T) int64 {
	t.Helper()
	_, m, err := f.wb.Connection(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m.Version
}

func TestWithTypeDefaults(t *testing.T) {
	adGroups := directory.DefaultADExcludedGroups("DC=example,DC=com")
	ad := directory.Defaults(directory.TypeAD, "")
	ol := directory.Defaults(directory.TypeOpenLDAP, "")
	base := []string{"OU=People,DC=example,DC=com"}
	tests := []struct {
		name   string
		in     writeback.Input
		from   directory.Type
		groups []string
		attrs  []string
		filter string
	}{
		{"first AD save fills the protected groups", writeback.Input{Type: directory.TypeAD, BaseDNs: base}, "", adGroups, ad.LoginAttributes, ""},
		{"switch to AD replaces OpenLDAP's defaults", writeback.Input{Type: directory.TypeAD, BaseDNs: base,
			LoginAttributes: ol.LoginAttributes, UserFilter: ol.UserFilter}, directory.TypeOpenLDAP, adGroups, ad.LoginAttributes, ad.UserFilter},
		{"switch to AD keeps what the administrator chose", writeback.Input{Type: directory.TypeAD, BaseDNs: base,
			LoginAttributes: []string{"cn"}, UserFilter: "(cn=*)", ExcludedGroups: []string{"CN=G,DC=example,DC=com"}},
			directory.TypeOpenLDAP, []string{"CN=G,DC=example,DC=com"}, []string{"cn"}, "(cn=*)"},
		{"switch to OpenLDAP drops AD's defaults", writeback.Input{Type: directory.TypeOpenLDAP, BaseDNs: []string{"dc=x"},
			LoginAttributes: ad.LoginAttributes, UserFilter: ad.UserFilter, ExcludedGroups: adGroups},
			directory.TypeAD, nil, ol.LoginAttributes, ol.UserFilter},
		{"same type changes nothing", writeback.Input{Type: directory.TypeAD, BaseDNs: base}, directory.TypeAD, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := writeback.WithTypeDefaults(tt.in, tt.from)
			if !slices.Equal(got.ExcludedGroups, tt.groups) || !slices.Equal(got.LoginAttributes, tt.attrs) ||
				got.UserFilter != tt.filter || got.RecoveryEmailAttribute != "mail" {
				t.Errorf("got groups %q, attrs %q, filter %q, mail %q", got.ExcludedGroups, got.LoginAttributes, got.UserFilter, got.RecoveryEmailAttribute)
			}
		})
	}
}

// TestStoredPasswordStaysWithItsServer: a new server URL, other trusted CAs
// or another StartTLS setting need the service password again; nothing is
// saved without it.
func TestStoredPasswordStaysWithItsServer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	in := writeback.Input{Type: directory.TypeAD, URLs: []string{"ldaps://dc1.example.com", "ldap://dc2.example.com"}, StartTLS: true,
		BindDN: "CN=svc,DC=example,DC=com", BindPassword: "Service-Secret-1", BaseDNs: []string{"DC=example,DC=com"}}
	if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, in); err != nil {
		t.Fatal(err)
	}
	in.BindPassword = ""
	for _, tt := range []struct {
		name   string
		change func(*writeback.Input)
		retype bool
	}{
		{"new URL", func(in *writeback.Input) { in.URLs = []string{"ldaps://evil.example.net"} }, true},
		{"one more URL", func(in *writeback.Input) { in.URLs = append(slices.Clone(in.URLs), "ldaps://dc3.example.com") }, true},
		{"other port", func(in *writeback.Input) { in.URLs = []string{"ldaps://dc1.example.com:1636"} }, true},
		{"CA added", func(in *writeback.Input) { in.CAPEM = testbed.SelfSignedCAPEM(t) }, true},
		{"StartTLS off", func(in *writeback.Input) { in.StartTLS = false }, true},
		{"reordered", func(in *writeback.Input) { in.URLs = []string{"ldap://dc2.example.com", "LDAPS://DC1.example.com/"} }, false},
		{"a URL dropped", func(in *writeback.Input) { in.URLs = []string{"ldaps://dc1.example.com"} }, false},
		{"other base DN", func(in *writeback.Input) { in.BaseDNs = []string{"OU=People,DC=example,DC=com"} }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Each case starts from the first connection.
			start := in
			start.BindPassword = "Service-Secret-1"
			if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, f.version(t), start); err != nil {
				t.Fatal(err)
			}
			v := f.version(t)
			next := in
			tt.change(&next)
			_, err := f.wb.SaveConnection(ctx, audit.CommandLine, v, next)
			msg := errs.FieldsOf(err)["bind_password"]
			if tt.retype != strings.HasPrefix(msg, "Enter the service account password again: the server changed") {
				t.Fatalf("save: %v (bind_password %q)", err, msg)
			}
			if !tt.retype {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if f.version(t) != v {
				t.Fatal("a refused save changed the connection")
			}
			// With the password the same change is fine.
			next.BindPassword = "Service-Secret-2"
			if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, v, next); err != nil {
				t.Fatalf("save with the password: %v", err)
			}
		})
	}
}

func waitStatus(t *testing.T, f fixture, want settings.ServiceState, within time.Duration) settings.ServiceStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, err := f.set.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status still %s (%q) after %s; want %s", st.State, st.Message, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMonitorNoticesOutage: the DC goes away (a proxy in front of the test
// bed's DC is closed) and the writeback status turns to an error by itself:
// at once when a real operation runs into it, and on the monitor's next
// check otherwise; it turns back once the DC is there again.
func TestMonitorNoticesOutage(t *testing.T) {
	env := testbed.Load(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(env.AD.URL, "ldaps://"))
	host := env.AD.Host() // the DC's certificate names this address
	target := net.JoinHostPort(host, port)

	// setup saves a connection through a proxy to the DC and starts the
	// monitor; retry, when not zero, shortens its re-check while failing.
	setup := func(t *testing.T, interval, retry time.Duration) (fixture, *testbed.Proxy, testbed.TestUser) {
		f := newFixture(t)
		if retry > 0 {
			writeback.SetMonitorTimings(f.wb, retry, retry)
		}
		p := testbed.NewProxy(t, net.JoinHostPort(host, "0"), target)
		ctx := context.Background()
		if _, err := f.wb.SaveConnection(ctx, audit.CommandLine, 0, writeback.Input{Type: directory.TypeAD,
			URLs: []string{"ldaps://" + p.Addr}, CAPEM: env.CAPEM(), BindDN: env.AD.BindDN,
			BindPassword: env.AD.BindPassword, BaseDNs: []string{env.AD.PeopleDN}}); err != nil {
			t.Fatal(err)
		}
		u := env.NewADUser(t, testbed.UserOptions{})
		mctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { f.wb.Monitor(mctx, interval); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		waitStatus(t, f, settings.StateConnected, 10*time.Second)
		return f, p, u
	}

	t.Run("a failed operation", func(t *testing.T) {
		// The periodic check is far away: only the failed lookup can tell.
		f, p, u := setup(t, time.Hour, 0)
		if _, err := f.wb.Lookup(context.Background(), u.Login); err != nil {
			t.Fatalf("lookup while the DC is there: %v", err)
		}
		p.Stop()
		_, err := f.wb.Lookup(context.Background(), u.Login)
		if errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("lookup with the DC gone: %v", err)
		}
		st := waitStatus(t, f, settings.StateError, 2*time.Second)
		if !strings.Contains(st.Message, "not reachable") && !strings.Contains(st.Message, "Reachable") {
			t.Errorf("status message %q", st.Message)
		}
	})

	t.Run("the periodic check", func(t *testing.T) {
		// What the monitor did before it knew of failed operations too: a
		// regression check of its loop, not of anything new.
		f, p, _ := setup(t, 200*time.Millisecond, 0)
		p.Stop()
		st := waitStatus(t, f, settings.StateError, 5*time.Second)
		if !strings.Contains(st.Message, "Reachable") {
			t.Errorf("status message %q", st.Message)
		}
		// The DC is back at the same address.
		p.Start()
		waitStatus(t, f, settings.StateConnected, 5*time.Second)
	})

	t.Run("the recovery, long before the next periodic check", func(t *testing.T) {
		// While the last check failed the monitor checks again every retry,
		// not every interval, so the panel turns back soon after the DC does.
		f, p, u := setup(t, time.Hour, 100*time.Millisecond)
		p.Stop()
		if _, err := f.wb.Lookup(context.Background(), u.Login); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("lookup with the DC gone: %v", err)
		}
		waitStatus(t, f, settings.StateError, 2*time.Second)
		// The monitor's own check (kicked by the lookup) fails too, then
		// re-checks; the DC comes back at the same address.
		time.Sleep(500 * time.Millisecond)
		p.Start()
		waitStatus(t, f, settings.StateConnected, 5*time.Second)
	})
}
