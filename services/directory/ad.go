package directory

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// Active Directory specifics.

// adUserAttributes lists the AD attributes a user search reads besides the
// configured ones. The constructed ones must be asked for by name.
func adUserAttributes() []string {
	return []string{
		"objectGUID", "sAMAccountName", "userAccountControl", "msDS-User-Account-Control-Computed", "pwdLastSet",
		"lockoutTime", "msDS-UserPasswordExpiryTimeComputed", "adminCount", "primaryGroupID", "msDS-ResultantPSO",
		"memberOf", // the account's own groups, for the protection check
	}
}

// adConstructedAttributes are the user attributes AD computes on every read
// that asks for them: on Samba each adds about half the cost of the search.
var adConstructedAttributes = []string{"msDS-User-Account-Control-Computed", "msDS-UserPasswordExpiryTimeComputed", "msDS-ResultantPSO"}

// userAccountControl and msDS-User-Account-Control-Computed bits.
const (
	uacDisabled        = 0x2
	uacLockout         = 0x10
	uacPasswordExpired = 0x800000
)

// policyHintsValue is the BER of the policy-hints control value: SEQUENCE { INTEGER 1 }.
const policyHintsValue = "\x30\x03\x02\x01\x01"

// adState fills u's state from an AD entry.
func (s *session) adState(e *ldap.Entry, u *User) *OpError {
	u.ID = formatGUID(e.GetEqualFoldRawAttributeValue("objectGUID"))
	uac := parseInt(e.GetEqualFoldAttributeValue("userAccountControl"))
	computed := parseInt(e.GetEqualFoldAttributeValue("msDS-User-Account-Control-Computed"))
	u.Disabled = uac&uacDisabled != 0
	u.Locked = computed&uacLockout != 0
	u.PasswordExpired = computed&uacPasswordExpired != 0
	if v := e.GetEqualFoldAttributeValue("msDS-UserPasswordExpiryTimeComputed"); v != "" {
		if n := parseInt(v); n > 0 && n != math.MaxInt64 {
			t := parseFiletime(v)
			if !t.IsZero() && time.Now().After(t) {
				u.PasswordExpired = true
			}
			u.PasswordExpires = t
		}
	}
	if pls := e.GetEqualFoldAttributeValue("pwdLastSet"); strings.TrimSpace(pls) == "0" {
		u.MustChange = true
	} else {
		u.PasswordLastSet = parseFiletime(pls)
	}
	if s.lean {
		// Without msDS-User-Account-Control-Computed: lockoutTime stays set
		// after a lock ends (until the next sign-in), so a stamp counts
		// while the domain's lockout duration has not passed since it (zero:
		// until an administrator unlocks). A fine-grained policy's own
		// duration is not looked at; this feeds only the audit row's
		// was_locked, as every reset and unlock clears lockoutTime anyway.
		if lt := parseFiletime(e.GetEqualFoldAttributeValue("lockoutTime")); !lt.IsZero() {
			p, oe := s.adPolicy(nil)
			switch {
			case oe != nil:
				s.c.log.Warn("directory: cannot read the lockout duration", "server", s.srv.u.raw, "err", oe)
				u.Locked = true
			case p.LockoutDuration == 0:
				u.Locked = true
			case time.Now().Before(lt.Add(p.LockoutDuration)):
				u.Locked, u.LockedUntil = true, lt.Add(p.LockoutDuration)
			}
		}
		return nil
	}
	if u.Locked {
		if lt := parseFiletime(e.GetEqualFoldAttributeValue("lockoutTime")); !lt.IsZero() {
			p, oe := s.adPolicy(e)
			if oe != nil {
				s.c.log.Warn("directory: cannot read the lockout duration", "server", s.srv.u.raw, "err", oe)
			} else if p.LockoutDuration > 0 {
				u.LockedUntil = lt.Add(p.LockoutDuration)
			}
		}
	}
	return nil
}

// adPolicy returns the policy for e: its fine-grained policy when one applies
// and can be read, else the domain's. A nil e gives the domain policy.
func (s *session) adPolicy(e *ldap.Entry) (Policy, *OpError) {
	dse, oe := s.rootDSE()
	if oe != nil {
		return Policy{}, oe
	}
	hints := dse.policyHints() != ""
	if e != nil {
		if pso := e.GetEqualFoldAttributeValue("msDS-ResultantPSO"); pso != "" {
			// The PSO decides; the domain policy would be a wrong answer.
			p, oe := s.adPSO(pso)
			if oe != nil {
				return Policy{}, oe
			}
			p.HistoryEnforcedOnReset = hints && p.HistoryLength > 0
			return p, nil
		}
	}
	head := dse.defaultNamingContext
	if head == "" {
		return Policy{}, &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New("the root DSE names no defaultNamingContext")}
	}
	key := "ad:" + s.srv.u.raw + ":" + strings.ToLower(head)
	if p, ok := s.c.cachedPolicy(key); ok {
		return p, nil
	}
	res, oe := s.search(ldap.NewSearchRequest(head, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"minPwdLength", "pwdProperties", "pwdHistoryLength", "minPwdAge", "maxPwdAge",
			"lockoutThreshold", "lockoutDuration", "lockOutObservationWindow"}, nil))
	if oe != nil {
		return Policy{}, oe
	}
	if len(res.Entries) != 1 {
		return Policy{}, &OpError{Op: s.op, Server: s.srv.u.raw, Err: fmt.Errorf("the domain head %s cannot be read", head)}
	}
	d := res.Entries[0]
	p := Policy{
		MinLength:        int(parseInt(d.GetEqualFoldAttributeValue("minPwdLength"))),
		Complexity:       parseInt(d.GetEqualFoldAttributeValue("pwdProperties"))&1 != 0,
		HistoryLength:    int(parseInt(d.GetEqualFoldAttributeValue("pwdHistoryLength"))),
		MinAge:           parseADInterval(d.GetEqualFoldAttributeValue("minPwdAge")),
		MaxAge:           parseADInterval(d.GetEqualFoldAttributeValue("maxPwdAge")),
		LockoutThreshold: int(parseInt(d.GetEqualFoldAttributeValue("lockoutThreshold"))),
		LockoutDuration:  parseADInterval(d.GetEqualFoldAttributeValue("lockoutDuration")),
		LockoutWindow:    parseADInterval(d.GetEqualFoldAttributeValue("lockOutObservationWindow")),
	}
	p.HistoryEnforcedOnReset = hints && p.HistoryLength > 0
	s.c.storePolicy(key, p)
	return p, nil
}

// withPSO returns e with its msDS-ResultantPSO, read now when a lean
// session left it out, so the policy that explains a refusal is the one
// that applies.
func (s *session) withPSO(e *ldap.Entry) *ldap.Entry {
	if !s.lean || e == nil {
		return e
	}
	res, oe := s.search(ldap.NewSearchRequest(e.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"msDS-ResultantPSO"}, nil))
	if oe != nil || len(res.Entries) != 1 {
		s.c.log.Warn("directory: cannot read the fine-grained policy of an account", "server", s.srv.u.raw, "dn", e.DN, "err", oe)
		return e
	}
	cp := *e
	cp.Attributes = append(slices.Clone(e.Attributes), res.Entries[0].Attributes...)
	return &cp
}

// errPSOUnreadable marks a fine-grained policy the service account may not read.
var errPSOUnreadable = errors.New("fine-grained password policy not readable")

// adPSO reads a fine-grained password policy (Password Settings Object).
// Reading it needs rights the service account often lacks.
func (s *session) adPSO(dn string) (Policy, *OpError) {
	key := "pso:" + s.srv.u.raw + ":" + strings.ToLower(dn)
	if p, ok := s.c.cachedPolicy(key); ok {
		return p, nil
	}
	res, oe := s.search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=msDS-PasswordSettings)", []string{"msDS-MinimumPasswordLength", "msDS-PasswordComplexityEnabled",
			"msDS-PasswordHistoryLength", "msDS-MinimumPasswordAge", "msDS-MaximumPasswordAge", "msDS-LockoutThreshold",
			"msDS-LockoutDuration", "msDS-LockoutObservationWindow"}, nil))
	if oe != nil {
		return Policy{}, oe
	}
	if len(res.Entries) != 1 || res.Entries[0].GetEqualFoldAttributeValue("msDS-MinimumPasswordLength") == "" {
		// By default only administrators may read a PSO's settings.
		return Policy{}, &OpError{Op: s.op, Server: s.srv.u.raw, Rule: "read " + dn,
			Err: fmt.Errorf("%w: the fine-grained password policy %s is not readable", errPSOUnreadable, dn)}
	}
	d := res.Entries[0]
	p := Policy{
		MinLength:        int(parseInt(d.GetEqualFoldAttributeValue("msDS-MinimumPasswordLength"))),
		Complexity:       strings.EqualFold(d.GetEqualFoldAttributeValue("msDS-PasswordComplexityEnabled"), "TRUE"),
		HistoryLength:    int(parseInt(d.GetEqualFoldAttributeValue("msDS-PasswordHistoryLength"))),
		MinAge:           parseADInterval(d.GetEqualFoldAttributeValue("msDS-MinimumPasswordAge")),
		MaxAge:           parseADInterval(d.GetEqualFoldAttributeValue("msDS-MaximumPasswordAge")),
		LockoutThreshold: int(parseInt(d.GetEqualFoldAttributeValue("msDS-LockoutThreshold"))),
		LockoutDuration:  parseADInterval(d.GetEqualFoldAttributeValue("msDS-LockoutDuration")),
		LockoutWindow:    parseADInterval(d.GetEqualFoldAttributeValue("msDS-LockoutObservationWindow")),
	}
	s.c.storePolicy(key, p)
	return p, nil
}

// resetAD replaces unicodePwd in one Modify.
func (s *session) resetAD(cur User, e *ldap.Entry, pw string, opt ResetOptions) error {
	dse, oe := s.rootDSE()
	if oe != nil {
		return generic(oe, s.ctx)
	}
	var controls []ldap.Control
	if oid := dse.policyHints(); oid != "" {
		controls = append(controls, ldap.NewControlString(oid, true, policyHintsValue))
	}
	req := ldap.NewModifyRequest(cur.DN, controls)
	req.Replace("unicodePwd", []string{encodeUnicodePwd(pw)})
	if opt.Unlock {
		req.Replace("lockoutTime", []string{"0"})
	}
	if opt.MustChange {
		req.Replace("pwdLastSet", []string{"0"})
	}
	if _, oe := s.modify(req); oe != nil {
		return s.adWriteError(oe, cur, e, pw, false, opt)
	}
	return nil
}

// changeAD deletes the old unicodePwd and adds the new one in one Modify; the
// DC checks the old password, history and minimum age.
func (s *session) changeAD(cur User, e *ldap.Entry, oldPw, newPw string) error {
	req := ldap.NewModifyRequest(cur.DN, nil)
	req.Delete("unicodePwd", []string{encodeUnicodePwd(oldPw)})
	req.Add("unicodePwd", []string{encodeUnicodePwd(newPw)})
	if _, oe := s.modify(req); oe != nil {
		return s.adWriteError(oe, cur, e, newPw, true, ResetOptions{})
	}
	return nil
}

// unlockAD writes lockoutTime=0, the only value AD accepts there.
func (s *session) unlockAD(cur User) error {
	req := ldap.NewModifyRequest(cur.DN, nil)
	req.Replace("lockoutTime", []string{"0"})
	if _, oe := s.modify(req); oe != nil {
		if oe.LDAPResult == ldap.LDAPResultInsufficientAccessRights {
			return notPermitted(oe, "write lockoutTime")
		}
		return generic(oe, s.ctx)
	}
	return nil
}

// adWriteError classifies a failed password write on AD.
func (s *session) adWriteError(oe *OpError, cur User, e *ldap.Entry, pw string, change bool, opt ResetOptions) error {
	if oe.Code == CodeUnavailable || s.ctx.Err() != nil {
		return generic(oe, s.ctx)
	}
	code, hasCode := adErrorCode(oe.Diagnostic)
	switch {
	case hasCode && (code == adErrInvalidPassword || code == adErrWrongPassword) && change:
		oe.Rule = "wrong current password"
		return fail(CodeBadPassword, msgBadCurrent, oe)
	case hasCode && code == adErrAccountLocked:
		return fail(CodeLocked, i18n.Key("This account is locked after too many wrong passwords."), oe)
	case hasCode && code == adErrPasswordRestriction,
		!hasCode && oe.LDAPResult == ldap.LDAPResultConstraintViolation:
		p, poe := s.adPolicy(s.withPSO(e))
		if poe != nil {
			s.c.log.Warn("directory: cannot read the password policy to explain a refusal", "server", s.srv.u.raw, "err", poe)
		}
		ex := explainPolicy(p, pw, []string{e.GetEqualFoldAttributeValue("sAMAccountName"), cur.DisplayName},
			change, cur.PasswordLastSet, time.Now())
		if ex.rule == "" && p.HistoryLength > 0 && (change || p.HistoryEnforcedOnReset) {
			// Length, complexity and age pass: history is what is left that
			// AD checks, but AD does not say so (password filters could too).
			ex.msg = i18n.Key("The new password does not meet the password policy; it may be one you have used recently.")
		}
		oe.Rule = ex.rule
		return failf(CodePolicy, oe, ex.msg, ex.args...)
	case oe.LDAPResult == ldap.LDAPResultInsufficientAccessRights:
		return notPermitted(oe, s.adMissingRight(cur.DN, change, opt))
	}
	return generic(oe, s.ctx)
}

// adMissingRight names the right a refused password write lacked. AD does
// not say; allowedAttributesEffective tells the attribute rights, and what
// remains is the extended right.
func (s *session) adMissingRight(dn string, change bool, opt ResetOptions) string {
	if change {
		return "Change Password"
	}
	if opt.Unlock || opt.MustChange {
		res, oe := s.search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"allowedAttributesEffective"}, nil))
		if oe == nil && len(res.Entries) == 1 {
			writable := lowerSet(res.Entries[0].GetEqualFoldAttributeValues("allowedAttributesEffective"))
			var missing []string
			if opt.Unlock && !writable["lockouttime"] {
				missing = append(missing, "write lockoutTime")
			}
			if opt.MustChange && !writable["pwdlastset"] {
				missing = append(missing, "write pwdLastSet")
			}
			if len(missing) > 0 {
				return strings.Join(missing, " and ")
			}
		}
	}
	return "Reset Password"
}

func notPermitted(oe *OpError, right string) *errs.Error {
	oe.Rule = right
	return fail(CodeNotPermitted, "The portal's service account lacks the right to "+right+
		" on this account. Ask an administrator to delegate it.", oe)
}

func lowerSet(vs []string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[strings.ToLower(v)] = true
	}
	return m
}
