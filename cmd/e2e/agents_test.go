package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/mail/mailtest"
	"github.com/writeback/writeback/store"
	"github.com/writeback/writeback/testbed"
	"github.com/writeback/writeback/testbed/browser"
)

// TestPortalAndTwoAgents is issue 10's end-to-end story with the real
// programs: the portal (writeback serve) in a network namespace with no
// route to the directories, a TLS-terminating reverse proxy in front of
// it, and two writeback-agent processes, one enrolled with a token from the
// Writeback agents page and one with `writeback agent add`, that dial out
// through the proxy and do the writes at the real Samba AD and OpenLDAP.
func TestPortalAndTwoAgents(t *testing.T) {
	env := testbed.Load(t)
	browser.Path(t)
	progs := build(t)
	for _, typ := range []string{"ad", "openldap"} {
		t.Run(typ, func(t *testing.T) { agentsStory(t, env, progs, typ) })
	}
}

const adminPassword = "a long admin password"

var setupRE = regexp.MustCompile(`(http://\S+/setup\?token=[0-9a-f]{64})`)

// agentRow is the part of `writeback agent list --json` the test reads.
type agentRow struct {
	Name              string `json:"name"`
	State             string `json:"state"`
	PasswordWriteback bool   `json:"password_writeback"`
	Directory         string `json:"directory"`
}

func agentsStory(t *testing.T, env testbed.Env, progs programs, typ string) {
	dir, newUser := env.AD, env.NewADUser
	if typ == "openldap" {
		dir, newUser = env.LDAP, env.NewLDAPUser
	}
	outs := &outputs{}
	tmp := t.TempDir()
	portalData := filepath.Join(tmp, "portal-data")

	// 1. The portal, in a namespace of its own when this runs as root.
	var ns *netns
	listenHost := "127.0.0.1"
	if ok, why := canNetns(); ok {
		ns = newNetns(t)
		listenHost = ns.nsIP.String()
	} else {
		t.Logf("no network namespace (%s): asserting the portal's sockets instead", why)
	}
	port := 20000 + randInt(20000)
	if ns == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = int64(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	portalAddr := net.JoinHostPort(listenHost, strconv.FormatInt(port, 10))
	portalURL := "http://" + portalAddr
	argv := []string{progs.portal, "serve", "--listen", portalAddr, "--data", portalData, "--base-url", portalURL}
	if ns != nil {
		argv = ns.exec(argv...)
	}
	portal := start(t, outs, "writeback serve", argv...)
	eventually(t, 20*time.Second, "the portal answers", func() (bool, string) {
		if !portal.running() {
			t.Fatalf("serve exited with %d:\n%s", portal.code, portal.out.String())
		}
		resp, err := http.Get(portalURL + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", portal.pid())); err != nil || exe != progs.portal {
		t.Fatalf("process %d is %q (%v), not the portal: the socket check would watch the wrong process", portal.pid(), exe, err)
	}
	watch := watchSockets(portal.pid())

	// The directory endpoints the portal must never reach.
	var dcs []netip.AddrPort
	for _, d := range []testbed.Directory{env.AD, env.LDAP} {
		for _, raw := range []string{d.URL, d.StartTLSURL} {
			u, _ := url.Parse(raw)
			ap, err := netip.ParseAddrPort(u.Host)
			if err != nil {
				t.Fatalf("directory address %s: %v", raw, err)
			}
			dcs = append(dcs, ap)
		}
	}
	if ns != nil {
		for _, dc := range dcs {
			if ok, out := tcpOpens(nil, dc.Addr().String(), int(dc.Port())); !ok {
				t.Fatalf("from the host, %s does not open (%s): the namespace check would prove nothing", dc, out)
			}
			if ok, _ := tcpOpens(ns, dc.Addr().String(), int(dc.Port())); ok {
				t.Fatalf("from the portal's namespace %s, a TCP connection to the directory at %s opens", ns.name, dc)
			}
		}
	}

	// 2. The TLS-terminating proxy the agents go through.
	px := startProxy(t, portalURL)

	// The first Global Administrator through the setup link, in the browser.
	var link string
	eventually(t, 10*time.Second, "the setup link", func() (bool, string) {
		m := setupRE.FindStringSubmatch(portal.out.String())
		if m != nil {
			link = m[1]
		}
		return m != nil, portal.out.String()
	})
	ctx := browser.New(t)
	browser.Step(t, ctx, "open the setup link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("name")))
	browser.Step(t, ctx, "create the first Global Administrator",
		chromedp.SendKeys(chromedp.ID("name"), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.SendKeys(chromedp.ID("confirm"), adminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=create-admin]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=sign-in]`)),
	)
	browser.Step(t, ctx, "sign in",
		chromedp.Navigate(portalURL+"/admin/agents"),
		chromedp.WaitVisible(chromedp.ID("email")),
		chromedp.SendKeys(chromedp.ID("email"), "ada@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), adminPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=sign-in]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=enrol-app]`)),
	)
	// A Global Administrator sets up a second factor at the first sign-in:
	// an authenticator app, its code computed from the key the page shows.
	appCode, codeErr := totp.GenerateCode(strings.TrimSpace(browser.Text(t, ctx, `[data-testid=totp-secret]`)), time.Now())
	if codeErr != nil {
		t.Fatal(codeErr)
	}
	browser.Step(t, ctx, "set up an authenticator app",
		chromedp.SendKeys(chromedp.ID("app-code"), appCode),
		chromedp.Click(chromedp.CSS(`[data-testid=confirm-app]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=recovery-codes]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=continue]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=add-agent]`)),
	)

	// 3. Agent A with a token from the page, agent B with one from the
	// command line (while serve runs on that data folder).
	browser.Step(t, ctx, "add an agent",
		chromedp.SendKeys(chromedp.ID("name"), "Paris DC"),
		chromedp.Click(chromedp.CSS(`[data-testid=add-agent]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=agent-token]`)),
	)
	tokenA := browser.Eval[string](t, ctx, `document.querySelector('[data-testid=agent-token]').value`)
	addOut := must(t, outs, progs.portal, "agent", "add", "--name", "Lyon DC", "--data", portalData, "--base-url", px.url)
	lines := strings.Split(strings.TrimSpace(addOut), "\n")
	tokenB := strings.TrimSpace(lines[len(lines)-1])
	for _, tok := range []string{tokenA, tokenB} {
		if !strings.HasPrefix(tok, agents.TokenPrefix) {
			t.Fatalf("token %q", tok)
		}
	}
	pwFile := filepath.Join(tmp, "bind-password")
	if err := os.WriteFile(pwFile, []byte(dir.BindPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	type agent struct {
		name, data string
		run        *proc
	}
	ags := []*agent{{name: "Paris DC", data: filepath.Join(tmp, "agent-paris")}, {name: "Lyon DC", data: filepath.Join(tmp, "agent-lyon")}}
	for i, tok := range []string{tokenA, tokenB} {
		a := ags[i]
		out := must(t, outs, progs.agent, "enroll", "--portal", px.url, "--token", tok, "--ca-file", px.caFile, "--data", a.data)
		if !strings.Contains(out, "enrolled as "+a.name) {
			t.Errorf("enroll: %s", out)
		}
		must(t, outs, progs.agent, "directory", "set", "--data", a.data, "--type", typ, "--url", dir.URL, "--ca-file", env.CAFile,
			"--bind-dn", dir.BindDN, "--bind-password-file", pwFile, "--base-dn", dir.PeopleDN)
		must(t, outs, progs.agent, "set", "--password-writeback", "on", "--data", a.data)
	}
	runAgent := func(a *agent) *proc {
		return start(t, outs, "writeback-agent run ("+a.name+")", progs.agent, "run", "--data", a.data)
	}
	var agentWatch []*socketWatch
	for _, a := range ags {
		a.run = runAgent(a)
		agentWatch = append(agentWatch, watchSockets(a.run.pid()))
	}
	list := func() map[string]agentRow {
		out := must(t, outs, progs.portal, "agent", "list", "--json", "--data", portalData)
		var rows []agentRow
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("agent list --json: %v\n%s", err, out)
		}
		m := map[string]agentRow{}
		for _, r := range rows {
			m[r.Name] = r
		}
		return m
	}
	states := func(want map[string]string) func() (bool, string) {
		return func() (bool, string) {
			m := list()
			for name, st := range want {
				if m[name].State != st || (st == "connected" && (!m[name].PasswordWriteback || m[name].Directory == "")) {
					return false, fmt.Sprintf("%+v", m)
				}
			}
			return true, ""
		}
	}
	eventually(t, 20*time.Second, "both agents connected", states(map[string]string{"Paris DC": "connected", "Lyon DC": "connected"}))
	browser.Step(t, ctx, "the agents page", chromedp.Navigate(portalURL+"/admin/agents"), chromedp.WaitVisible(chromedp.CSS(`[data-testid=agent]`)))
	if got := browser.Eval[string](t, ctx, `[...document.querySelectorAll('[data-testid=agent-state]')].map(e => e.innerText.trim()).join(",")`); got != "Connected,Connected" {
		browser.Shot(t, ctx, "failed-agents-page")
		t.Errorf("the agents page shows the states %q", got)
	}

	// 4. The portal in agents mode, writeback and unlock on; self-service
	// reset by e-mailed code, through a mail relay the portal reaches.
	must(t, outs, progs.portal, "directory", "set", "--mode", "agents", "--data", portalData)
	must(t, outs, progs.portal, "settings", "set", "--writeback", "yes", "--unlock", "yes", "--data", portalData)
	sink := mailtest.Start(t, mailtest.Options{})
	relay := mailRelay(t, outs, ns, sink)
	must(t, outs, progs.portal, "sspr", "set", "--enabled", "all", "--methods", "email", "--required", "1",
		"--helpdesk", "help@example.com", "--org-name", "Example Corp", "--data", portalData)
	must(t, outs, progs.portal, "mail", "set", "--host", relay.Addr().String(), "--port", strconv.Itoa(int(relay.Port())),
		"--tls", "none", "--from", "portal@example.com", "--data", portalData)

	// 5. A helpdesk reset in the browser, verified at the DC.
	u := newUser(t, testbed.UserOptions{})
	passwords := []string{u.Password, dir.BindPassword, adminPassword}
	openUser := func() {
		browser.Step(t, ctx, "find "+u.Login,
			chromedp.Navigate(portalURL+"/admin/users?q="+url.QueryEscape(u.Login)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=users]`)),
		)
		browser.Step(t, ctx, "open "+u.Login,
			chromedp.Click(chromedp.CSS(`[data-testid=users] a[href="/admin/users/`+u.Login+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid=user-state]`)),
		)
	}
	const outcome = `[data-testid=flash], [data-testid=errors], [data-testid=error-message]`
	submitReset := func(pw string) string {
		passwords = append(passwords, pw)
		browser.Step(t, ctx, "reset the password",
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.SendKeys(chromedp.ID("confirm"), pw),
			chromedp.Click(chromedp.CSS(`[data-testid=reset]`)),
			chromedp.WaitVisible(chromedp.CSS(outcome)),
		)
		return browser.Text(t, ctx, outcome)
	}
	resetOK := func(step string) string {
		t.Helper()
		pw := testbed.RandomPassword()
		openUser()
		if got := submitReset(pw); !strings.Contains(got, "Password reset for") {
			browser.Shot(t, ctx, "failed-"+step)
			t.Fatalf("%s: the page says %q", step, got)
		}
		if err := env.BindAs(t, dir, u.DN, pw); err != nil {
			t.Fatalf("%s: the new password does not bind at the DC: %v", step, err)
		}
		return pw
	}
	// auditAgents are the results and agents of the audit rows of one
	// activity, oldest first.
	auditAgents := func(activity string) []string {
		out := must(t, outs, progs.portal, "audit", "export", "--format", "jsonl", "--activity", activity, "--data", portalData)
		type row struct {
			id int64
			s  string
		}
		var rows []row
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var ev audit.JSONEvent
			var det struct {
				Agent string `json:"agent"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("audit export: %v: %s", err, line)
			}
			json.Unmarshal(ev.Details, &det)
			rows = append(rows, row{ev.ID, ev.Result + " " + det.Agent})
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].id < rows[j].id })
		var names []string
		for _, r := range rows {
			names = append(names, r.s)
		}
		return names
	}
	resetAgents := func() []string { return auditAgents(audit.ActivityResetByAdmin) }
	resetOK("first reset")
	if err := env.BindAs(t, dir, u.DN, u.Password); err == nil {
		t.Error("the old password still binds after the reset")
	}
	got := resetAgents()
	if len(got) != 1 || (got[0] != "success Paris DC" && got[0] != "success Lyon DC") {
		t.Fatalf("audit rows of the first reset: %q", got)
	}
	first := strings.TrimPrefix(got[0], "success ")
	// The same socket watch that checks the portal sees the agents'
	// connections to the directory: it would see the portal's.
	agentDC := false
	for _, w := range agentWatch {
		seen, _, _ := w.finish()
		for c := range seen {
			for _, dc := range dcs {
				agentDC = agentDC || c.remote == dc
			}
		}
	}
	if !agentDC {
		t.Errorf("the socket watch did not see the agents' connections to the directory: it proves nothing of the portal's")
	}

	// 6. Kill the agent that did it: the next reset goes through the other.
	var dead, alive *agent
	for _, a := range ags {
		if a.name == first {
			dead = a
		} else {
			alive = a
		}
	}
	dead.run.kill(syscall.SIGKILL)
	killed := time.Now()
	eventually(t, 10*time.Second, "the portal sees "+dead.name+" gone", states(map[string]string{dead.name: "disconnected", alive.name: "connected"}))
	t.Logf("the portal saw the killed agent gone after %s", time.Since(killed).Round(10*time.Millisecond))
	pw2 := resetOK("reset after one agent died")
	if got := resetAgents(); len(got) != 2 || got[1] != "success "+alive.name {
		t.Fatalf("audit rows after killing %s: %q", dead.name, got)
	}

	// Kill both: the page says so clearly and the DC is unchanged.
	openUser()
	alive.run.kill(syscall.SIGKILL)
	eventually(t, 10*time.Second, "the portal sees both agents gone", states(map[string]string{dead.name: "disconnected", alive.name: "disconnected"}))
	pw3 := testbed.RandomPassword()
	msg := submitReset(pw3)
	browser.Shot(t, ctx, "no-agent")
	t.Logf("with both agents down the page says: %q", msg)
	if !strings.Contains(msg, "no agent connected") {
		t.Errorf("with both agents down the page says %q", msg)
	}
	if err := env.BindAs(t, dir, u.DN, pw2); err != nil {
		t.Errorf("with both agents down, the last password no longer binds: %v", err)
	}
	if err := env.BindAs(t, dir, u.DN, pw3); err == nil {
		t.Error("with both agents down, the refused password binds")
	}
	if got := resetAgents(); len(got) != 3 || !strings.HasPrefix(got[2], "failure") {
		t.Errorf("audit rows after killing both: %q", got)
	}

	// 7. Both back; revoke one while it is connected: its run ends, and it
	// cannot come back.
	for _, a := range ags {
		a.run = runAgent(a)
	}
	eventually(t, 30*time.Second, "both agents connected again", states(map[string]string{"Paris DC": "connected", "Lyon DC": "connected"}))
	victim, keeper := ags[1], ags[0]
	must(t, outs, progs.portal, "agent", "revoke", victim.name, "--data", portalData)
	if code := victim.run.wait(t, 15*time.Second); code == 0 || !strings.Contains(victim.run.out.String(), "revoked") {
		t.Errorf("the revoked agent's run exited with %d:\n%s", code, victim.run.out.String())
	}
	again := runAgent(victim)
	if code := again.wait(t, 30*time.Second); code == 0 || !strings.Contains(again.out.String(), "revoked") {
		t.Errorf("the revoked agent's run started again exited with %d:\n%s", code, again.out.String())
	}
	t.Logf("the revoked agent's run said: %s", lastLines(victim.run.out.String(), 2))
	t.Logf("started again, it said: %s", lastLines(again.out.String(), 2))
	eventually(t, 10*time.Second, "revoked and connected", states(map[string]string{victim.name: "revoked", keeper.name: "connected"}))
	pw4 := resetOK("reset after revoking one agent")
	if got := resetAgents(); len(got) != 4 || got[3] != "success "+keeper.name {
		t.Errorf("audit rows after revoking %s: %q", victim.name, got)
	}

	// An unlock by the helpdesk, through the agent: the lockout ends at the
	// DC and the password stays.
	locked := func() bool { return env.ADLocked(t, u) }
	if typ == "openldap" {
		env.LockLDAP(t, u)
		locked = func() bool { return env.LDAPLocked(t, u) }
	} else {
		env.LockAD(t, u)
	}
	openUser()
	browser.Step(t, ctx, "unlock", chromedp.Click(chromedp.CSS(`[data-testid=unlock]`)), chromedp.WaitVisible(chromedp.CSS(outcome)))
	if got := browser.Text(t, ctx, outcome); !strings.Contains(got, "Unlocked") {
		t.Errorf("unlock: the page says %q", got)
	}
	if locked() {
		t.Error("still locked at the DC after the unlock")
	}
	if err := env.BindAs(t, dir, u.DN, pw4); err != nil {
		t.Errorf("after the unlock the password does not bind: %v", err)
	}
	if got := auditAgents(audit.ActivityUnlockByAdmin); len(got) != 1 || got[0] != "success "+keeper.name {
		t.Errorf("audit rows of the unlock: %q", got)
	}

	// A person changes their own password with the current one: the agent
	// checks it at the DC and writes the new one.
	pw5 := testbed.RandomPassword()
	passwords = append(passwords, pw5)
	browser.Step(t, ctx, "change with the current password",
		chromedp.Navigate(portalURL+"/change"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), u.Login),
		chromedp.SendKeys(chromedp.ID("current"), pw4),
		chromedp.SendKeys(chromedp.ID("password"), pw5),
		chromedp.SendKeys(chromedp.ID("confirm"), pw5),
		chromedp.Click(chromedp.CSS(`[data-testid=change]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=done], [data-testid=errors]`)),
	)
	if got := browser.Text(t, ctx, `[data-testid=done], [data-testid=errors]`); !strings.Contains(got, "Your password has been changed") {
		browser.Shot(t, ctx, "failed-change")
		t.Fatalf("change: the page says %q", got)
	}
	if err := env.BindAs(t, dir, u.DN, pw5); err != nil {
		t.Fatalf("the changed password does not bind: %v", err)
	}
	if got := auditAgents(audit.ActivityChangeSelfService); len(got) != 1 || got[0] != "success "+keeper.name {
		t.Errorf("audit rows of the change: %q", got)
	}

	// A self-service reset with an e-mailed code, through the agent.
	pw6 := testbed.RandomPassword()
	passwords = append(passwords, pw6)
	code := startEmailReset(t, ctx, "forgot my password", portalURL, u.Login, sink, u.Mail)
	finishEmailReset(t, ctx, "the code and a new password", code, pw6)
	if err := env.BindAs(t, dir, u.DN, pw6); err != nil {
		t.Fatalf("the self-service password does not bind: %v", err)
	}
	if got := auditAgents(audit.ActivityResetSelfService); len(got) != 1 || got[0] != "success "+keeper.name {
		t.Errorf("audit rows of the self-service reset: %q", got)
	}

	// A frozen agent (SIGSTOP): the person waits for the job's deadline,
	// then sees that nothing was changed, and the audit row says which
	// agent and why; thawed, the agent gets the job late and must drop it.
	// Once (AD): it takes the deadline's 15 s and is the same for both.
	if typ == "ad" {
		openUser()
		late := testbed.RandomPassword()
		passwords = append(passwords, late)
		keeper.run.cmd.Process.Signal(syscall.SIGSTOP)
		frozen := time.Now()
		browser.Step(t, ctx, "reset through a frozen agent",
			chromedp.SendKeys(chromedp.ID("password"), late),
			chromedp.SendKeys(chromedp.ID("confirm"), late),
			chromedp.Click(chromedp.CSS(`[data-testid=reset]`)),
		)
		wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
		err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(outcome)))
		cancel()
		waited := time.Since(frozen)
		if err != nil {
			keeper.run.cmd.Process.Signal(syscall.SIGCONT)
			t.Fatalf("no answer within 40 s from a frozen agent: %v", err)
		}
		msg := browser.Text(t, ctx, outcome)
		keeper.run.cmd.Process.Signal(syscall.SIGCONT)
		t.Logf("with the agent frozen the page answered after %s: %q", waited.Round(100*time.Millisecond), msg)
		if !strings.Contains(msg, "could not be reached") || !strings.Contains(msg, "Nothing was changed") {
			t.Errorf("with the agent frozen the page says %q", msg)
		}
		// One deadline (agenthub.DefaultMaxWait, 15 s), not one per
		// directory operation of the request.
		if waited > 25*time.Second {
			t.Errorf("with the agent frozen the person waited %s", waited.Round(100*time.Millisecond))
		}
		row := lastLines(must(t, outs, progs.portal, "audit", "export", "--format", "jsonl", "--activity", audit.ActivityResetByAdmin,
			"--result", "failure", "--data", portalData), 1)
		var ev audit.JSONEvent
		var det struct {
			Agent string `json:"agent"`
			Error string `json:"error"`
		}
		json.Unmarshal([]byte(row), &ev)
		json.Unmarshal(ev.Details, &det)
		if det.Agent != keeper.name {
			t.Errorf("the audit row of the timed-out reset does not name the agent: %s", row)
		}
		t.Logf("its audit row: reason %q, details %s", ev.Reason, ev.Details)
		eventually(t, 60*time.Second, keeper.name+" connected after thawing", states(map[string]string{keeper.name: "connected"}))
		eventually(t, 10*time.Second, "the thawed agent drops the late job", func() (bool, string) {
			out := keeper.run.out.String()
			return strings.Contains(out, "job refused") && strings.Contains(out, "reason="+agentwire.RefusedLate), lastLines(out, 3)
		})
		if err := env.BindAs(t, dir, u.DN, pw6); err != nil {
			t.Errorf("after the frozen agent thawed, the password is not the last one set: %v", err)
		}
		if err := env.BindAs(t, dir, u.DN, late); err == nil {
			t.Error("the frozen agent applied the job late")
		}
	}

	// Password writeback off on the agent: it refuses the write, the page
	// says so, the DC is unchanged. The portal learns of the switch at the
	// agent's next heartbeat (agentwire.HeartbeatEvery, 10 s) and then
	// refuses before sending; a fresh connection gives the test that long
	// to see the agent's own refusal first.
	keeper.run.kill(syscall.SIGTERM)
	keeper.run = runAgent(keeper)
	eventually(t, 20*time.Second, keeper.name+" connected again", states(map[string]string{keeper.name: "connected"}))
	openUser()
	must(t, outs, progs.agent, "set", "--password-writeback", "off", "--data", keeper.data)
	if got := submitReset(testbed.RandomPassword()); !strings.Contains(got, "Password writeback is turned off on the writeback agent. Nothing was changed.") {
		t.Errorf("with the agent's writeback just switched off the page says %q, not the agent's refusal", got)
	}
	if got := resetAgents(); got[len(got)-1] != "failure "+keeper.name {
		t.Errorf("audit rows after the agent refused: %q", got)
	}
	t.Logf("its audit row: %s", lastLines(must(t, outs, progs.portal, "audit", "export", "--format", "jsonl", "--activity", audit.ActivityResetByAdmin, "--result", "failure", "--data", portalData), 1))
	// After a reconnect the portal knows and refuses before sending.
	keeper.run.kill(syscall.SIGTERM)
	keeper.run = runAgent(keeper)
	eventually(t, 20*time.Second, "the portal sees the agent's switch off", func() (bool, string) {
		r := list()[keeper.name]
		return r.State == "connected" && !r.PasswordWriteback, fmt.Sprintf("%+v", r)
	})
	openUser()
	if got := browser.Text(t, ctx, `[data-testid=why-not]`); !strings.Contains(got, "the agent has password writeback turned off") {
		t.Errorf("with the agent's writeback off the user page says %q", got)
	} else {
		t.Logf("with the agent's writeback off the user page says: %q", got)
	}
	if !browser.Eval[bool](t, ctx, `document.querySelector('[data-testid=reset]').closest('fieldset').disabled`) {
		t.Error("with the agent's writeback off the reset form is enabled")
	}
	if err := env.BindAs(t, dir, u.DN, pw6); err != nil {
		t.Errorf("with the agent's writeback off, the password changed at the DC: %v", err)
	}
	for _, pw := range passwords[len(passwords)-1:] {
		if err := env.BindAs(t, dir, u.DN, pw); err == nil {
			t.Error("with the agent's writeback off, a refused password binds")
		}
	}

	// 8. Reused, expired and forged tokens: one line, nothing written. The
	// expired one is a fresh token whose hour is moved into the past in
	// the portal's database (the portal reads it there at each enrolment).
	addOut = must(t, outs, progs.portal, "agent", "add", "--name", "Late DC", "--data", portalData)
	lines = strings.Split(strings.TrimSpace(addOut), "\n")
	expired := strings.TrimSpace(lines[len(lines)-1])
	ageToken(t, filepath.Join(portalData, store.FileName), expired, 2*time.Hour)
	for _, tc := range []struct{ name, token string }{
		{"the page's token again", tokenA},
		{"the command line's token again", tokenB},
		{"an expired token", expired},
		{"a forged token", agents.TokenPrefix + randHex(24)},
		{"garbage", "garbage"},
	} {
		data := filepath.Join(tmp, "fresh-"+randHex(4))
		code, out, errOut := command(t, outs, progs.agent, "enroll", "--portal", px.url, "--token", tc.token, "--ca-file", px.caFile, "--data", data)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "This enrolment token is not valid") {
			t.Errorf("enroll with %s: exit %d, out %q, err %q", tc.name, code, out, errOut)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("enroll with %s wrote %s (%v)", tc.name, data, err)
		}
	}

	// The data folders while the programs run (with their SQLite WAL
	// files), and again once they stopped.
	folders := []string{portalData, ags[0].data, ags[1].data}
	if wal := scanFolders(t, passwords, []string{tokenA, tokenB, expired}, folders); wal == 0 {
		t.Error("no SQLite WAL file in the data folders while the programs run: the scan did not cover them")
	}

	// Stop everything, then look at what the programs left.
	keeper.run.kill(syscall.SIGTERM)
	portal.kill(syscall.SIGTERM)
	seen, reads, err := watch.finish()
	if err != nil || reads == 0 {
		t.Fatalf("the portal's sockets could not be read: %d reads, %v", reads, err)
	}
	proxySide := netip.MustParseAddr("127.0.0.1")
	if ns != nil {
		proxySide = ns.hostIP
	}
	// Outbound only: every connection the portal held was accepted on its
	// listening port (from the proxy or the browser), except the one it
	// opens to the mail relay. None went to a directory or an agent.
	sawProxy := false
	for c := range seen {
		for _, dc := range dcs {
			if c.remote == dc || c.remote.Port() == dc.Port() {
				t.Errorf("the portal held a connection to %s (a directory is at %s)", c.remote, dc)
			}
		}
		if c.local.Port() != uint16(port) && c.remote != relay {
			t.Errorf("the portal opened a connection %s: neither accepted on its port %d nor to the mail relay %s", c, port, relay)
		}
		sawProxy = sawProxy || (c.local.Port() == uint16(port) && c.remote.Addr() == proxySide)
	}
	if !sawProxy {
		t.Errorf("the socket watch never saw the proxy's connections to the portal (saw %v): it would miss a directory connection too", keys(seen))
	}
	t.Logf("the portal's connections during the test: %v (%d samples)", keys(seen), reads)

	// 9. No password anywhere: outputs, data folders, forwarded bytes.
	checkSecrets(t, passwords, []string{tokenA, tokenB, expired}, outs, px, folders, u)
}

// ageToken moves an enrolment token's creation and expiry back by d in
// the portal's SQLite database, while the portal runs.
func ageToken(t *testing.T, dbFile, token string, d time.Duration) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dbFile+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE agent_tokens SET created_ms = created_ms - ?, expires_ms = expires_ms - ? WHERE token_hash = ?`,
		d.Milliseconds(), d.Milliseconds(), agentwire.TokenHash(token))
	if err != nil {
		t.Fatalf("age the token: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("age the token: %d rows", n)
	}
}

// mailRelay returns the address at which the portal reaches the mail
// sink: the sink itself, or, when the portal is in a namespace, a
// forwarder on the namespace's loopback (the test binary itself, started
// there) to a forwarder on the host's end of the link, to the sink.
func mailRelay(t *testing.T, outs *outputs, ns *netns, sink *mailtest.Sink) netip.AddrPort {
	t.Helper()
	host, port := sink.Addr()
	sinkAddr := net.JoinHostPort(host, strconv.Itoa(port))
	if ns == nil {
		return netip.MustParseAddrPort(sinkAddr)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ns.hostIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go forward(ln, sinkAddr)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	relay := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(20000+randInt(20000)))
	p := start(t, outs, "mail relay", "env", forwardEnv+"="+relay.String()+"="+ln.Addr().String(), "ip", "netns", "exec", ns.name, self)
	eventually(t, 10*time.Second, "the mail relay listens", func() (bool, string) {
		if !p.running() {
			t.Fatalf("the mail relay exited: %s", p.out.String())
		}
		return strings.Contains(p.out.String(), "forwarding"), p.out.String()
	})
	return relay
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

func keys(m map[tcpConn]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k.String())
	}
	return out
}

// encodings are the forms in which a secret could be written: as typed,
// and UTF-16LE as AD's unicodePwd carries it.
func encodings(s string) [][]byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return [][]byte{[]byte(s), b}
}

// findSecrets reports each secret found in b, in any of its encodings
// (without saying which secret: the test log stays clean too).
func findSecrets(t *testing.T, where string, b []byte, secrets []string, what string) {
	t.Helper()
	for _, s := range secrets {
		for _, enc := range encodings(s) {
			if bytes.Contains(b, enc) {
				t.Errorf("a %s is in %s", what, where)
			}
		}
	}
}

// scanFolders looks for the secrets in the raw bytes of every file of the
// folders (the SQLite database, its WAL, the key and identity files, …)
// and returns how many WAL files it read.
func scanFolders(t *testing.T, passwords, tokens, folders []string) (wal int) {
	t.Helper()
	nfiles := 0
	for _, dir := range folders {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			b, err := os.ReadFile(p)
			if os.IsNotExist(err) {
				return nil // a WAL checkpointed away, a status file replaced
			}
			if err != nil {
				t.Errorf("read %s: %v", p, err)
				return nil
			}
			nfiles++
			if strings.HasSuffix(p, "-wal") && len(b) > 0 {
				wal++
			}
			findSecrets(t, p, b, passwords, "password")
			findSecrets(t, p, b, tokens, "enrolment token")
			return nil
		})
	}
	if nfiles < 6 {
		t.Errorf("only %d files in the data folders: the check looked at nothing", nfiles)
	}
	return wal
}

func checkSecrets(t *testing.T, passwords, tokens []string, outs *outputs, px *proxy, folders []string, u testbed.TestUser) {
	t.Helper()
	find := func(where string, b []byte, secrets []string, what string) { findSecrets(t, where, b, secrets, what) }
	for _, o := range outs.all() {
		find(o.name, []byte(o.buf.String()), passwords, "password")
		if !strings.HasPrefix(o.name, "writeback agent add ") { // it prints the token, its purpose
			find(o.name, []byte(o.buf.String()), tokens, "enrolment token")
		}
	}
	scanFolders(t, passwords, tokens, folders)
	var jobs, answers []byte
	for i, c := range px.captured() {
		toPortal, toAgent := c.bytes()
		find(fmt.Sprintf("the proxy's connection %d to the portal", i), toPortal, passwords, "password")
		find(fmt.Sprintf("the proxy's connection %d from the portal", i), toAgent, passwords, "password")
		for _, s := range []struct {
			raw []byte
			out *[]byte
		}{{toAgent, &jobs}, {toPortal, &answers}} {
			p, err := wsPayloads(s.raw)
			if err != nil {
				t.Errorf("the proxy's connection %d: %v", i, err)
			}
			*s.out = append(*s.out, p...)
		}
	}
	// The decoded frames are what the agents and the portal said: the
	// jobs name the user, the agents' answers (masked frames) its DN.
	if !bytes.Contains(jobs, []byte(u.Login)) || !bytes.Contains(answers, []byte(u.DN)) {
		t.Fatalf("the proxy's WebSocket frames do not hold the user's login and DN (%d and %d bytes): the check below would prove nothing", len(jobs), len(answers))
	}
	find("the WebSocket frames the proxy forwarded to the agents", jobs, passwords, "password")
	find("the WebSocket frames the proxy forwarded to the portal", answers, passwords, "password")
}
