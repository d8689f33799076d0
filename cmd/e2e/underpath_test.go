package e2e

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAgentUnderPathOverTLS is issue 12 items 7 and 8 with the real
// programs: `writeback serve` serves HTTPS itself (--tls-cert/--tls-key)
// under https://127.0.0.1:PORT/password/; the enrolment command that
// `writeback agent add` prints names the portal under its path, and a
// `writeback-agent` enrolled with it — verifying the portal's certificate
// against the test's CA — connects under the path and shows as connected.
func TestAgentUnderPathOverTLS(t *testing.T) {
	progs := build(t)
	outs := &outputs{}
	tmp := t.TempDir()
	cert, caFile := testCA(t)
	certFile, keyFile := filepath.Join(tmp, "cert.pem"), filepath.Join(tmp, "key.pem")
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "https://" + addr + "/password/"
	portalData := filepath.Join(tmp, "portal")
	portal := start(t, outs, "writeback serve", progs.portal, "serve", "--listen", addr, "--data", portalData, "--base-url", base,
		"--tls-cert", certFile, "--tls-key", keyFile)
	eventually(t, 20*time.Second, "the portal answers over HTTPS", func() (bool, string) {
		if !portal.running() {
			t.Fatalf("serve exited with %d:\n%s", portal.code, portal.out.String())
		}
		// The Docker HEALTHCHECK's command, with serve's variables.
		code, out, errOut := command(t, outs, progs.portal, "healthcheck", "--listen", addr, "--tls-cert", certFile, "--base-url", base)
		return code == 0, out + errOut
	})

	addOut := must(t, outs, progs.portal, "agent", "add", "--name", "Path DC", "--data", portalData, "--base-url", base)
	lines := strings.Split(strings.TrimSpace(addOut), "\n")
	token := strings.TrimSpace(lines[len(lines)-1])
	portalURL := "https://" + addr + "/password"
	if !strings.Contains(addOut, "writeback-agent enroll --portal "+portalURL+" --token "+token) {
		t.Fatalf("the enrolment command does not name the portal under its path:\n%s", addOut)
	}
	agentData := filepath.Join(tmp, "agent")
	if out := must(t, outs, progs.agent, "enroll", "--portal", portalURL, "--token", token, "--ca-file", caFile, "--data", agentData); !strings.Contains(out, "enrolled as Path DC") {
		t.Errorf("enroll: %s", out)
	}
	start(t, outs, "writeback-agent run", progs.agent, "run", "--data", agentData)
	eventually(t, 20*time.Second, "the agent connected under the path", func() (bool, string) {
		code, out, errOut := command(t, outs, progs.agent, "status", "--connected", "--data", agentData)
		if code != 0 {
			return false, out + errOut
		}
		var rows []agentRow
		list := must(t, outs, progs.portal, "agent", "list", "--json", "--data", portalData)
		if err := json.Unmarshal([]byte(list), &rows); err != nil {
			t.Fatalf("agent list --json: %v\n%s", err, list)
		}
		return len(rows) == 1 && rows[0].State == "connected", list
	})
	if strings.Contains(portal.out.String(), "level=ERROR") {
		t.Errorf("the portal logged errors:\n%s", portal.out.String())
	}
}
