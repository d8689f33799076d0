package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// policyTTL bounds how long a policy read from the directory is reused.
const policyTTL = time.Minute

// Client talks to one directory. It is safe for concurrent use; Close it to
// drop its pooled connections.
type Client struct {
	cfg     Config
	log     *slog.Logger
	servers []*server
	closed  atomic.Bool

	mu       sync.Mutex
	policies map[string]cachedPolicy // by source DN
	defaults map[string]cachedDN     // OpenLDAP default policy DN, by server

	onOutage  atomic.Pointer[func(error)]
	onRequest atomic.Pointer[func(Request)]
}

// OnOutage makes the client call f, synchronously, whenever an operation
// fails because the directory could not be used at all: no server reachable,
// a certificate refused, the service account refused, or a server that
// stopped answering mid-way. Operations the caller gave up on (its context
// ended) and connection tests do not count. f must be quick and must not use
// the client.
func (c *Client) OnOutage(f func(error)) { c.onOutage.Store(&f) }

// reportOutage calls the OnOutage function for err when it is an outage.
func (c *Client) reportOutage(parent context.Context, op string, err error) {
	f := c.onOutage.Load()
	if f == nil || err == nil || op == "test" || parent.Err() != nil {
		return
	}
	switch codeOf(err) {
	case CodeUnavailable, CodeCertificate, CodeServiceAccount:
		(*f)(err)
	}
}

type cachedPolicy struct {
	p  Policy
	at time.Time
}

type cachedDN struct {
	dn string
	at time.Time
}

// New checks cfg and returns a Client for it. It does not connect: the first
// operation does. log may be nil.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log, policies: map[string]cachedPolicy{}, defaults: map[string]cachedDN{}}
	for _, raw := range cfg.URLs {
		u, err := parseServerURL(raw)
		if err != nil {
			return nil, errs.FieldErrors(map[string]string{"urls": err.Error()})
		}
		tc, err := tlsConfigFor(cfg.CAPEM, u.host)
		if err != nil {
			return nil, errs.FieldErrors(map[string]string{"ca": err.Error()})
		}
		c.servers = append(c.servers, &server{
			u:        u,
			startTLS: u.scheme == "ldap" && cfg.StartTLS,
			plain:    u.scheme == "ldap" && !cfg.StartTLS,
			tls:      tc,
		})
	}
	return c, nil
}

// Close drops the pooled connections. Operations still running finish; later
// ones fail.
func (c *Client) Close() error {
	c.closed.Store(true)
	for _, s := range c.servers {
		s.closeIdle()
	}
	return nil
}

// Find looks login up in every login attribute under every base DN and
// returns the one matching user with its state. No match is CodeNotFound,
// several are CodeAmbiguous.
func (c *Client) Find(ctx context.Context, login string) (User, Result, error) {
	login, err := identifierArg("find", login, "Enter a user name or e-mail address.")
	if err != nil {
		return User{}, Result{}, err
	}
	var u User
	res, err := c.run(ctx, "find", func(s *session) error {
		var err error
		u, _, err = s.findUser(login)
		return err
	})
	return u, res, err
}

// Get reads the user with the given DN, which must lie under one of the base
// DNs and match the user filter.
func (c *Client) Get(ctx context.Context, dn string) (User, Result, error) {
	if strings.TrimSpace(dn) == "" {
		return User{}, Result{}, invalid("get", "No account was given.")
	}
	var u User
	res, err := c.run(ctx, "get", func(s *session) error {
		e, err := s.getEntry(dn)
		if err != nil {
			return err
		}
		u, err = s.user(e)
		return err
	})
	return u, res, err
}

// Reset sets a new password for u as the service account, after re-reading
// u on the server that will be written and refusing protected and disabled
// accounts. AD: one Modify replacing unicodePwd (with the policy-hints
// control when the DC advertises it), plus lockoutTime=0 when opt.Unlock and
// pwdLastSet=0 when opt.MustChange. OpenLDAP: the Password Modify extended
// operation with the ppolicy control, then pwdReset as opt.MustChange says.
func (c *Client) Reset(ctx context.Context, u User, newPassword string, opt ResetOptions) (Result, error) {
	_, res, err := c.ResetUser(ctx, u, newPassword, opt)
	return res, err
}

// ResetUser is Reset returning the account as read on the server right
// before the write (also when the reset is refused or fails after the
// read; a zero User when it could not be read), so that a caller needs no
// read of its own. When the entry at u.DN now has another ID than u.ID, the
// error is CodeNotFound and the User returned is that other entry's.
func (c *Client) ResetUser(ctx context.Context, u User, newPassword string, opt ResetOptions) (User, Result, error) {
	if err := checkPassword("reset", "new password", newPassword); err != nil {
		return User{}, Result{}, err
	}
	if u.DN == "" {
		return User{}, Result{}, invalid("reset", "No account was given.")
	}
	var cur User
	res, err := c.run(ctx, "reset", func(s *session) error {
		var e *ldap.Entry
		var err error
		cur, e, err = s.current(u)
		if err != nil {
			return err
		}
		if err := refuse(s, cur, false); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			return s.resetAD(cur, e, newPassword, opt)
		}
		return s.resetOpenLDAP(cur, e, newPassword, opt)
	})
	return cur, res, err
}

// ResetLogin finds login and sets its new password in one session, on one
// pooled connection: a single search reads the account with its state and
// what protects it (AD: its own groups, primary group and adminCount, the
// nesting of groups coming from a cache of at most a minute; OpenLDAP: one
// more search over all the excluded groups when any are configured), the
// refusals of Reset apply to that fresh state, and the write follows, as in
// Reset. On AD the read leaves out the constructed attributes, which triple
// a search's cost on Samba and which no reset needs (see session.lean).
// It returns the account as read right before the write, also when the
// reset is refused (Protected or Disabled then says why) or fails; a zero
// User when no account was found. Its PasswordExpired is not read on AD;
// read the account again to show its state.
func (c *Client) ResetLogin(ctx context.Context, login, newPassword string, opt ResetOptions) (User, Result, error) {
	login, err := identifierArg("reset", login, "Enter a user name or e-mail address.")
	if err != nil {
		return User{}, Result{}, err
	}
	if err := checkPassword("reset", "new password", newPassword); err != nil {
		return User{}, Result{}, err
	}
	var u User
	res, err := c.run(ctx, "reset", func(s *session) error {
		s.lean = true
		var e *ldap.Entry
		var err error
		if u, e, err = s.findUser(login); err != nil {
			return err
		}
		if err := refuse(s, u, false); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			return s.resetAD(u, e, newPassword, opt)
		}
		return s.resetOpenLDAP(u, e, newPassword, opt)
	})
	return u, res, err
}

// UnlockLogin finds login and ends its lockout in one session, reading the
// account once right before the write, as ResetLogin does; the refusals of
// Unlock apply. It returns the account as read before the write.
func (c *Client) UnlockLogin(ctx context.Context, login string) (User, Result, error) {
	login, err := identifierArg("unlock", login, "Enter a user name or e-mail address.")
	if err != nil {
		return User{}, Result{}, err
	}
	var u User
	res, err := c.run(ctx, "unlock", func(s *session) error {
		s.lean = true
		var err error
		if u, _, err = s.findUser(login); err != nil {
			return err
		}
		if err := refuse(s, u, false); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			return s.unlockAD(u)
		}
		return s.unlockOpenLDAP(u)
	})
	return u, res, err
}

// findUser is Find within a session: the entry of login and its User.
func (s *session) findUser(login string) (User, *ldap.Entry, error) {
	wait := s.prefetch()
	e, err := s.findEntry(login)
	wait()
	if err != nil {
		return User{}, nil, err
	}
	u, err := s.user(e)
	if err != nil {
		return User{}, nil, err
	}
	return u, e, nil
}

// Unlock ends a lockout of u. Disabled and protected accounts are refused. AD:
// lockoutTime=0; OpenLDAP: pwdAccountLockedTime deleted (already unlocked is
// success).
func (c *Client) Unlock(ctx context.Context, u User) (Result, error) {
	if u.DN == "" {
		return Result{}, invalid("unlock", "No account was given.")
	}
	return c.run(ctx, "unlock", func(s *session) error {
		cur, _, err := s.current(u)
		if err != nil {
			return err
		}
		if err := refuse(s, cur, false); err != nil {
			return err
		}
		if c.cfg.Type == TypeAD {
			return s.unlockAD(cur)
		}
		return s.unlockOpenLDAP(cur)
	})
}

// Policy returns the password and lockout policy that applies to u: on AD the
// domain policy or the user's fine-grained policy (msDS-ResultantPSO); on
// OpenLDAP the user's pwdPolicySubentry or the default policy. A zero User
// gives the domain (default) policy. A User this client read (Find, Get,
// Search…) names its policy already, so the user is not read again; the
// policies themselves are cached for a minute.
func (c *Client) Policy(ctx context.Context, u User) (Policy, error) {
	var p Policy
	_, err := c.run(ctx, "policy", func(s *session) error {
		var e *ldap.Entry
		var err error
		switch {
		case u.DN != "" && u.policyKnown:
			e = c.policyEntry(u)
		case u.DN != "":
			if e, err = s.getEntry(u.DN); err != nil {
				return err
			}
		}
		p, err = s.entryPolicy(e)
		return err
	})
	return p, err
}

// policyAttribute names the attribute of a user entry that points to the
// user's own policy: AD's constructed msDS-ResultantPSO, OpenLDAP's
// pwdPolicySubentry. Nothing else of the entry decides the policy.
func (c *Client) policyAttribute() string {
	if c.cfg.Type == TypeAD {
		return "msDS-ResultantPSO"
	}
	return "pwdPolicySubentry"
}

// policyEntry stands in for u's entry where only its policy matters.
func (c *Client) policyEntry(u User) *ldap.Entry {
	attrs := map[string][]string{}
	if u.policySource != "" {
		attrs[c.policyAttribute()] = []string{u.policySource}
	}
	return ldap.NewEntry(u.DN, attrs)
}

// current re-reads u on the session's server and checks it is still the same
// account (same ID) as the one the caller looked up; when it is not, it
// returns the other account's User beside the error.
func (s *session) current(u User) (User, *ldap.Entry, error) {
	e, err := s.getEntry(u.DN)
	if err != nil {
		return User{}, nil, err
	}
	cur, err := s.user(e)
	if err != nil {
		return User{}, nil, err
	}
	if u.ID != "" && !strings.EqualFold(u.ID, cur.ID) {
		return cur, nil, fail(CodeNotFound, "The account changed since it was looked up; look it up again.",
			&OpError{Op: s.op, Server: s.srv.u.raw, Err: fmt.Errorf("%s now has ID %s, not %s", cur.DN, cur.ID, u.ID)})
	}
	return cur, e, nil
}

// refuse stops actions on accounts the portal must leave alone.
func refuse(s *session, u User, change bool) error {
	oe := &OpError{Op: s.op, Server: s.srv.u.raw}
	switch {
	case u.Protected:
		oe.Rule = u.ProtectedReason
		oe.Err = fmt.Errorf("%s is protected: %s", u.DN, u.ProtectedReason)
		return fail(CodeProtected, i18n.Key("This is a privileged account, which is kept out of self-service. Ask an administrator."), oe)
	case u.Disabled:
		oe.Err = fmt.Errorf("%s is disabled", u.DN)
		if s.op == "unlock" {
			return fail(CodeDisabled, i18n.Key("This account is disabled, not locked; a disabled account is never unlocked here. Ask an administrator."), oe)
		}
		return fail(CodeDisabled, i18n.Key("This account is disabled. Ask an administrator."), oe)
	case change && u.Locked:
		oe.Err = fmt.Errorf("%s is locked", u.DN)
		return fail(CodeLocked, i18n.Key("This account is locked after too many wrong passwords; reset the password or wait until the lock ends."), oe)
	}
	return nil
}

// findEntry searches login under every base DN and returns the one entry.
func (s *session) findEntry(login string) (*ldap.Entry, error) {
	cfg := s.c.cfg
	filter := loginFilter(cfg.UserFilter, cfg.LoginAttributes, login)
	found := map[string]*ldap.Entry{}
	var order []string
	for _, base := range cfg.BaseDNs {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false,
			filter, s.userAttributes(), nil)
		res, oe := s.search(req)
		if oe != nil {
			switch oe.LDAPResult {
			case ldap.LDAPResultSizeLimitExceeded:
				return nil, fail(CodeAmbiguous, msgAmbiguous, oe)
			case ldap.LDAPResultNoSuchObject:
				s.c.log.Warn("directory: base DN does not exist", "server", s.srv.u.raw, "base_dn", base)
				continue
			}
			return nil, generic(oe, s.ctx)
		}
		for _, e := range res.Entries {
			k := strings.ToLower(e.DN)
			if _, ok := found[k]; !ok {
				found[k] = e
				order = append(order, k)
			}
		}
	}
	switch len(order) {
	case 0:
		return nil, fail(CodeNotFound, msgNotFound, &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New("no entry matches")})
	case 1:
		return found[order[0]], nil
	}
	return nil, fail(CodeAmbiguous, msgAmbiguous, &OpError{Op: s.op, Server: s.srv.u.raw,
		Err: fmt.Errorf("%d entries match", len(order))})
}

// getEntry reads the user entry dn, which must lie under a base DN and match
// the user filter.
func (s *session) getEntry(dn string) (*ldap.Entry, error) {
	notFound := func(why string) error {
		return fail(CodeNotFound, msgNotFound, &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New(why)})
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return nil, notFound("not a DN")
	}
	inScope := false
	for _, b := range s.c.cfg.BaseDNs {
		if bd, err := ldap.ParseDN(b); err == nil && (bd.AncestorOfFold(parsed) || bd.EqualFold(parsed)) {
			inScope = true
			break
		}
	}
	if !inScope {
		return nil, notFound(dn + " is outside the base DNs")
	}
	req := ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		s.c.cfg.UserFilter, s.userAttributes(), nil)
	res, oe := s.search(req)
	if oe != nil {
		if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
			return nil, fail(CodeNotFound, msgNotFound, oe)
		}
		return nil, generic(oe, s.ctx)
	}
	if len(res.Entries) != 1 {
		return nil, notFound(dn + " does not match the user filter")
	}
	return res.Entries[0], nil
}

// userAttributes lists what a user search reads.
func (c *Client) userAttributes() []string {
	attrs := append([]string{}, c.cfg.LoginAttributes...)
	attrs = append(attrs, c.cfg.RecoveryEmailAttribute, c.cfg.MobileAttribute, "displayName", "cn")
	if c.cfg.Type == TypeAD {
		return append(attrs, adUserAttributes()...)
	}
	return append(attrs, openLDAPUserAttributes()...)
}

// userAttributes lists what the session's user reads ask for: without AD's
// constructed attributes in a lean session (see session.lean).
func (s *session) userAttributes() []string {
	attrs := s.c.userAttributes()
	if s.lean && s.c.cfg.Type == TypeAD {
		attrs = slices.DeleteFunc(attrs, func(a string) bool { return slices.Contains(adConstructedAttributes, a) })
	}
	return append(attrs, s.extraAttrs...)
}

// user turns an entry into a User, reading what else the state needs.
func (s *session) user(e *ldap.Entry) (User, error) {
	u := User{
		DN:           e.DN,
		DisplayName:  firstNonEmpty(e.GetEqualFoldAttributeValue("displayName"), e.GetEqualFoldAttributeValue("cn")),
		Email:        e.GetEqualFoldAttributeValue(s.c.cfg.RecoveryEmailAttribute),
		Mobile:       e.GetEqualFoldAttributeValue(s.c.cfg.MobileAttribute),
		policySource: e.GetEqualFoldAttributeValue(s.c.policyAttribute()),
		// A lean read on AD did not ask for msDS-ResultantPSO.
		policyKnown: !s.lean || s.c.cfg.Type != TypeAD,
	}
	for _, a := range s.c.cfg.LoginAttributes {
		if v := e.GetEqualFoldAttributeValue(a); v != "" {
			u.Login = v
			break
		}
	}
	var oe *OpError
	if s.c.cfg.Type == TypeAD {
		oe = s.adState(e, &u)
	} else {
		oe = s.openLDAPState(e, &u)
	}
	if oe == nil {
		oe = s.protect(e, &u)
	}
	if oe != nil {
		return User{}, generic(oe, s.ctx)
	}
	return u, nil
}

// cachedPolicy returns a policy read less than policyTTL ago.
func (c *Client) cachedPolicy(key string) (Policy, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.policies[key]
	if !ok || time.Since(cp.at) > policyTTL {
		return Policy{}, false
	}
	return cp.p, true
}

func (c *Client) storePolicy(key string, p Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.policies[key] = cachedPolicy{p: p, at: time.Now()}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// prefetch starts, beside the session's first search, the reads the
// protection and state checks make once per server and then cache (the
// service account's ID; AD's root DSE and protected groups; OpenLDAP's root
// DSE and default password policy) when they are not cached: a new process,
// such as a command-line reset, would otherwise wait for each in turn. They
// share the session's connection, which answers requests in any order. It
// is best effort: what fails here the check reads again in turn, and
// reports. The function it returns waits for them.
func (s *session) prefetch() (wait func()) {
	now := time.Now()
	s.srv.mu.Lock()
	svcCached := !s.srv.svcIDAt.IsZero() && now.Sub(s.srv.svcIDAt) < protectedTTL
	protCached := s.srv.prot != nil && now.Sub(s.srv.protAt) < protectedTTL
	dseCached := s.srv.dse != nil && now.Sub(s.srv.dseAt) < rootDSETTL
	s.srv.mu.Unlock()
	var reads []func()
	if !svcCached {
		reads = append(reads, func() { s.serviceAccountID() })
	}
	switch {
	case s.c.cfg.Type == TypeAD && !protCached:
		reads = append(reads, func() { _, _ = s.adProtectionInfo() })
	case s.c.cfg.Type != TypeAD && !dseCached:
		// The default policy, which most accounts' state is read against,
		// is found from the root DSE.
		reads = append(reads, func() { _, _ = s.openLDAPPolicy(nil) })
	}
	if len(reads) == 0 {
		return func() {}
	}
	var wg sync.WaitGroup
	for _, r := range reads {
		wg.Go(r)
	}
	return wg.Wait
}
