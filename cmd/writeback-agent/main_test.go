package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/testbed"
)

func noenv(string) string { return "" }

// cli runs one command and returns its exit code and output.
func cli(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return cliCtx(context.Background(), stdin, args...)
}

func cliCtx(ctx context.Context, stdin string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(ctx, args, noenv, cmdline.IO{In: strings.NewReader(stdin), Out: &out, Err: &errOut})
	return code, out.String(), errOut.String()
}

// oneLine tells whether s is a single line.
func oneLine(s string) bool { return strings.Count(strings.TrimSpace(s), "\n") == 0 }

const (
	goodToken = "wbe_good-token-for-the-test"
	refusal   = "This enrolment token is not valid (it may be used, expired or mistyped). Ask a Global Administrator for a new one."
)

// fakePortal speaks the portal's side of the enrolment endpoint and of the
// connection's handshake, as the issue 10 contract fixes them (the real
// endpoints are built on other branches; the end-to-end tests run the
// real portal).
type fakePortal struct {
	t   *testing.T
	srv *httptest.Server
	ca  string // PEM file of the CA that verifies srv

	mu        sync.Mutex
	enrolled  []agentwire.EnrollRequest
	proofErrs []error
	pub       agentwire.Public
	connects  []string // the agent ID header of each connection
	helloErrs []error
	revoke    chan struct{}
}

func newFakePortal(t *testing.T) *fakePortal {
	p := &fakePortal{t: t, revoke: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+agentwire.PathEnroll, p.enroll)
	mux.HandleFunc("GET "+agentwire.PathConnect, p.connect)
	p.srv = httptest.NewUnstartedServer(mux)
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes of the CA tests
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.ca = filepath.Join(t.TempDir(), "portal-ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *fakePortal) enroll(w http.ResponseWriter, r *http.Request) {
	var req agentwire.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if req.Token != goodToken {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(agentwire.EnrollError{Error: refusal})
		return
	}
	err := agentwire.VerifyEnroll(req.Token, req.Public, req.Proof)
	p.mu.Lock()
	p.enrolled = append(p.enrolled, req)
	p.proofErrs = append(p.proofErrs, err)
	p.pub = req.Public
	p.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(agentwire.EnrollError{Error: "The agent's proof does not verify."})
		return
	}
	json.NewEncoder(w).Encode(agentwire.EnrollResponse{AgentID: "agent-0001", Name: "dc-site-1",
		PortalKey: []byte(fakePortalKey.Public().(ed25519.PublicKey))})
}

// fakePortalKey signs what the fake portal sends, as the hub does.
var fakePortalKey, _ = agentwire.NewPortalKey(bytes.Repeat([]byte{5}, 32))

// connect runs the portal's handshake (challenge, hello checked with the
// enrolled key, the welcome with the connection's session), then holds the connection until revoke is closed
// and closes it with CloseRevoked.
func (p *fakePortal) connect(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.connects = append(p.connects, r.Header.Get(agentwire.HeaderAgentID))
	pub := p.pub
	p.mu.Unlock()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	nonce := make([]byte, 32)
	rand.Read(nonce)
	b, _ := agentwire.EncodeSigned(fakePortalKey, r.Header.Get(agentwire.HeaderAgentID), agentwire.TypeChallenge, "",
		agentwire.Challenge{Nonce: nonce, Now: time.Now().UnixMilli()})
	if c.Write(ctx, websocket.MessageText, b) != nil {
		return
	}
	_, b, err = c.Read(ctx)
	if err != nil {
		return
	}
	var hello agentwire.Hello
	env, err := agentwire.Decode(b)
	if err == nil {
		err = agentwire.DecodeBody(env, &hello)
	}
	if err == nil {
		err = agentwire.VerifyConnect(r.Header.Get(agentwire.HeaderAgentID), nonce, pub, hello.Proof)
	}
	p.mu.Lock()
	p.helloErrs = append(p.helloErrs, err)
	p.mu.Unlock()
	if err != nil || env.Type != agentwire.TypeHello {
		c.Close(agentwire.CloseUnauthorized, "unknown agent")
		return
	}
	id := r.Header.Get(agentwire.HeaderAgentID)
	sess, enc, err := agentwire.NewPortalSession(pub, id, nonce, hello.Nonce)
	if err != nil {
		c.Close(websocket.StatusProtocolError, "bad hello")
		return
	}
	b, _ = agentwire.EncodeSigned(fakePortalKey, id, agentwire.TypeWelcome, "",
		agentwire.Welcome{Name: "dc-site-1", Nonce: hello.Nonce, Session: enc, Confirm: sess.Confirm()})
	c.Write(ctx, websocket.MessageText, b)
	// Read (and drop heartbeats) until told to revoke.
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	select {
	case <-p.revoke:
		c.Close(agentwire.CloseRevoked, "revoked")
	case <-ctx.Done():
	}
}

// files lists a folder's files, recursively, as paths relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestEnroll(t *testing.T) {
	p := newFakePortal(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	url := p.srv.URL

	// Refusals first: each is one line, non-zero, and writes nothing (not
	// even the data folder).
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"http", []string{"--portal", strings.Replace(url, "https://", "http://", 1), "--token", goodToken, "--ca-file", p.ca}, "want the portal's public https:// URL", 2},
		{"no portal", []string{"--token", goodToken}, "--portal is required", 2},
		{"not a url", []string{"--portal", "reset.example.com", "--token", goodToken}, "want the portal's public https:// URL", 2},
		{"no token", []string{"--portal", url, "--ca-file", p.ca}, "--token is required", 2},
		{"bad ca file", []string{"--portal", url, "--token", goodToken, "--ca-file", filepath.Join(t.TempDir(), "none.pem")}, "--ca-file", 2},
		{"system roots", []string{"--portal", url, "--token", goodToken}, "is not trusted: give the CA that issued it with --ca-file", 1},
		{"wrong ca", []string{"--portal", url, "--token", goodToken, "--ca-file", writeTemp(t, "wrong.pem", testbed.SelfSignedCAPEM(t))}, "is not trusted", 1},
		{"another host name", []string{"--portal", strings.Replace(url, "127.0.0.1", "localhost", 1), "--token", goodToken, "--ca-file", p.ca}, "is not valid for https://localhost", 1},
		{"refused token", []string{"--portal", url, "--token", "wbe_used-token", "--ca-file", p.ca}, refusal, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, "", append([]string{"enroll", "--data", data}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) || !oneLine(errOut) || !strings.HasPrefix(errOut, "writeback-agent enroll: ") {
				t.Errorf("exit %d, out %q, err %q; want exit %d and one line with %q", code, out, errOut, tc.code, tc.want)
			}
			if strings.Contains(out+errOut, goodToken) {
				t.Errorf("the token was printed: %q %q", out, errOut)
			}
			if _, err := os.Stat(data); err == nil {
				t.Fatalf("a refused enrolment created %s: %v", data, files(t, data))
			}
		})
	}

	if code, _, errOut := cli(t, "\n", "enroll", "--data", data, "--portal", url, "--token", "-", "--ca-file", p.ca); code != 2 || !strings.Contains(errOut, "--token is required") {
		t.Errorf("--token - with nothing on standard input: %d %q", code, errOut)
	}
	// The token from standard input (out of ps and shell history).
	code, out, errOut := cli(t, goodToken+"\n", "enroll", "--data", data, "--portal", url+"/", "--token", "-", "--ca-file", p.ca)
	if code != 0 || !strings.Contains(out, "enrolled as dc-site-1 with "+url+" (agent ID agent-0001)") {
		t.Fatalf("enroll: %d %q %q", code, out, errOut)
	}
	if strings.Contains(out+errOut, goodToken) {
		t.Errorf("the token was printed: %q %q", out, errOut)
	}
	p.mu.Lock()
	if len(p.enrolled) != 1 || p.proofErrs[0] != nil || p.enrolled[0].Host == "" || p.enrolled[0].Version != version {
		t.Errorf("the portal got %+v, proof %v", p.enrolled, p.proofErrs)
	}
	sent := p.enrolled[0].Public
	p.mu.Unlock()

	for name, mode := range map[string]os.FileMode{"": 0o700 | os.ModeDir, identityFile: 0o600, configFile: 0o600} {
		st, err := os.Stat(filepath.Join(data, name))
		if err != nil || st.Mode() != mode {
			t.Errorf("%s: mode %v (%v), want %v", filepath.Join(data, name), st.Mode(), err, mode)
		}
	}
	id, err := readIdentity(data)
	if err != nil {
		t.Fatal(err)
	}
	if pub := id.Public(); !bytes.Equal(pub.SignKey, sent.SignKey) || !bytes.Equal(pub.SealKey, sent.SealKey) {
		t.Error("the stored identity is not the one the portal enrolled")
	}
	// The proof verifies for the stored identity, and only for this token.
	if err := agentwire.VerifyEnroll(goodToken, id.Public(), id.SignEnroll(goodToken)); err != nil {
		t.Error(err)
	}
	if err := agentwire.VerifyEnroll("another token", id.Public(), p.enrolled[0].Proof); err == nil {
		t.Error("the proof verifies for another token")
	}
	cfg, err := readConfig(data)
	if err != nil || cfg.Portal != url || cfg.AgentID != "agent-0001" || cfg.Name != "dc-site-1" || !strings.Contains(cfg.CAPEM, "BEGIN CERTIFICATE") || cfg.EnrolledAt.IsZero() {
		t.Errorf("agent.json: %+v %v", cfg, err)
	}
	idBefore, _ := os.ReadFile(filepath.Join(data, identityFile))

	// Already enrolled: refused without --force, nothing rewritten.
	code, _, errOut = cli(t, "", "enroll", "--data", data, "--portal", url, "--token", goodToken, "--ca-file", p.ca)
	if code == 0 || !strings.Contains(errOut, "already enrolled as dc-site-1") || !strings.Contains(errOut, "--force") || !oneLine(errOut) {
		t.Errorf("second enroll: %d %q", code, errOut)
	}
	if idAfter, _ := os.ReadFile(filepath.Join(data, identityFile)); !bytes.Equal(idBefore, idAfter) {
		t.Error("a refused enroll replaced the identity")
	}
	// A refused --force keeps the old identity too.
	if code, _, errOut := cli(t, "", "enroll", "--data", data, "--portal", url, "--token", "wbe_expired", "--ca-file", p.ca, "--force"); code == 0 || !strings.Contains(errOut, refusal) {
		t.Errorf("refused --force: %d %q", code, errOut)
	}
	if idAfter, _ := os.ReadFile(filepath.Join(data, identityFile)); !bytes.Equal(idBefore, idAfter) {
		t.Error("a refused enroll --force replaced the identity")
	}
	// --force with a good token: a new key.
	if code, _, errOut := cli(t, "", "enroll", "--data", data, "--portal", url, "--token", goodToken, "--ca-file", p.ca, "--force"); code != 0 {
		t.Fatalf("enroll --force: %q", errOut)
	}
	if idAfter, _ := os.ReadFile(filepath.Join(data, identityFile)); bytes.Equal(idBefore, idAfter) {
		t.Error("enroll --force kept the old identity")
	}
	for _, f := range files(t, data) {
		if strings.HasPrefix(filepath.Base(f), ".") {
			t.Errorf("a temporary file was left behind: %s", f)
		}
		b, _ := os.ReadFile(filepath.Join(data, f))
		if bytes.Contains(b, []byte(goodToken)) {
			t.Errorf("%s holds the enrolment token", f)
		}
	}
}

// writeTemp writes a file in a fresh temporary folder.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// enrol enrols an agent in data with the fake portal.
func enrol(t *testing.T, p *fakePortal, data string) {
	t.Helper()
	if code, out, errOut := cli(t, "", "enroll", "--data", data, "--portal", p.srv.URL, "--token", goodToken, "--ca-file", p.ca); code != 0 {
		t.Fatalf("enroll: %d %q %q", code, out, errOut)
	}
}

// statusRows is "status" as its rows.
func statusRows(t *testing.T, data string) (map[string]string, string) {
	t.Helper()
	_, out, _ := cli(t, "", "status", "--data", data)
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "  "); ok {
			rows[k] = strings.TrimSpace(v)
		}
	}
	return rows, out
}

// statusRow returns one row of "status".
func statusRow(t *testing.T, data, key string) string {
	t.Helper()
	rows, out := statusRows(t, data)
	v, ok := rows[key]
	if !ok {
		t.Fatalf("no %s row in:\n%s", key, out)
	}
	return v
}

func TestStatusBeforeAndAfterEnrol(t *testing.T) {
	p := newFakePortal(t)
	data := filepath.Join(t.TempDir(), "agent-data")
	code, out, errOut := cli(t, "", "status", "--data", data)
	if code != 0 || !strings.Contains(out, "enrolled") || !strings.Contains(out, "no (run 'writeback-agent enroll") ||
		!strings.Contains(out, "not configured") || !strings.Contains(out, "not running") {
		t.Errorf("status before enrol: %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("status created the data folder")
	}
	if code, _, errOut := cli(t, "", "status", "--data", data, "--connected"); code != 1 || !strings.Contains(errOut, "not connected") {
		t.Errorf("status --connected while not connected: %d %q", code, errOut)
	}
	enrol(t, p, data)
	if got := statusRow(t, data, "enrolled"); got != "as dc-site-1 with "+p.srv.URL {
		t.Errorf("enrolled row %q", got)
	}
	if got := statusRow(t, data, "agent id"); got != "agent-0001" {
		t.Errorf("agent id row %q", got)
	}
	if got := statusRow(t, data, "password writeback"); got != "off" {
		t.Errorf("password writeback row %q", got)
	}
	if got := statusRow(t, data, "run"); got != "not running" {
		t.Errorf("run row %q", got)
	}
}

func TestSetBadValues(t *testing.T) {
	data := filepath.Join(t.TempDir(), "agent-data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "give --password-writeback on|off and/or --writes-per-minute N"},
		{[]string{"--password-writeback", "maybe"}, `--password-writeback "maybe": want on or off`},
		{[]string{"--writes-per-minute", "0"}, `--writes-per-minute "0": want a whole number from 1 to 100000`},
		{[]string{"--writes-per-minute", "-5"}, `--writes-per-minute "-5"`},
		{[]string{"--writes-per-minute", "lots"}, `--writes-per-minute "lots"`},
		{[]string{"--writes-per-minute", "100001"}, `--writes-per-minute "100001"`},
		{[]string{"--writes-per-minute", "60", "--password-writeback", "sometimes"}, `--password-writeback "sometimes"`},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, out, errOut := cli(t, "", append([]string{"set", "--data", data}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || !oneLine(errOut) {
			t.Errorf("set %v: exit %d, out %q, err %q; want exit 2 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
		if _, err := os.Stat(data); err == nil {
			t.Fatalf("set %v created the data folder", tc.args)
		}
	}
	// Writeback on needs a directory connection; the refusal leaves no
	// agent.json and no switch.
	code, _, errOut := cli(t, "", "set", "--data", data, "--password-writeback", "on", "--writes-per-minute", "30")
	if code == 0 || !strings.Contains(errOut, "needs a directory connection first") || !oneLine(errOut) {
		t.Errorf("writeback on without a directory: %d %q", code, errOut)
	}
	if exists(data, configFile) {
		t.Error("a refused set wrote agent.json")
	}
	// The write limit alone is fine, before enrolment too, and survives it.
	if code, out, errOut := cli(t, "", "set", "--data", data, "--writes-per-minute", "30"); code != 0 || !strings.Contains(out, "writes per minute 30") {
		t.Errorf("set --writes-per-minute 30: %d %q %q", code, out, errOut)
	}
	if got := statusRow(t, data, "writes per minute"); got != "30" {
		t.Errorf("writes per minute row %q", got)
	}
	enrol(t, newFakePortal(t), data)
	if got := statusRow(t, data, "writes per minute"); got != "30" {
		t.Errorf("after enrol, writes per minute row %q", got)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := cli(t, "", "version"); code != 0 || out != "writeback-agent dev\n" {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := cli(t, "", "version", "extra"); code != 2 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("version extra: %d %q", code, errOut)
	}
	code, out, _ := cli(t, "")
	if code != 2 || !strings.Contains(out, "Usage: writeback-agent <command>") {
		t.Errorf("no arguments: %d %q", code, out)
	}
	if code, _, errOut := cli(t, "", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	if code, _, errOut := cli(t, "", "directory", "frobnicate"); code != 2 || !strings.Contains(errOut, `unknown subcommand "frobnicate": want set, show or test`) {
		t.Errorf("unknown subcommand: %d %q", code, errOut)
	}

	data := filepath.Join(t.TempDir(), "must-not-exist")
	getenv := func(k string) string {
		if k == "WRITEBACK_AGENT_DATA" {
			return data
		}
		return ""
	}
	type invocation struct {
		args []string
		want string
	}
	var cases []invocation
	for _, c := range commands() {
		if len(c.Subs) == 0 {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.Name, h}, "Usage: writeback-agent " + c.Name + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.Name}, "Usage: writeback-agent " + c.Name})
			continue
		}
		for _, h := range []string{"--help", "-h", "help"} {
			cases = append(cases, invocation{[]string{c.Name, h}, "Usage: writeback-agent " + c.Name + " <subcommand>"})
		}
		for _, s := range cmdline.SubNames(c.Subs) {
			for _, h := range []string{"--help", "-h"} {
				cases = append(cases, invocation{[]string{c.Name, s, h}, "Usage: writeback-agent " + c.Name + " " + s + " [flags]"})
			}
			cases = append(cases, invocation{[]string{"help", c.Name, s}, "Usage: writeback-agent " + c.Name + " " + s})
		}
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, getenv, cmdline.IO{In: strings.NewReader(""), Out: &out, Err: &errOut})
		if code != 0 || errOut.Len() != 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: exit %d, out %q, err %q; want %q", tc.args, code, out.String(), errOut.String(), tc.want)
		}
		if _, err := os.Stat(data); err == nil {
			t.Fatalf("%v created the data folder", tc.args)
		}
	}
	// The agent's directory set has the portal's flags but not --mode.
	_, out, _ = cli(t, "", "directory", "set", "--help")
	if !strings.Contains(out, "-bind-password-file") || !strings.Contains(out, "-password-writeback") || strings.Contains(out, "-mode") {
		t.Errorf("directory set --help:\n%s", out)
	}
}
