// Package smstest is an SMS gateway for tests: a real HTTP server on
// loopback that records every request and answers as a gateway would, so
// tests read the codes from what the gateway received.
package smstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Request is one request the gateway received.
type Request struct {
	Method, Path, ContentType string
	Query                     url.Values
	Header                    http.Header
	Body                      string
	Form                      url.Values // the body, for a form POST
	User, Password            string     // basic authentication
}

// Gateway is the test gateway.
type Gateway struct {
	srv *httptest.Server

	mu     sync.Mutex
	reqs   []Request
	status int
	answer string
	added  chan struct{}
}

// Start runs a gateway on loopback until the test ends. It answers 201
// with a small JSON body until Fail says otherwise.
func Start(t testing.TB) *Gateway {
	g := &Gateway{status: http.StatusCreated, answer: `{"sid":"SM1","status":"queued"}`, added: make(chan struct{}, 1000)}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

// URL is the gateway's base URL (http://127.0.0.1:port).
func (g *Gateway) URL() string { return g.srv.URL }

// Fail makes the gateway answer status with body from now on.
func (g *Gateway) Fail(status int, body string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status, g.answer = status, body
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(b)}
	if req.ContentType == "application/x-www-form-urlencoded" {
		req.Form, _ = url.ParseQuery(req.Body)
	}
	req.User, req.Password, _ = r.BasicAuth()
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	status, answer := g.status, g.answer
	g.mu.Unlock()
	g.added <- struct{}{}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, answer)
}

// Requests returns what the gateway received so far.
func (g *Gateway) Requests() []Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Request(nil), g.reqs...)
}

// Wait waits for the gateway's n-th request (from 1) and returns it.
func (g *Gateway) Wait(t testing.TB, n int) Request {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if rs := g.Requests(); len(rs) >= n {
			return rs[n-1]
		}
		select {
		case <-g.added:
		case <-deadline:
			t.Fatalf("smstest: the gateway received %d requests, want %d", len(g.Requests()), n)
		}
	}
}

var codeRE = regexp.MustCompile(`\b(\d{8})\b`)

// Code is the 8-digit code in a message text; "" when there is none.
func Code(text string) string {
	if m := codeRE.FindStringSubmatch(text); m != nil {
		return m[1]
	}
	return ""
}
