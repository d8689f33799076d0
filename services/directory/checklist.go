package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
)

// Test checks the configuration step by step and says in plain words what
// works and what does not: per server whether it is reachable, its TLS
// certificate and the service account's sign-in; then, on the first server
// that works, the base DNs, how many users the filter finds, the server's
// capabilities and the password policy; and, when login is not empty, that
// user's state and what the service account may do to it. It changes nothing.
func (c *Client) Test(ctx context.Context, login string) Checklist {
	var l Checklist
	usable := false
	for _, srv := range c.servers {
		if c.testServer(ctx, srv, &l) {
			usable = true
		}
	}
	if !usable {
		l.add(errs.Textf("Directory"), false, "No server could be used; the lines above say why.")
		return l.finish()
	}
	_, err := c.run(ctx, "test", func(s *session) error {
		s.testDirectory(&l, strings.TrimSpace(login))
		return nil
	})
	if err != nil {
		l.add(errs.Textf("Directory"), false, "%s", errs.TextOf(err))
	}
	return l.finish()
}

// testServer checks one server up to the service account's sign-in and
// tells whether it can be used.
func (c *Client) testServer(ctx context.Context, srv *server, l *Checklist) bool {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	name := srv.u.raw

	start := time.Now()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", srv.u.hostport)
	if err != nil {
		l.add(errs.Textf("Reachable: %s", name), false, "Cannot connect to %s: %s.", srv.u.hostport, plainNetError(err))
		l.diagnose(err)
		l.Items[len(l.Items)-1].Server = name
		return false
	}
	_ = raw.Close()
	l.add(errs.Textf("Reachable: %s", name), true, "Connected to %s in %d ms.", srv.u.hostport, time.Since(start).Milliseconds())
	l.Items[len(l.Items)-1].Server = name

	if srv.plain {
		l.add(errs.Textf("Encryption: %s", name), false, "%s", msgInsecure)
		l.add(errs.Textf("Service account sign-in: %s", name), false, "Not tried: the service account's password would travel unencrypted.")
		return false
	}
	pc, err := connect(ctx, srv.u, srv.startTLS, srv.tls)
	if err != nil {
		e := classifyConnect(ctx, "test", srv.u, err)
		detail := e.Message
		var ce *connectError
		if codeOf(e) == CodeUnavailable && errors.As(err, &ce) {
			detail = fmt.Sprintf("The %s step failed: %s.", map[string]string{"tls": "TLS handshake", "starttls": "StartTLS", "tcp": "connection"}[ce.stage], plainNetError(ce.err))
		}
		l.add(errs.Textf("Encryption: %s", name), false, "%s", detail)
		l.diagnose(err)
		return false
	}
	l.add(errs.Textf("Encryption: %s", name), true, "%s", describeTLS(srv, pc.tlsState))

	if err := c.bindService(ctx, srv, pc); err != nil {
		pc.close()
		l.add(errs.Textf("Service account sign-in: %s", name), false, "%s", errs.TextOf(err))
		l.diagnose(err)
		return false
	}
	l.add(errs.Textf("Service account sign-in: %s", name), true, "Signed in as %s.", c.cfg.BindDN)
	srv.release(pc, true)
	return true
}

// testDirectory runs the checks that need a bound connection.
func (s *session) testDirectory(l *Checklist, login string) {
	cfg := s.c.cfg
	dse, oe := s.rootDSE()
	if oe != nil {
		l.add(errs.Textf("Server information"), false, "The root DSE could not be read: %s.", errs.TextOf(generic(oe, s.ctx)))
		return
	}
	switch {
	case cfg.Type == TypeAD && !dse.isAD():
		l.add(errs.Textf("Directory type"), false, "The settings say Active Directory, but the server does not advertise Active Directory capabilities; choose OpenLDAP.")
	case cfg.Type == TypeOpenLDAP && dse.isAD():
		l.add(errs.Textf("Directory type"), false, "The settings say OpenLDAP, but the server is Active Directory; choose Active Directory.")
	default:
		detail := map[Type]string{TypeAD: "Active Directory", TypeOpenLDAP: "OpenLDAP"}[cfg.Type]
		if dse.vendor != "" {
			detail += " (" + dse.vendor + ")"
		} else if dse.dnsHostName != "" {
			detail += " (" + dse.dnsHostName + ")"
		}
		l.add(errs.Textf("Directory type"), true, "%s, as configured.", detail)
	}

	for _, b := range cfg.BaseDNs {
		_, oe := s.search(ldap.NewSearchRequest(b, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"1.1"}, nil))
		switch {
		case oe == nil:
			l.add(errs.Textf("Base DN: %s", b), true, "Found.")
		case oe.LDAPResult == ldap.LDAPResultNoSuchObject:
			l.add(errs.Textf("Base DN: %s", b), false, "Does not exist (or the service account may not see it).")
		default:
			l.add(errs.Textf("Base DN: %s", b), false, "Could not be read: %s", errs.TextOf(generic(oe, s.ctx)))
		}
	}

	// Counting stops at maxCount users or when half the remaining time is
	// used, so a large directory cannot time the checklist out.
	const maxCount = 100000
	deadline := time.Now().Add(time.Until(deadlineOf(s.ctx)) / 2)
	total, complete, failed := 0, true, errs.Text{}
	for _, b := range cfg.BaseDNs {
		n, done, oe := s.countUsers(b, 500, maxCount-total, deadline)
		total += n
		complete = complete && done
		if oe != nil && oe.LDAPResult != ldap.LDAPResultNoSuchObject {
			if oe.LDAPResult == ldap.LDAPResultSizeLimitExceeded || oe.LDAPResult == ldap.LDAPResultAdminLimitExceeded {
				complete = false
				continue
			}
			failed = errs.TextOf(generic(oe, s.ctx))
			break
		}
	}
	switch {
	case failed.Format != "":
		l.add(errs.Textf("Users"), false, "The user search failed: %s", failed)
	case total == 0:
		l.add(errs.Textf("Users"), false, "No user matches the filter under the base DNs; check them and the user filter.")
	case !complete:
		l.add(errs.Textf("Users"), true, "At least %d users match the filter under the base DNs (counting stopped there).", total)
	case total == 1:
		l.add(errs.Textf("Users"), true, "1 user matches the filter under the base DNs.")
	default:
		l.add(errs.Textf("Users"), true, "%d users match the filter under the base DNs.", total)
	}

	if cfg.Type == TypeAD {
		if oid := dse.policyHints(); oid != "" {
			l.add(errs.Textf("Capabilities"), true, "Password history is enforced on reset: yes (the DC advertises the policy-hints control %s).", oid)
		} else {
			l.add(errs.Textf("Capabilities"), true, "Password history is enforced on reset: no. This DC does not advertise the policy-hints control, so a reset is checked for length and complexity but not against the history.")
		}
	} else {
		pm := slices.Contains(dse.supportedExtension, oidPasswordModify)
		pp := slices.Contains(dse.supportedControl, ldap.ControlTypeBeheraPasswordPolicy)
		switch {
		case !pm:
			l.add(errs.Textf("Capabilities"), false, "The server does not advertise the Password Modify extended operation (RFC 3062), which the portal uses to set passwords.")
		case !pp:
			l.add(errs.Textf("Capabilities"), true, "Password Modify is supported. The password policy control is not advertised: refusals will not say which rule failed (is the ppolicy overlay loaded?).")
		default:
			l.add(errs.Textf("Capabilities"), true, "Password Modify and the password policy control are supported.")
		}
	}

	s.testProtection(l)

	var p Policy
	if cfg.Type == TypeAD {
		p, oe = s.adPolicy(nil)
	} else {
		p, oe = s.openLDAPPolicy(nil)
	}
	if oe != nil {
		l.add(errs.Textf("Password policy"), false, "The policy could not be read, so refusals cannot say which rule failed: %s", errs.TextOf(generic(oe, s.ctx)))
		l.diagnose(oe)
	} else {
		l.add(errs.Textf("Password policy"), true, "%s.", upperFirst(p.String()))
	}

	if login == "" {
		return
	}
	login, err := identifierArg("test", login, "")
	if err != nil {
		l.add(errs.Textf("User to check"), false, "%s", errs.TextOf(err))
		return
	}
	name := errs.Textf("User %s", login)
	e, err := s.findEntry(login)
	if err != nil {
		l.add(name, false, "%s", errs.TextOf(err))
		return
	}
	u, err := s.user(e)
	if err != nil {
		l.add(name, false, "%s", errs.TextOf(err))
		return
	}
	found := []any{u.DN, yesNoText(u.Locked), yesNoText(u.Disabled), yesNoText(u.PasswordExpired), yesNoText(u.MustChange), yesNoText(u.Protected)}
	switch {
	case u.Protected:
		l.add(name, false, "Found %s. Locked: %s; disabled: %s; password expired: %s; must change: %s; protected: %s (%s), so the portal will not act on it.",
			append(found, u.ProtectedReason)...)
	case u.Disabled:
		l.add(name, false, "Found %s. Locked: %s; disabled: %s; password expired: %s; must change: %s; protected: %s, so the portal will not act on it.", found...)
	default:
		l.add(name, true, "Found %s. Locked: %s; disabled: %s; password expired: %s; must change: %s; protected: %s.", found...)
	}

	if cfg.Type == TypeAD {
		if pso := e.GetEqualFoldAttributeValue("msDS-ResultantPSO"); pso != "" {
			if p, oe := s.adPolicy(e); oe != nil {
				l.add(errs.Textf("Password policy for %s", login), false, "The fine-grained policy %s applies, but the service account may not read it, "+
					"so refusals cannot say which rule failed. Grant it read access to that policy.", pso)
			} else {
				l.add(errs.Textf("Password policy for %s", login), true, "The fine-grained policy %s applies: %s.", pso, p)
			}
		}
	}

	rights := errs.Textf("Rights on %s", login)
	if cfg.Type == TypeAD {
		res, oe := s.search(ldap.NewSearchRequest(u.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"allowedAttributesEffective"}, nil))
		if oe != nil || len(res.Entries) != 1 {
			l.add(rights, true, "Cannot be determined: allowedAttributesEffective is not readable. Nothing was tried.")
			return
		}
		w := lowerSet(res.Entries[0].GetEqualFoldAttributeValues("allowedAttributesEffective"))
		ok := w["lockouttime"] && w["pwdlastset"]
		l.add(rights, ok, "Write lockoutTime (unlock): %s; write pwdLastSet (must change at next sign-in): %s; "+
			"Reset Password: cannot be determined without changing a password, so nothing was tried (delegate \"Reset password\" on the users' OU).",
			yesNoText(w["lockouttime"]), yesNoText(w["pwdlastset"]))
		return
	}
	l.add(rights, true, "The service account can read the account. Whether the ACLs let it write userPassword, "+
		"pwdAccountLockedTime and pwdReset cannot be determined without changing them, so nothing was tried.")
}

// testProtection says which accounts the portal will never act on.
func (s *session) testProtection(l *Checklist) {
	extra := ""
	if n := len(s.c.cfg.ExcludedGroups); n > 0 {
		extra = fmt.Sprintf("; members of the %d excluded groups", n)
	}
	if s.c.cfg.Type != TypeAD {
		l.add(errs.Textf("Protected accounts"), true, "Never reset, unlocked or changed: the service account %s%s.", s.c.cfg.BindDN, extra)
		return
	}
	p, oe := s.adProtectionInfo()
	if oe != nil {
		l.add(errs.Textf("Protected accounts"), false, "The domain's protected groups could not be found, so Writeback treats every account as privileged and acts on none: %s",
			errs.TextOf(generic(oe, s.ctx)))
		l.diagnose(oe)
		return
	}
	names := make([]string, 0, len(p.groups))
	for _, g := range p.groups {
		names = append(names, g.name)
	}
	l.add(errs.Textf("Protected accounts"), true, "Never reset, unlocked or changed: the service account %s; accounts with adminCount=1; "+
		"members, nested or through their primary group, of the %d protected groups found by their well-known SIDs (%s)%s.",
		s.c.cfg.BindDN, len(p.groups), strings.Join(names, ", "), extra)
}

// countUsers counts the entries the user filter finds under base with a
// paged search (AD caps pages at 1000), stopping early at max entries or at
// deadline; done is false when it stopped early.
func (s *session) countUsers(base string, pageSize uint32, max int, deadline time.Time) (n int, done bool, oe *OpError) {
	paging := ldap.NewControlPaging(pageSize)
	req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		s.c.cfg.UserFilter, []string{"1.1"}, []ldap.Control{paging})
	for {
		res, oe := s.search(req)
		if res != nil {
			n += len(res.Entries)
		}
		if oe != nil {
			return n, false, oe
		}
		ctrl, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(ctrl.Cookie) == 0 {
			return n, true, nil
		}
		paging.SetCookie(ctrl.Cookie)
		if n >= max || time.Now().After(deadline) {
			// Tell the server to drop the rest of the result set.
			paging.PagingSize = 0
			_, _ = s.search(req)
			return n, false, nil
		}
	}
}

func deadlineOf(ctx context.Context) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(DefaultTimeout)
}

// describeTLS summarises a verified TLS connection for people.
func describeTLS(srv *server, st tls.ConnectionState) string {
	var b strings.Builder
	b.WriteString(tls.VersionName(st.Version))
	if srv.startTLS {
		b.WriteString(" via StartTLS")
	}
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		fmt.Fprintf(&b, "; certificate %s, issued by %s, valid until %s; chain verified",
			leaf.Subject, leaf.Issuer, leaf.NotAfter.UTC().Format(time.DateOnly))
		if left := time.Until(leaf.NotAfter); left < 30*24*time.Hour {
			fmt.Fprintf(&b, " (expires in %d days: renew it soon)", int(left.Hours()/24))
		}
	}
	return b.String()
}

// plainNetError says why a connection failed without Go's error chain.
func plainNetError(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return "no answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (nothing listens on that port)"
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "the host name is unknown"
		}
		return "the host name could not be resolved"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer in time"
	}
	return "the connection failed (the audit log has the details)"
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// Detect reads the root DSE of the server at url anonymously and tells
// whether it is Active Directory (forestFunctionality, or the AD capability
// OID) or, otherwise, OpenLDAP. startTLS upgrades an ldap:// URL.
func Detect(ctx context.Context, url string, startTLS bool, caPEM string) (Type, error) {
	u, err := parseServerURL(url)
	if err != nil {
		return "", fail(CodeInvalid, upperFirst(err.Error())+".", &OpError{Op: "detect", Server: url, Err: err})
	}
	cfg, err := tlsConfigFor(caPEM, u.host)
	if err != nil {
		return "", fail(CodeInvalid, upperFirst(err.Error())+".", &OpError{Op: "detect", Server: url, Err: err})
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	pc, err := connect(ctx, u, u.scheme == "ldap" && startTLS, cfg)
	if err != nil {
		return "", classifyConnect(ctx, "detect", u, err)
	}
	defer pc.close()
	var res *ldap.SearchResult
	err = pc.guard(ctx, func() error {
		var err error
		res, err = pc.conn.Search(rootDSERequest())
		return err
	})
	if err != nil {
		return "", generic(newOpError("detect", u.raw, err), ctx)
	}
	if len(res.Entries) != 1 {
		return "", fail(CodeInternal, "The server's root DSE cannot be read anonymously; choose the directory type yourself.",
			&OpError{Op: "detect", Server: u.raw, Err: errors.New("empty root DSE")})
	}
	if parseRootDSE(res.Entries[0]).isAD() {
		return TypeAD, nil
	}
	return TypeOpenLDAP, nil
}
