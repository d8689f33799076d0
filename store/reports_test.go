package store

import (
	"context"
	"testing"
	"time"
)

// The report's counts on both engines: per day in a zone, per result;
// failure reasons by frequency; registrations; running blocks.
func TestReports(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db := b.Migrated(t)
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Skip("no zone database:", err)
		}
		day := func(d int, hour int) int64 {
			return time.Date(2026, 11, d, hour, 30, 0, 0, berlin).UnixMilli()
		}
		events := []struct {
			at               int64
			activity, result string
			reason           string
		}{
			{day(10, 0), "Reset password (self-service)", "success", ""}, // 23:30 UTC the day before: Berlin's 10th
			{day(10, 9), "Reset password (self-service)", "failure", "wrong code"},
			{day(10, 10), "Reset password (self-service)", "failure", "wrong code"},
			{day(10, 11), "Unlock user account (self-service)", "failure", "directory unavailable"},
			{day(11, 12), "Reset password (self-service)", "success", ""},
			{day(11, 13), "Change password (self-service)", "failure", "wrong code"},
			{day(12, 9), "Add administrator", "success", ""},             // not asked for
			{day(20, 9), "Reset password (self-service)", "success", ""}, // after the range
		}
		if err := db.InTx(ctx, func(tx *Tx) error {
			for _, e := range events {
				ev := AuditEvent{TimeMS: e.at, Category: "UserManagement", Activity: e.activity, ActorType: "user", Result: e.result, Reason: e.reason, Details: "{}"}
				if err := tx.AppendAudit(ctx, &ev); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		acts := []string{"Reset password (self-service)", "Unlock user account (self-service)", "Change password (self-service)"}
		since, until := day(10, 0)-time.Hour.Milliseconds(), day(19, 0)
		got, err := db.ActivityByDay(ctx, acts, since, until, berlin)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{
			"2026-11-10 Reset password (self-service) success":      1,
			"2026-11-10 Reset password (self-service) failure":      2,
			"2026-11-10 Unlock user account (self-service) failure": 1,
			"2026-11-11 Reset password (self-service) success":      1,
			"2026-11-11 Change password (self-service) failure":     1,
		}
		seen := map[string]int{}
		for _, d := range got {
			if d.Day.Location() != berlin || d.Day.Hour() != 0 {
				t.Errorf("day %v is not a midnight in Berlin", d.Day)
			}
			seen[d.Day.Format("2006-01-02")+" "+d.Activity+" "+d.Result] += d.Count
		}
		if len(seen) != len(want) {
			t.Errorf("days %v, want %v", seen, want)
		}
		for k, n := range want {
			if seen[k] != n {
				t.Errorf("%s: %d, want %d", k, seen[k], n)
			}
		}
		reasons, err := db.FailureReasons(ctx, acts, since, until, 2)
		if err != nil || len(reasons) != 2 || reasons[0] != (ReasonCount{"Reset password (self-service)", "wrong code", 2}) ||
			reasons[1] != (ReasonCount{"Change password (self-service)", "wrong code", 1}) {
			t.Errorf("reasons %+v %v", reasons, err)
		}

		if err := db.InTx(ctx, func(tx *Tx) error {
			for _, m := range []Method{{UserID: "u1", Method: "email"}, {UserID: "u1", Method: "app"}, {UserID: "u2", Method: "email"}, {UserID: "u3", Method: "questions"}} {
				m.Secret, m.ConfirmedMS = "x", 1
				if err := tx.PutMethod(ctx, m); err != nil {
					return err
				}
			}
			if err := tx.PutPhone(ctx, Phone{UserID: "u3", Number: "sealed", ConfirmedMS: 1}); err != nil {
				return err
			}
			if err := tx.PutPhone(ctx, Phone{UserID: "u4", Number: "sealed", ConfirmedMS: 1}); err != nil {
				return err
			}
			// Passkeys are one method however many a person has.
			for _, pk := range []Passkey{{CredentialID: "c1", UserID: "u4"}, {CredentialID: "c2", UserID: "u4"}, {CredentialID: "c3", UserID: "u5"}} {
				pk.Name, pk.Secret, pk.CreatedMS = "Phone", "sealed", 7
				if err := tx.AddPasskey(ctx, pk); err != nil {
					return err
				}
			}
			if err := tx.Block(ctx, "u2", 5000); err != nil {
				return err
			}
			if err := tx.Block(ctx, "u3", 9000); err != nil {
				return err
			}
			return tx.Block(ctx, "u1", 100) // over
		}); err != nil {
			t.Fatal(err)
		}
		r, err := db.CountRegistrations(ctx, 2)
		if err != nil || r.People != 5 || r.Enough != 3 || r.ByMethod["email"] != 2 || r.ByMethod["app"] != 1 || r.ByMethod["questions"] != 1 ||
			r.ByMethod["sms"] != 2 || r.ByMethod["passkey"] != 2 {
			t.Errorf("registrations %+v %v", r, err)
		}
		// The campaign's view of the same rows: u4 has a number and passkeys.
		regs, err := db.Registrations(ctx)
		if err != nil || len(regs) != 5 || regs["u4"].Methods != 2 || regs["u5"] != (Registration{Methods: 1, ConfirmedMS: 7}) {
			t.Errorf("campaign registrations %+v %v", regs, err)
		}
		blocked, total, err := db.BlockedUsers(ctx, 1000, 1)
		if err != nil || total != 2 || len(blocked) != 1 || blocked[0] != (BlockedUser{"u3", 9000}) {
			t.Errorf("blocked %+v of %d, %v", blocked, total, err)
		}
	})
}
