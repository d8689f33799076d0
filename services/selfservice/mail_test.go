package selfservice_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/store"
)

const smtpUser, smtpPassword = "portal", "old-secret-Pa55"

func newMailService(t *testing.T) (*selfservice.Service, *store.DB) {
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
	ss := selfservice.New(db, nil, keyring.New(make([]byte, 32)), slog.New(slog.NewTextHandler(io.Discard, nil)), "http://portal.test")
	t.Cleanup(ss.Wait)
	return ss, db
}

func saveMail(t *testing.T, ss *selfservice.Service, in selfservice.MailInput) error {
	t.Helper()
	_, meta, err := ss.MailSettings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = ss.SaveMail(context.Background(), audit.CommandLine, meta.Version, in)
	return err
}

// TestSaveMailKeepsPasswordWithItsServer: a stored SMTP password is kept
// while the server stays the same; changing host, port, TLS mode or CA
// without giving the password again is refused on the password field, and
// nothing is saved.
func TestSaveMailKeepsPasswordWithItsServer(t *testing.T) {
	ca := mailtest.Start(t, mailtest.Options{TLS: true}).CAPEM()
	stored := selfservice.MailInput{Host: "localhost", Port: 2525, TLS: mail.TLSNone, From: "portal@example.com",
		Username: smtpUser, Password: smtpPassword}
	for _, tc := range []struct {
		name    string
		change  func(*selfservice.MailInput)
		refused bool
	}{
		{"same server, new sender", func(in *selfservice.MailInput) { in.From = "noreply@example.com" }, false},
		{"same server, other user name", func(in *selfservice.MailInput) { in.Username = "other" }, false},
		{"same host in capitals", func(in *selfservice.MailInput) { in.Host = "LOCALHOST" }, false},
		{"other host", func(in *selfservice.MailInput) { in.Host = "127.0.0.1" }, true},
		{"other port", func(in *selfservice.MailInput) { in.Port = 2526 }, true},
		{"other TLS mode", func(in *selfservice.MailInput) { in.TLS = mail.TLSStartTLS }, true},
		{"other CA", func(in *selfservice.MailInput) { in.CAPEM = ca }, true},
		{"other host with its password", func(in *selfservice.MailInput) { in.Host, in.Password = "127.0.0.1", "new-secret-Pa55" }, false},
		{"other host without sign-in", func(in *selfservice.MailInput) { in.Host, in.Username = "127.0.0.1", "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss, _ := newMailService(t)
			if err := saveMail(t, ss, stored); err != nil {
				t.Fatal(err)
			}
			before, meta, _ := ss.MailSettings(context.Background())
			in := stored
			in.Password = ""
			tc.change(&in)
			err := saveMail(t, ss, in)
			after, meta2, _ := ss.MailSettings(context.Background())
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if (in.Username != "") != (after.PasswordSealed != "") {
					t.Errorf("password stored %v for user name %q", after.PasswordSealed != "", in.Username)
				}
				return
			}
			if got := errs.FieldsOf(err)[mail.FieldPassword]; !strings.Contains(got, "mail server changed") {
				t.Errorf("error %v, password field %q", err, got)
			}
			if meta2.Version != meta.Version || after != before {
				t.Errorf("a refused save changed the settings: %+v", after)
			}
		})
	}
}

// TestMailPasswordNeverReachesAnotherServer: with the password stored for
// one SMTP server, pointing the settings at a second server (one that
// would accept that password) never sends it there — not through the page
// or command line, and not through a settings document edited behind the
// portal's back. Only a password given for the new server signs in there.
func TestMailPasswordNeverReachesAnotherServer(t *testing.T) {
	ctx := context.Background()
	first := mailtest.Start(t, mailtest.Options{Username: smtpUser, Password: smtpPassword})
	second := mailtest.Start(t, mailtest.Options{Username: smtpUser, Password: smtpPassword})
	host, port := first.Addr()
	_, port2 := second.Addr()
	ss, db := newMailService(t)
	if err := saveMail(t, ss, selfservice.MailInput{Host: host, Port: port, TLS: mail.TLSNone, From: "portal@example.com",
		Username: smtpUser, Password: smtpPassword}); err != nil {
		t.Fatal(err)
	}
	if err := ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatalf("test mail to the first server: %v", err)
	}
	if got := first.Messages(); len(got) != 1 || got[0].Username != smtpUser {
		t.Fatalf("first server got %+v", got)
	}

	// The page and the command line: the change is refused, the next test
	// mail still goes to the first server.
	err := saveMail(t, ss, selfservice.MailInput{Host: host, Port: port2, TLS: mail.TLSNone, From: "portal@example.com", Username: smtpUser})
	if errs.FieldsOf(err)[mail.FieldPassword] == "" {
		t.Fatalf("moving to another port kept the password: %v", err)
	}
	if err := ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatal(err)
	}

	// Behind the portal's back: the stored document now names the second
	// server with the first server's sealed password. It does not open.
	if err := db.InTx(ctx, func(tx *store.Tx) error {
		cur, err := tx.Config(ctx, "mail")
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(cur.Value), &m); err != nil {
			return err
		}
		m["port"] = port2
		b, _ := json.Marshal(m)
		_, err = tx.PutConfig(ctx, "mail", cur.Version, string(b), "someone")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); errs.KindOf(err) != errs.Unavailable {
		t.Errorf("test mail with a password sealed for another server: %v", err)
	}
	if got := second.Messages(); len(got) != 0 {
		t.Fatalf("the second server received %d messages, signed in as %q", len(got), got[0].Username)
	}

	// Given again for the second server, the password is used there.
	if err := saveMail(t, ss, selfservice.MailInput{Host: host, Port: port2, TLS: mail.TLSNone, From: "portal@example.com",
		Username: smtpUser, Password: smtpPassword}); err != nil {
		t.Fatal(err)
	}
	if err := ss.SendTestMail(ctx, audit.CommandLine, "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if got := second.Messages(); len(got) != 1 || got[0].Username != smtpUser {
		t.Errorf("second server got %+v", got)
	}
	if got := len(first.Messages()); got != 2 {
		t.Errorf("first server got %d messages, want 2", got)
	}
}
