package directory

import (
	"errors"
	"fmt"
	"strings"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/i18n"
)

// OpenLDAP (slapd with ppolicy) specifics.

// openLDAPUserAttributes lists the OpenLDAP attributes a user search reads
// besides the configured ones; the operational ones must be asked for by name.
func openLDAPUserAttributes() []string {
	return []string{"entryUUID", "pwdAccountLockedTime", "pwdReset", "pwdChangedTime", "pwdPolicySubentry", "memberOf"}
}

// adminLockedTime is the pwdAccountLockedTime value meaning "locked until an
// administrator acts", which the portal treats as disabled.
const adminLockedTime = "000001010000Z"

// defaultPolicyTTL bounds how long the discovered default policy DN is reused.
const defaultPolicyTTL = 10 * time.Minute

// openLDAPState fills u's state from an OpenLDAP entry.
func (s *session) openLDAPState(e *ldap.Entry, u *User) *OpError {
	u.ID = e.GetEqualFoldAttributeValue("entryUUID")
	u.MustChange = strings.EqualFold(e.GetEqualFoldAttributeValue("pwdReset"), "TRUE")
	changed, hasChanged := parseGeneralizedTime(e.GetEqualFoldAttributeValue("pwdChangedTime"))
	if hasChanged {
		u.PasswordLastSet = changed
	}
	lockedAt := strings.TrimSpace(e.GetEqualFoldAttributeValue("pwdAccountLockedTime"))
	if lockedAt == "" && !hasChanged {
		return nil
	}
	p, oe := s.openLDAPPolicy(e)
	if oe != nil {
		// Without the policy, take the stamp at its word.
		s.c.log.Warn("directory: cannot read the password policy", "server", s.srv.u.raw, "dn", e.DN, "err", oe)
		u.Disabled = lockedAt == adminLockedTime
		u.Locked = lockedAt != "" && !u.Disabled
		return nil
	}
	if hasChanged && p.MaxAge > 0 {
		u.PasswordExpires = changed.Add(p.MaxAge)
		u.PasswordExpired = time.Now().After(u.PasswordExpires)
	}
	// slapd ignores pwdAccountLockedTime, even the administrator's lock,
	// when the policy has pwdLockout FALSE.
	if lockedAt != "" && p.lockout {
		t, ok := parseGeneralizedTime(lockedAt)
		switch {
		case lockedAt == adminLockedTime:
			u.Disabled = true
		case ok && time.Now().Before(t):
			// A stamp in the future is not in effect yet.
		case !ok || p.LockoutDuration == 0:
			u.Locked = true // until an administrator unlocks
		case time.Now().Before(t.Add(p.LockoutDuration)):
			u.Locked, u.LockedUntil = true, t.Add(p.LockoutDuration)
		}
	}
	return nil
}

// openLDAPPolicy returns the ppolicy entry that applies to e: its
// pwdPolicySubentry, else the default policy. cn=config (olcPPolicyDefault)
// is not readable to a service account, so the default is found by searching
// pwdPolicy entries. A nil e gives the default policy.
func (s *session) openLDAPPolicy(e *ldap.Entry) (Policy, *OpError) {
	dn := ""
	if e != nil {
		dn = e.GetEqualFoldAttributeValue("pwdPolicySubentry")
	}
	if dn == "" {
		var oe *OpError
		if dn, oe = s.defaultPolicyDN(); oe != nil {
			return Policy{}, oe
		}
	}
	key := "ppolicy:" + s.srv.u.raw + ":" + strings.ToLower(dn)
	if p, ok := s.c.cachedPolicy(key); ok {
		return p, nil
	}
	res, oe := s.search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=pwdPolicy)", []string{"pwdMinLength", "pwdCheckQuality", "pwdInHistory", "pwdMinAge", "pwdMaxAge",
			"pwdLockout", "pwdMaxFailure", "pwdLockoutDuration", "pwdFailureCountInterval", "pwdCheckModule", "pwdUseCheckModule", "pwdMustChange"}, nil))
	if oe != nil {
		return Policy{}, oe
	}
	if len(res.Entries) != 1 {
		return Policy{}, &OpError{Op: s.op, Server: s.srv.u.raw, Err: fmt.Errorf("the password policy %s cannot be read", dn)}
	}
	d := res.Entries[0]
	p := Policy{
		MinLength:     int(parseInt(d.GetEqualFoldAttributeValue("pwdMinLength"))),
		HistoryLength: int(parseInt(d.GetEqualFoldAttributeValue("pwdInHistory"))),
		MinAge:        time.Duration(parseInt(d.GetEqualFoldAttributeValue("pwdMinAge"))) * time.Second,
		MaxAge:        time.Duration(parseInt(d.GetEqualFoldAttributeValue("pwdMaxAge"))) * time.Second,
		// Without a check module ppolicy checks only the length; what a
		// module checks is unknown, so it is reported as complexity.
		Complexity: d.GetEqualFoldAttributeValue("pwdCheckModule") != "" &&
			!strings.EqualFold(d.GetEqualFoldAttributeValue("pwdUseCheckModule"), "FALSE"),
		// ppolicy checks the history on every change that is not the
		// rootdn's, resets included.
		HistoryEnforcedOnReset: parseInt(d.GetEqualFoldAttributeValue("pwdInHistory")) > 0,
		resetSetsMustChange:    strings.EqualFold(d.GetEqualFoldAttributeValue("pwdMustChange"), "TRUE"),
	}
	if p.MinLength > 0 && parseInt(d.GetEqualFoldAttributeValue("pwdCheckQuality")) == 0 {
		p.MinLength = 0 // not checked without pwdCheckQuality
	}
	if strings.EqualFold(d.GetEqualFoldAttributeValue("pwdLockout"), "TRUE") {
		p.lockout = true
		p.LockoutThreshold = int(parseInt(d.GetEqualFoldAttributeValue("pwdMaxFailure")))
		p.LockoutDuration = time.Duration(parseInt(d.GetEqualFoldAttributeValue("pwdLockoutDuration"))) * time.Second
		p.LockoutWindow = time.Duration(parseInt(d.GetEqualFoldAttributeValue("pwdFailureCountInterval"))) * time.Second
	}
	s.c.storePolicy(key, p)
	return p, nil
}

// defaultPolicyDN finds the default ppolicy entry: the only pwdPolicy entry
// under the naming context, else the one named "default", else the one no
// entry names in pwdPolicySubentry.
func (s *session) defaultPolicyDN() (string, *OpError) {
	key := s.srv.u.raw
	s.c.mu.Lock()
	cd, ok := s.c.defaults[key]
	s.c.mu.Unlock()
	if ok && time.Since(cd.at) < defaultPolicyTTL {
		return cd.dn, nil
	}

	bases := s.c.cfg.BaseDNs
	if dse, oe := s.rootDSE(); oe == nil {
		var ncs []string
		for _, nc := range dse.namingContexts {
			ncd, err := ldap.ParseDN(nc)
			if err != nil {
				continue
			}
			for _, b := range s.c.cfg.BaseDNs {
				if bd, err := ldap.ParseDN(b); err == nil && (ncd.AncestorOfFold(bd) || ncd.EqualFold(bd)) {
					ncs = append(ncs, nc)
					break
				}
			}
		}
		if len(ncs) > 0 {
			bases = ncs
		}
	}
	var candidates []*ldap.Entry
	for _, b := range bases {
		res, oe := s.search(ldap.NewSearchRequest(b, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 50, 0, false,
			"(objectClass=pwdPolicy)", []string{"cn"}, nil))
		if oe != nil && oe.LDAPResult != ldap.LDAPResultSizeLimitExceeded {
			if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
				continue
			}
			return "", oe
		}
		if res != nil {
			candidates = append(candidates, res.Entries...)
		}
	}
	pick := ""
	switch {
	case len(candidates) == 0:
		return "", &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New("no pwdPolicy entry is readable under the base DNs")}
	case len(candidates) == 1:
		pick = candidates[0].DN
	default:
		for _, c := range candidates {
			if d, err := ldap.ParseDN(c.DN); err == nil && len(d.RDNs) > 0 && len(d.RDNs[0].Attributes) > 0 &&
				strings.EqualFold(d.RDNs[0].Attributes[0].Value, "default") {
				pick = c.DN
				break
			}
		}
		if pick == "" {
			var unreferenced []string
			for _, c := range candidates {
				res, oe := s.search(ldap.NewSearchRequest(bases[0], ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0,
					false, "(pwdPolicySubentry="+ldap.EscapeFilter(c.DN)+")", []string{"1.1"}, nil))
				if (oe == nil && len(res.Entries) == 0) || (oe != nil && oe.LDAPResult == ldap.LDAPResultNoSuchObject) {
					unreferenced = append(unreferenced, c.DN)
				}
			}
			if len(unreferenced) > 0 {
				pick = unreferenced[0]
			} else {
				pick = candidates[0].DN
			}
		}
	}
	s.c.mu.Lock()
	s.c.defaults[key] = cachedDN{dn: pick, at: time.Now()}
	s.c.mu.Unlock()
	return pick, nil
}

// passwordModifyRequest builds an RFC 3062 Password Modify request carrying
// the ppolicy request control, so a refusal says which rule failed.
func passwordModifyRequest(dn, oldPw, newPw string) *ldap.ExtendedRequest {
	v := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Password Modify Request")
	if dn != "" {
		v.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, dn, "User Identity"))
	}
	if oldPw != "" {
		v.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 1, oldPw, "Old Password"))
	}
	if newPw != "" {
		v.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 2, newPw, "New Password"))
	}
	req := ldap.NewExtendedRequest(oidPasswordModify, v)
	req.Controls = []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}
	return req
}

// resetOpenLDAP sets the password with Password Modify as the service
// account, so slapd hashes it and applies ppolicy; then sets pwdReset as
// opt.MustChange says. slapd unlocks on reset by itself.
func (s *session) resetOpenLDAP(cur User, e *ldap.Entry, pw string, opt ResetOptions) error {
	ctrls, oe := s.extended(s.pc, passwordModifyRequest(cur.DN, "", pw))
	if oe != nil {
		return s.openLDAPWriteError(oe, ctrls, cur, e, false)
	}
	if opt.MustChange {
		if p, poe := s.openLDAPPolicy(e); poe == nil && !p.resetSetsMustChange {
			// slapd only restricts a bind with pwdReset TRUE when the policy
			// has pwdMustChange TRUE; the portal still sees MustChange.
			s.c.log.Info("directory: pwdReset set, but the user's password policy lacks pwdMustChange TRUE, so slapd does not enforce it",
				"server", s.srv.u.raw, "dn", cur.DN)
		}
		req := ldap.NewModifyRequest(cur.DN, nil)
		req.Replace("pwdReset", []string{"TRUE"})
		if _, oe := s.modify(req); oe != nil {
			if oe.LDAPResult == ldap.LDAPResultInsufficientAccessRights {
				oe.Rule = "write pwdReset"
				return fail(CodeNotPermitted, "The password was set, but the portal's service account lacks the right to write pwdReset, so it cannot require a change at next sign-in.", oe)
			}
			return generic(oe, s.ctx)
		}
	} else if p, poe := s.openLDAPPolicy(e); poe != nil || p.resetSetsMustChange {
		// A policy with pwdMustChange sets pwdReset on every reset by someone
		// else; the portal's option decides (the user chose this password).
		req := ldap.NewModifyRequest(cur.DN, nil)
		req.Delete("pwdReset", nil)
		if _, oe := s.modify(req); oe != nil && oe.LDAPResult != ldap.LDAPResultNoSuchAttribute {
			s.c.log.Warn("directory: cannot clear pwdReset after a reset", "server", s.srv.u.raw, "dn", cur.DN, "err", oe)
		}
	}
	// Only a lock the read just saw is lifted: slapd keeps no
	// pwdAccountLockedTime on an account that is not locked, and deleting
	// one that is absent would be a second write on every reset.
	if opt.Unlock && e.GetEqualFoldAttributeValue("pwdAccountLockedTime") != "" {
		if err := s.unlockOpenLDAP(cur); err != nil {
			return err
		}
	}
	return nil
}

// changeOpenLDAP binds as the user on a connection kept for binds as people
// (so the pooled ones stay bound as the service account; see userConn) and
// changes the password with Password Modify, giving the old one. With the
// ppolicy control a user whose password must be changed may still bind to
// do this.
func (s *session) changeOpenLDAP(cur User, e *ldap.Entry, oldPw, newPw string) error {
	uc, bres, err := s.userBind(cur.DN, oldPw)
	if uc == nil {
		return err // could not connect
	}
	if err != nil {
		s.doneUser(uc, err)
		oe := newOpError(s.op, s.srv.u.raw, err)
		if oe.Code == CodeUnavailable {
			return generic(oe, s.ctx)
		}
		var pp *ldap.ControlBeheraPasswordPolicy
		if bres != nil {
			pp = ppolicyControl(bres.Controls)
		}
		bf := classifyBind(TypeOpenLDAP, err, pp)
		oe.Rule = bf.rule
		switch bf.code {
		case CodeBadPassword:
			return fail(CodeBadPassword, msgBadCurrent, oe)
		case CodeLocked:
			return fail(CodeLocked, i18n.Key("This account is locked after too many wrong passwords; reset the password or wait until the lock ends."), oe)
		case CodeExpired:
			return fail(CodeExpired, i18n.Key("The password has expired and can no longer be used to change it; reset it instead."), oe)
		}
		return generic(oe, s.ctx)
	}

	ctrls, oe := s.extended(uc, passwordModifyRequest(cur.DN, oldPw, newPw))
	if oe != nil {
		s.doneUser(uc, oe.Err)
		return s.openLDAPWriteError(oe, ctrls, cur, e, true)
	}
	s.doneUser(uc, nil)
	return nil
}

// unlockOpenLDAP deletes pwdAccountLockedTime; "no such attribute" means it
// was not locked, which is success.
func (s *session) unlockOpenLDAP(cur User) error {
	req := ldap.NewModifyRequest(cur.DN, nil)
	req.Delete("pwdAccountLockedTime", nil)
	if _, oe := s.modify(req); oe != nil {
		switch oe.LDAPResult {
		case ldap.LDAPResultNoSuchAttribute:
			return nil
		case ldap.LDAPResultInsufficientAccessRights:
			return notPermitted(oe, "write pwdAccountLockedTime")
		}
		return generic(oe, s.ctx)
	}
	return nil
}

// openLDAPWriteError classifies a failed Password Modify by the ppolicy
// response control first, then by the result code.
func (s *session) openLDAPWriteError(oe *OpError, ctrls []ldap.Control, cur User, e *ldap.Entry, change bool) error {
	if oe.Code == CodeUnavailable || s.ctx.Err() != nil {
		return generic(oe, s.ctx)
	}
	if pp := ppolicyControl(ctrls); pp != nil && pp.Error >= 0 {
		p, poe := s.openLDAPPolicy(e)
		if poe != nil {
			s.c.log.Warn("directory: cannot read the password policy to explain a refusal", "server", s.srv.u.raw, "err", poe)
		}
		code, ex := explainPPolicy(pp.Error, p, cur.PasswordLastSet)
		oe.Rule = ex.rule
		return failf(code, oe, ex.msg, ex.args...)
	}
	switch oe.LDAPResult {
	case ldap.LDAPResultInsufficientAccessRights:
		return notPermitted(oe, "write userPassword")
	case ldap.LDAPResultConstraintViolation:
		return fail(CodePolicy, msgPolicy, oe)
	case ldap.LDAPResultAttributeOrValueExists:
		// Two changes of one account in the same second write the same
		// pwdHistory value; the later one fails and writes nothing.
		return fail(CodeConflict, i18n.Key("Another change to this account happened at the same moment. Please try again."), oe)
	case ldap.LDAPResultUnwillingToPerform:
		if change {
			// slapd: "unwilling to verify old password".
			oe.Rule = "wrong current password"
			return fail(CodeBadPassword, msgBadCurrent, oe)
		}
	case ldap.LDAPResultProtocolError:
		if s.c.cfg.Type == TypeOpenLDAP {
			return fail(CodeInternal, "The directory does not support the Password Modify operation.", oe)
		}
	}
	return generic(oe, s.ctx)
}
