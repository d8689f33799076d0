package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/writeback/writeback/cmd/internal/cmdline"
	"github.com/writeback/writeback/cmd/internal/datadir"
	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/errs"
)

// enrollTimeout bounds the enrolment request.
const enrollTimeout = 30 * time.Second

// maxAnswer bounds what the agent reads of the portal's enrolment answer.
const maxAnswer = 64 << 10

// parsePortal checks a portal URL: https with a host, nothing else
// (no user, query or fragment). The path may hold a prefix the portal is
// served under.
func parsePortal(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, cmdline.Usagef("--portal %q: want the portal's public https:// URL, e.g. https://reset.example.com", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// portalClient is the HTTP client that talks to the portal: TLS verified
// with the system roots, or with caPEM's only when given; through the
// proxy the environment names (HTTPS_PROXY), as the company's outbound
// traffic goes; and no redirects followed, so the token and the connection
// go to the URL given and nowhere else.
func portalClient(caPEM string) (*http.Client, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("no PEM certificate in it")
		}
		conf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// reachError explains a failed request to the portal in one line.
func reachError(portal string, err error) error {
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown) || (errors.As(err, &verify) && !errors.As(err, &host)):
		return errs.E(errs.Unavailable, fmt.Sprintf("the portal's certificate at %s is not trusted: give the CA that issued it with --ca-file", portal), err)
	case errors.As(err, &host):
		return errs.E(errs.Unavailable, fmt.Sprintf("the portal's certificate is not valid for %s", portal), err)
	}
	return errs.E(errs.Unavailable, fmt.Sprintf("cannot reach the portal at %s: %v", portal, err), err)
}

// validAgentID tells whether the portal's agent ID can be sent back in
// the HeaderAgentID header: printable ASCII without spaces, bounded.
func validAgentID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r >= 0x7f }) < 0
}

// safeLine keeps what a server said to one printable line of bounded size.
func safeLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

func cmdEnroll(ctx context.Context, args []string, getenv cmdline.Env, io cmdline.IO) error {
	fs := cmdline.NewFlags(program+" enroll", io.Out)
	data := dataFlag(fs, getenv)
	portalFlag := fs.String("portal", "", "the portal's public URL, https://… (the same one people open)")
	token := fs.String("token", "", "the one-time enrolment `TOKEN` from the portal's Writeback agents page or 'writeback agent add' (valid one hour); - reads it from standard input")
	caFile := fs.String("ca-file", "", "PEM file with the CA certificates that verify the portal (default: the system roots)")
	force := fs.Bool("force", false, "enrol again with a new token, replacing this agent's identity with a new key (then revoke the old agent on the portal)")
	if err := cmdline.Parse(fs, args); err != nil {
		return err
	}
	if *portalFlag == "" {
		return cmdline.Usagef("--portal is required")
	}
	portal, err := parsePortal(*portalFlag)
	if err != nil {
		return err
	}
	tok := strings.TrimSpace(*token)
	if tok == "-" {
		// Out of ps and shell history: echo "$TOKEN" | writeback-agent enroll --token - …
		tok = strings.TrimSpace(cmdline.FirstLine(io.In))
	}
	switch {
	case tok == "":
		return cmdline.Usagef("--token is required")
	case len(tok) > 512 || strings.IndexFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return cmdline.Usagef("--token: this is not an enrolment token (copy it again from the portal)")
	}
	var caPEM string
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return cmdline.Usagef("--ca-file %q: %v", *caFile, err)
		}
		caPEM = string(b)
	}
	client, err := portalClient(caPEM)
	if err != nil {
		return cmdline.Usagef("--ca-file %q: %v", *caFile, err)
	}
	if *data == "" {
		return cmdline.Usagef("--data must not be empty")
	}
	old, err := readConfig(*data)
	if err != nil {
		return err
	}
	if (old.enrolled() || exists(*data, identityFile)) && !*force {
		what := "this agent is already enrolled"
		if old.enrolled() {
			what = fmt.Sprintf("this agent is already enrolled as %s with %s", old.Name, old.Portal)
		}
		return errs.E(errs.Conflict, what+"; give --force to enrol it again with a new token and key (then revoke the old agent on the portal)", nil)
	}

	// The key pair is made here and written only once the portal accepted
	// it: a refused enrolment leaves the data folder as it was.
	id, err := agentwire.NewIdentity()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	body, err := json.Marshal(agentwire.EnrollRequest{Token: tok, Public: id.Public(), Proof: id.SignEnroll(tok), Host: host, Version: version})
	if err != nil {
		return fmt.Errorf("encode the enrolment: %w", err)
	}
	resp, err := postEnroll(ctx, client, portal, body)
	if err != nil {
		return err
	}

	idJSON, err := id.MarshalJSON()
	if err != nil {
		return err
	}
	cfg := agentConfig{Portal: portal.String(), AgentID: resp.AgentID, Name: resp.Name, CAPEM: caPEM, PortalKey: resp.PortalKey,
		EnrolledAt: time.Now().UTC().Truncate(time.Second), WritesPerMinute: old.WritesPerMinute}
	cfgJSON, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", configFile, err)
	}
	if err := datadir.Make(*data); err != nil {
		return err
	}
	idFile, err := stage(*data, identityFile, idJSON)
	if err != nil {
		return err
	}
	cfgFile, err := stage(*data, configFile, append(cfgJSON, '\n'))
	if err != nil {
		idFile.discard()
		return err
	}
	if err := idFile.commit(); err != nil {
		cfgFile.discard()
		return err
	}
	if err := cfgFile.commit(); err != nil {
		return err
	}
	fmt.Fprintf(io.Out, "enrolled as %s with %s (agent ID %s)\n", cfg.Name, cfg.Portal, cfg.AgentID)
	fmt.Fprintf(io.Out, "next: %s directory set … and %s directory test, then %s run\n", program, program, program)
	return nil
}

// postEnroll sends the enrolment and reads the portal's answer: the
// agent's identity, or the portal's one-line refusal.
func postEnroll(ctx context.Context, client *http.Client, portal *url.URL, body []byte) (agentwire.EnrollResponse, error) {
	var out agentwire.EnrollResponse
	ctx, cancel := context.WithTimeout(ctx, enrollTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, portal.String()+agentwire.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return out, fmt.Errorf("enrolment request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return out, reachError(portal.String(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return out, reachError(portal.String(), err)
	}
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated:
		if err := json.Unmarshal(b, &out); err != nil || !validAgentID(out.AgentID) || len(out.PortalKey) != ed25519.PublicKeySize {
			return out, errs.E(errs.Unavailable, fmt.Sprintf("the portal at %s gave no agent identity (is --portal the portal's URL?)", portal), err)
		}
		out.Name = safeLine(out.Name)
		return out, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return out, errs.E(errs.Invalid, fmt.Sprintf("the portal answered with a redirect to %s: give the portal's public URL as --portal",
			safeLine(resp.Header.Get("Location"))), nil)
	}
	var refusal agentwire.EnrollError
	if json.Unmarshal(b, &refusal) == nil && strings.TrimSpace(refusal.Error) != "" {
		// The portal's words, which say what to do (a new token, …).
		return out, errs.E(errs.Forbidden, safeLine(refusal.Error), fmt.Errorf("enrolment refused: %s", resp.Status))
	}
	return out, errs.E(errs.Unavailable, fmt.Sprintf("the portal at %s answered %s (is --portal the portal's URL?)", portal, resp.Status), nil)
}
