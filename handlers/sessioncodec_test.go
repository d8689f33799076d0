package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/securecookie"
)

// TestSessionCookieWrittenBeforeStillValid: a session cookie written in
// gorilla's gob format (by the version before JSON session values) is still
// this browser's session after an upgrade: its CSRF token is the page's.
func TestSessionCookieWrittenBeforeStillValid(t *testing.T) {
	h := newHarness(t)
	csrf, bid := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	old := securecookie.New(h.keys.Derive("h"), h.keys.Derive("b")) // gob, as sessions.NewCookieStore made it
	old.MaxAge(86400 * 30)
	v, err := old.Encode("wb_session", map[any]any{"csrf": csrf, "bid": bid})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/reset", nil)
	req.AddCookie(&http.Cookie{Name: "wb_session", Value: v})
	p := h.client().do(req)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `content="`+csrf+`"`) {
		t.Errorf("the old cookie's session was not kept: status %d", p.Status)
	}
	if strings.Contains(p.Header.Get("Set-Cookie"), "wb_session") {
		t.Error("a new session was started for a valid old cookie")
	}
}
