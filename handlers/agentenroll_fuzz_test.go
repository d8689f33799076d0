package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/writeback/writeback/handlers"
	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
)

// FuzzAgentEnroll posts arbitrary bodies to the agents' enrolment endpoint:
// no panic and no 5xx; every answer is JSON, a refusal one line without
// internal error text; and nothing but the one real token (in the seeds)
// ever enrols an agent.
func FuzzAgentEnroll(f *testing.F) {
	ctx := context.Background()
	p := newPortal(f)
	svc := agents.New(p.db, p.log)
	tok, err := svc.Add(ctx, audit.CommandLine, "Seed")
	if err != nil {
		f.Fatal(err)
	}
	base, _ := url.Parse(testBaseURL)
	h := handlers.New(handlers.Config{BaseURL: base, CookieHashKey: p.keys.Derive("h"), CookieBlockKey: p.keys.Derive("b"), NoRequestLog: true}, p.log,
		handlers.Deps{Admins: p.admins, Settings: p.settings, Writeback: p.wb, SelfService: p.ss, Audit: p.audit, Agents: svc, AgentEnroll: svc}).Routes()

	id, err := agentwire.NewIdentity()
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(agentwire.EnrollRequest{Token: tok.Token, Public: id.Public(), Proof: id.SignEnroll(tok.Token), Host: "h", Version: "v"})
	forged, _ := json.Marshal(agentwire.EnrollRequest{Token: tok.Token, Public: id.Public(), Proof: id.SignEnroll("other"), Host: "h"})
	for _, seed := range [][]byte{good, forged, nil, []byte("{}"), []byte(`{"token":"wbat_x","public":{"sign_key":"AAAA","seal_key":""},"proof":"AA=="}`),
		[]byte(`{"token":` + strings.Repeat("[", 1000)), []byte(`{"host":"\u0000\u001b[2J","version":"` + strings.Repeat("é", 100) + `"}`), []byte("null"), []byte(`"wbat_"`)} {
		f.Add(seed)
	}
	var n atomic.Uint64
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, agentwire.PathEnroll, bytes.NewReader(body))
		// A new address each time: the per-address limit is not what is fuzzed.
		i := n.Add(1)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4000", i>>16&255, i>>8&255, i&255)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := rec.Body.String()
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%d answered %q: %s", rec.Code, rec.Header().Get("Content-Type"), out)
		}
		switch rec.Code {
		case http.StatusOK:
			var resp agentwire.EnrollResponse
			if json.Unmarshal([]byte(out), &resp) != nil || resp.AgentID == "" || !bytes.Equal(body, good) {
				t.Fatalf("enrolled with %q: %s", body, out)
			}
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
			var e agentwire.EnrollError
			if json.Unmarshal([]byte(out), &e) != nil || e.Error == "" || strings.ContainsAny(e.Error, "\n\r") {
				t.Fatalf("%d refusal %q", rec.Code, out)
			}
			for _, internal := range []string{"store:", "agents:", "agentwire:", "sqlite", "json:"} {
				if strings.Contains(e.Error, internal) {
					t.Fatalf("internal text in %q", e.Error)
				}
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, out)
		}
	})
}
