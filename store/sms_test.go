package store

import (
	"context"
	"errors"
	"testing"
)

// SMSCounts counts per account, number and address within the hour, the
// number's day and the portal's real sends of the day, and the latest
// sends; sends older than two days are pruned. Registered phones replace
// and delete. On both engines, through a second handle (another replica).
func TestSMSCountsAndPhones(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, b Backend) {
		ctx := context.Background()
		db, other := b.Migrated(t), b.Open(t)
		const hour, day = int64(3600_000), int64(24 * 3600_000)
		now := int64(10 * day)
		sends := []SMSSend{
			{UserKey: "a", Number: "n1", Client: "c1", Sent: true, TimeMS: now - 3*day},       // pruned
			{UserKey: "a", Number: "n1", Client: "c1", Sent: true, TimeMS: now - 2*hour},      // the number's day only
			{UserKey: "a", Number: "n1", Client: "c1", Sent: true, TimeMS: now - 30*60_000},   // in the hour
			{UserKey: "b", Number: "n1", Client: "c2", Sent: true, TimeMS: now - 10*60_000},   // in the hour
			{UserKey: "ghost", Number: "", Client: "c1", Sent: false, TimeMS: now - 5*60_000}, // pretended
		}
		for i, s := range sends {
			h := db
			if i%2 == 1 {
				h = other
			}
			if err := h.InTx(ctx, func(tx *Tx) error { return tx.InsertSMSSend(ctx, s) }); err != nil {
				t.Fatal(err)
			}
		}
		var c SMSCounts
		err := db.InTx(ctx, func(tx *Tx) error {
			var err error
			c, err = tx.SMSCounts(ctx, SMSQuery{UserKey: "a", Number: "n1", Client: "c1", SinceMS: now - hour, DayMS: now - day, NumberDayMS: now - day})
			return err
		})
		want := SMSCounts{User: 1, Number: 2, NumberDay: 3, Client: 2, Day: 3, LastUser: now - 30*60_000, LastNumber: now - 10*60_000}
		if err != nil || c != want {
			t.Errorf("SMSCounts = %+v, %v; want %+v", c, err, want)
		}
		var left int
		if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM sms_sends WHERE time_ms < ?`, now-2*day).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d sends older than two days left (%v)", left, err)
		}
		for _, n := range []string{"sealed-1", "sealed-2"} {
			if err := other.InTx(ctx, func(tx *Tx) error { return tx.PutPhone(ctx, Phone{UserID: "u1", Number: n, ConfirmedMS: 5}) }); err != nil {
				t.Fatal(err)
			}
		}
		if p, err := db.Phone(ctx, "u1"); err != nil || p.Number != "sealed-2" {
			t.Errorf("Phone = %+v, %v", p, err)
		}
		if err := db.InTx(ctx, func(tx *Tx) error { return tx.DeletePhone(ctx, "u1") }); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Phone(ctx, "u1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted phone: %v", err)
		}
	})
}
