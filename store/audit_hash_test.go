package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
)

// contentHashReflect is ContentHash as it was first written, with
// json.Marshal: every hash already in a database was made this way, so
// ContentHash must give the same bytes for every event.
func contentHashReflect(e AuditEvent) string {
	canon, _ := json.Marshal([]any{
		e.ID, e.TimeMS, e.Category, e.Activity, e.ActorType, e.ActorID, e.ActorName,
		e.TargetType, e.TargetID, e.TargetDN, e.TargetName, e.Result, e.Reason,
		e.ClientIP, e.UserAgent, e.CorrelationID, e.Details,
	})
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil))
}

var hashSeeds = []string{
	"", "plain", `"quoted"`, `back\slash`, "<script>&amp;</script>", "tab\there", "new\nline\r\n", "\x00\x01\x1f\x7f",
	"Zoë Müller 名前", "\u2028\u2029", "\xff\xfe invalid UTF-8", "\b\f", `{"ldap_result":19,"diag":"0000052D: Constraint"}`,
	"CN=Zoë,OU=People,DC=example,DC=com", "Mozilla/5.0 (X11; Linux x86_64)", "é\u0301", "\U0001F600",
}

func TestContentHashMatchesJSONMarshal(t *testing.T) {
	for i, s := range hashSeeds {
		e := AuditEvent{ID: int64(i) - 3, TimeMS: 1_700_000_000_000 + int64(i), Category: s, Activity: s + "x", ActorType: "admin",
			ActorName: s, TargetDN: s, Reason: s, UserAgent: s, Details: s, PrevHash: GenesisHash}
		if got, want := ContentHash(e), contentHashReflect(e); got != want {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

func FuzzContentHash(f *testing.F) {
	for i, s := range hashSeeds {
		f.Add(int64(i), int64(-i), s, s+"<", s)
	}
	f.Fuzz(func(t *testing.T, id, timeMS int64, a, b, c string) {
		e := AuditEvent{ID: id, TimeMS: timeMS, Category: a, Activity: b, ActorType: c, ActorID: a, ActorName: b,
			TargetType: c, TargetID: a, TargetDN: b, TargetName: c, Result: a, Reason: b, ClientIP: c,
			UserAgent: a, CorrelationID: b, Details: c, PrevHash: a}
		if got, want := ContentHash(e), contentHashReflect(e); got != want {
			t.Fatalf("ContentHash %s, json.Marshal %s", got, want)
		}
	})
}
