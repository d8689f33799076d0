package directory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Protected accounts: the portal never resets, unlocks or changes the
// password of its own service account, nor of a member (nested, or through
// the primary group) of one of AD's protected groups or of a configured
// excluded group. adminCount=1 is one more signal, never the only one: Samba
// never sets it, and AD sets it only once SDProp has run.

// protectedTTL bounds how long the protected groups found on a server and the
// service account's ID are reused.
const protectedTTL = 10 * time.Minute

// The groups AdminSDHolder covers, by the last part of their SID: relative to
// the domain's SID, and in the Builtin domain S-1-5-32. Names differ with the
// language a domain was installed in; these SIDs do not.
var (
	adProtectedDomainRIDs = map[uint32]string{
		512: "Domain Admins", 516: "Domain Controllers", 518: "Schema Admins", 519: "Enterprise Admins",
		521: "Read-only Domain Controllers", 526: "Key Admins", 527: "Enterprise Key Admins",
	}
	adProtectedBuiltinRIDs = map[uint32]string{
		544: "Administrators", 548: "Account Operators", 549: "Server Operators", 550: "Print Operators",
		551: "Backup Operators", 552: "Replicator",
	}
)

// DefaultADExcludedGroups lists AD's protected groups by their usual (English)
// DNs in the domain domainDN, for the excluded-groups setting, so that
// administrators see them. The client protects these groups by SID whatever
// the setting says; the list adds nothing the SIDs miss, except where a group
// of that name is not the well-known one.
func DefaultADExcludedGroups(domainDN string) []string {
	users, builtin := "CN=Users,"+domainDN, "CN=Builtin,"+domainDN
	return []string{
		"CN=Account Operators," + builtin,
		"CN=Administrators," + builtin,
		"CN=Backup Operators," + builtin,
		"CN=Domain Admins," + users,
		"CN=Domain Controllers," + users,
		"CN=Enterprise Admins," + users,
		"CN=Enterprise Key Admins," + users,
		"CN=Key Admins," + users,
		"CN=Print Operators," + builtin,
		"CN=Read-only Domain Controllers," + users,
		"CN=Replicator," + builtin,
		"CN=Schema Admins," + users,
		"CN=Server Operators," + builtin,
	}
}

// sid is a Windows security identifier.
type sid struct {
	authority uint64
	subs      []uint32
}

var builtinSID = sid{authority: 5, subs: []uint32{32}}

// ridDomainUsers is the RID of Domain Users, every account's primary group
// unless an administrator chose another.
const ridDomainUsers = 513

// ridBuiltinUsers is the RID of Builtin\Users, which Domain Users is in.
const ridBuiltinUsers = 545

// parseSID reads the binary form of a SID (objectSid).
func parseSID(b []byte) (sid, bool) {
	if len(b) < 8 || b[0] != 1 || len(b) != 8+4*int(b[1]) {
		return sid{}, false
	}
	var s sid
	for _, x := range b[2:8] {
		s.authority = s.authority<<8 | uint64(x)
	}
	for i := 0; i < int(b[1]); i++ {
		s.subs = append(s.subs, binary.LittleEndian.Uint32(b[8+4*i:]))
	}
	return s, true
}

// bytes is the binary form of s.
func (s sid) bytes() []byte {
	b := make([]byte, 8+4*len(s.subs))
	b[0], b[1] = 1, byte(len(s.subs))
	for i := 0; i < 6; i++ {
		b[7-i] = byte(s.authority >> (8 * i))
	}
	for i, x := range s.subs {
		binary.LittleEndian.PutUint32(b[8+4*i:], x)
	}
	return b
}

// child is the SID of the account rid of the domain s.
func (s sid) child(rid uint32) sid {
	return sid{authority: s.authority, subs: append(append([]uint32{}, s.subs...), rid)}
}

func (s sid) String() string {
	var b strings.Builder
	b.WriteString("S-1-" + strconv.FormatUint(s.authority, 10))
	for _, x := range s.subs {
		b.WriteString("-" + strconv.FormatUint(uint64(x), 10))
	}
	return b.String()
}

// filterValue is s escaped byte by byte for an LDAP filter.
func (s sid) filterValue() string {
	var b strings.Builder
	for _, x := range s.bytes() {
		fmt.Fprintf(&b, `\%02x`, x)
	}
	return b.String()
}

// protectedGroup is one group whose members the portal leaves alone.
type protectedGroup struct {
	dn   string
	name string // the well-known name, for people; empty for a configured group
}

func (g protectedGroup) describe() string {
	if g.name == "" {
		return g.dn
	}
	return g.dn + " (" + g.name + ", one of Active Directory's protected groups)"
}

// adProtection is what a DC says about its protected groups.
type adProtection struct {
	nc      string // the domain's naming context
	domain  sid
	groups  []protectedGroup // found by SID
	all     []protectedGroup // groups, then the configured excluded groups not among them
	primary map[uint32]string
	// parents remembers, for groupNestingTTL, the groups each group is a
	// direct member of (its memberOf), by dnKey: the walk up from an
	// account's groups then costs no search on most lookups, and the one
	// search before a write reads only the account. The account's own
	// memberOf, primaryGroupID and adminCount are read fresh every time.
	parents map[string]groupParents
}

type groupParents struct {
	dns []string
	at  time.Time
}

// groupNestingTTL bounds how long a group's own memberships are reused: a
// group nested into a protected group counts within a minute, while an
// account put into a group (protected or nested in one) counts at once.
const groupNestingTTL = time.Minute

// maxCachedGroups bounds the parents cache; past it the cache starts anew.
const maxCachedGroups = 10000

// adProtectionInfo finds the domain's SID and its protected groups on the
// session's server, at most every protectedTTL.
func (s *session) adProtectionInfo() (*adProtection, *OpError) {
	s.srv.mu.Lock()
	p, at := s.srv.prot, s.srv.protAt
	s.srv.mu.Unlock()
	if p != nil && time.Since(at) < protectedTTL {
		return p, nil
	}
	dse, oe := s.rootDSE()
	if oe != nil {
		return nil, oe
	}
	nc := dse.defaultNamingContext
	if nc == "" {
		return nil, &OpError{Op: s.op, Server: s.srv.u.raw, Err: errors.New("the root DSE names no defaultNamingContext")}
	}
	res, oe := s.search(ldap.NewSearchRequest(nc, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"objectSid"}, nil))
	if oe != nil {
		return nil, oe
	}
	var domain sid
	ok := len(res.Entries) == 1
	if ok {
		domain, ok = parseSID(res.Entries[0].GetRawAttributeValue("objectSid"))
	}
	if !ok {
		return nil, &OpError{Op: s.op, Server: s.srv.u.raw, Err: fmt.Errorf("the objectSid of the domain %s cannot be read", nc)}
	}
	names := map[string]string{}
	var f strings.Builder
	f.WriteString("(|")
	var order []string // domain groups first, then Builtin, each by RID: reasons name the same group every time
	for _, set := range []struct {
		domain sid
		rids   map[uint32]string
	}{{domain, adProtectedDomainRIDs}, {builtinSID, adProtectedBuiltinRIDs}} {
		for _, rid := range slices.Sorted(maps.Keys(set.rids)) {
			g := set.domain.child(rid).String()
			names[g] = set.rids[rid]
			order = append(order, g)
			f.WriteString("(objectSid=" + set.domain.child(rid).filterValue() + ")")
		}
	}
	// Domain Users too, the primary group of nearly every account, and
	// Builtin\Users, which it is a member of, with every group's memberOf:
	// the first protection check then needs no search for the primary group
	// nor for the nesting of Domain Users.
	domainUsers := domain.child(ridDomainUsers)
	f.WriteString("(objectSid=" + domainUsers.filterValue() + ")(objectSid=" + builtinSID.child(ridBuiltinUsers).filterValue() + "))")
	res, oe = s.search(ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		f.String(), []string{"objectSid", "memberOf"}, nil))
	if oe != nil {
		return nil, oe
	}
	p = &adProtection{nc: nc, domain: domain, primary: map[uint32]string{}, parents: map[string]groupParents{}}
	found := map[string]string{}
	now := time.Now()
	for _, e := range res.Entries {
		g, ok := parseSID(e.GetRawAttributeValue("objectSid"))
		if !ok {
			continue
		}
		switch g.String() {
		case domainUsers.String():
			p.primary[ridDomainUsers] = e.DN
		case builtinSID.child(ridBuiltinUsers).String():
		default:
			found[g.String()] = e.DN
		}
		if !rangedMemberOf(e) {
			p.parents[dnKey(e.DN)] = groupParents{dns: e.GetEqualFoldAttributeValues("memberOf"), at: now}
		}
	}
	for _, g := range order {
		if dn := found[g]; dn != "" {
			p.groups = append(p.groups, protectedGroup{dn: dn, name: names[g]})
		}
	}
	if len(p.groups) == 0 {
		// Administrators (S-1-5-32-544) exists in every domain: finding none
		// means the search did not work, not that nothing is protected.
		return nil, &OpError{Op: s.op, Server: s.srv.u.raw, Err: fmt.Errorf("none of the protected groups of %s was found by SID", nc)}
	}
	p.all = append([]protectedGroup{}, p.groups...)
	for _, g := range s.c.configuredGroups() {
		if !slices.ContainsFunc(p.all, func(h protectedGroup) bool { return sameDN(g.dn, h.dn) }) {
			p.all = append(p.all, g)
		}
	}
	s.srv.mu.Lock()
	s.srv.prot, s.srv.protAt = p, time.Now()
	s.srv.mu.Unlock()
	return p, nil
}

// primaryGroupDN returns the DN of the group with RID rid in the domain, or ""
// when there is none.
func (s *session) primaryGroupDN(p *adProtection, rid uint32) (string, *OpError) {
	s.srv.mu.Lock()
	dn, ok := p.primary[rid]
	s.srv.mu.Unlock()
	if ok {
		return dn, nil
	}
	res, oe := s.search(ldap.NewSearchRequest(p.nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		"(objectSid="+p.domain.child(rid).filterValue()+")", []string{"1.1"}, nil))
	if oe != nil {
		return "", oe
	}
	if len(res.Entries) == 1 {
		dn = res.Entries[0].DN
	}
	s.srv.mu.Lock()
	p.primary[rid] = dn
	s.srv.mu.Unlock()
	return dn, nil
}

// serviceAccountID returns the ID (objectGUID or entryUUID) of the portal's
// service account on the session's server, or "" when it cannot be read.
func (s *session) serviceAccountID() string {
	s.srv.mu.Lock()
	id, at := s.srv.svcID, s.srv.svcIDAt
	s.srv.mu.Unlock()
	if !at.IsZero() && time.Since(at) < protectedTTL {
		return id
	}
	attr := "entryUUID"
	if s.c.cfg.Type == TypeAD {
		attr = "objectGUID"
	}
	res, oe := s.search(ldap.NewSearchRequest(s.c.cfg.BindDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{attr}, nil))
	switch {
	case oe != nil && (oe.Code == CodeUnavailable || s.ctx.Err() != nil):
		return "" // try again next time
	case oe != nil || len(res.Entries) != 1:
		// Remembered too: the DN comparison still holds.
		s.c.log.Debug("directory: cannot read the service account's ID; comparing DNs only", "server", s.srv.u.raw, "err", oe)
		id = ""
	case s.c.cfg.Type == TypeAD:
		id = formatGUID(res.Entries[0].GetEqualFoldRawAttributeValue(attr))
	default:
		id = res.Entries[0].GetEqualFoldAttributeValue(attr)
	}
	s.srv.mu.Lock()
	s.srv.svcID, s.srv.svcIDAt = id, time.Now()
	s.srv.mu.Unlock()
	return id
}

// isServiceAccount tells whether u is the portal's own service account: the
// same DN (compared as DNs, so case and spacing do not matter) or the same ID.
func (s *session) isServiceAccount(u *User) bool {
	if sameDN(u.DN, s.c.cfg.BindDN) {
		return true
	}
	id := s.serviceAccountID()
	return id != "" && u.ID != "" && strings.EqualFold(id, u.ID)
}

// sameDN compares two DNs as DNs, falling back to text when one does not parse.
func sameDN(a, b string) bool {
	da, err1 := ldap.ParseDN(a)
	db, err2 := ldap.ParseDN(b)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
	}
	return da.EqualFold(db)
}

// protect decides whether u is an account the portal must leave alone.
func (s *session) protect(e *ldap.Entry, u *User) *OpError {
	if s.isServiceAccount(u) {
		u.Protected, u.ProtectedReason = true, "the portal's own service account"
		return nil
	}
	if s.c.cfg.Type == TypeAD {
		return s.adProtected(e, u)
	}
	return s.openLDAPProtected(e, u)
}

// configuredGroups is the excluded-groups setting as protected groups.
func (c *Client) configuredGroups() []protectedGroup {
	out := make([]protectedGroup, 0, len(c.cfg.ExcludedGroups))
	for _, g := range c.cfg.ExcludedGroups {
		out = append(out, protectedGroup{dn: g})
	}
	return out
}

// adProtected marks members of AD's protected groups (found by SID) and of
// the excluded groups: nested membership (the account's memberOf and the
// groups above them, see firstProtected), the primary group (which memberOf
// never shows) and that group's own nested memberships; and accounts with
// adminCount=1. When the check cannot be made the account counts as
// protected: guessing "not privileged" would be the unsafe mistake.
func (s *session) adProtected(e *ldap.Entry, u *User) *OpError {
	if strings.TrimSpace(e.GetEqualFoldAttributeValue("adminCount")) == "1" {
		u.Protected, u.ProtectedReason = true, "adminCount=1 (a privileged account protected by AdminSDHolder)"
		return nil
	}
	unsure := func(what string, oe *OpError) *OpError {
		if oe.Code == CodeUnavailable || s.ctx.Err() != nil {
			return oe
		}
		s.c.log.Warn("directory: cannot check whether an account is privileged; treating it as protected",
			"server", s.srv.u.raw, "dn", e.DN, "check", what, "err", oe)
		u.Protected, u.ProtectedReason = true, "Writeback could not check "+what+", so it treats the account as privileged (the operator log has the reason)"
		return nil
	}
	p, oe := s.adProtectionInfo()
	if oe != nil {
		return unsure("the domain's protected groups", oe)
	}
	groups := p.all

	var g *protectedGroup
	if rangedMemberOf(e) {
		g, oe = s.inChain(e.DN, groups)
	} else {
		g, oe = s.firstProtected(p, e.DN, e.GetEqualFoldAttributeValues("memberOf"), groups)
	}
	if oe != nil {
		return unsure("the account's nested group memberships", oe)
	}
	if g != nil {
		u.Protected, u.ProtectedReason = true, "member of "+g.describe()
		return nil
	}

	rid := uint32(parseInt(e.GetEqualFoldAttributeValue("primaryGroupID")))
	if rid == 0 {
		return nil
	}
	if name, ok := adProtectedDomainRIDs[rid]; ok {
		u.Protected, u.ProtectedReason = true, fmt.Sprintf("primary group is %s (RID %d, one of Active Directory's protected groups)", name, rid)
		return nil
	}
	pg, oe := s.primaryGroupDN(p, rid)
	if oe != nil {
		return unsure("the account's primary group", oe)
	}
	if pg == "" {
		return nil
	}
	for _, g := range groups {
		if sameDN(pg, g.dn) {
			u.Protected, u.ProtectedReason = true, "primary group is "+g.describe()
			return nil
		}
	}
	if g, oe = s.firstProtected(p, pg, []string{pg}, groups); oe != nil {
		return unsure("the nested group memberships of the account's primary group", oe)
	}
	if g != nil {
		u.Protected, u.ProtectedReason = true, "primary group "+pg+" is a member of "+g.describe()
	}
	return nil
}

// firstProtected returns the first of groups that the entry dn, whose direct
// groups are starts, is a member of, nested membership included, or nil. It
// walks up from starts itself (ancestry) rather than ask the DC with the
// in-chain matching rule, which walks the account's groups once for each
// protected group on every lookup (a user in ten groups took 50 ms on Samba);
// where the walk cannot see everything it asks the DC after all (inChain).
func (s *session) firstProtected(p *adProtection, dn string, starts []string, groups []protectedGroup) (*protectedGroup, *OpError) {
	stop := make(map[string]bool, len(groups))
	for _, g := range groups {
		stop[dnKey(g.dn)] = true
	}
	reached, complete, oe := s.ancestry(p, starts, stop)
	if oe != nil {
		return nil, oe
	}
	if !complete {
		return s.inChain(dn, groups)
	}
	for i := range groups {
		if reached[dnKey(groups[i].dn)] {
			return &groups[i], nil
		}
	}
	return nil, nil
}

// ancestry returns the groups dns and every group they are nested in, by
// dnKey: the memberOf of each group comes from p's cache while fresh (see
// groupNestingTTL), else from one search under the naming context per
// level of nesting, for all the level's groups not cached. complete is false
// when a group could not be read (it is outside the naming context or hidden
// from the service account) or its memberOf came in ranges (AD sends ranges
// past 1500 values); such groups are not cached. The walk ends early, as
// complete, once it reaches one of stop (by dnKey): the account is
// protected, whatever lies further up.
func (s *session) ancestry(p *adProtection, dns []string, stop map[string]bool) (reached map[string]bool, complete bool, oe *OpError) {
	reached = map[string]bool{}
	var level []string
	stopped := false
	add := func(dn string) {
		if k := dnKey(dn); !reached[k] {
			reached[k] = true
			level = append(level, dn)
			stopped = stopped || stop[k]
		}
	}
	for _, dn := range dns {
		add(dn)
	}
	for len(level) > 0 && !stopped {
		this := level
		level = nil
		var unknown []string
		now := time.Now()
		s.srv.mu.Lock()
		for _, dn := range this {
			if gp, ok := p.parents[dnKey(dn)]; ok && now.Sub(gp.at) < groupNestingTTL {
				for _, m := range gp.dns {
					add(m)
				}
			} else {
				unknown = append(unknown, dn)
			}
		}
		s.srv.mu.Unlock()
		for part := range slices.Chunk(unknown, 64) {
			if stopped {
				break
			}
			var f strings.Builder
			f.WriteString("(|")
			for _, dn := range part {
				f.WriteString("(distinguishedName=" + ldap.EscapeFilter(dn) + ")")
			}
			f.WriteString(")")
			res, oe := s.search(ldap.NewSearchRequest(p.nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
				f.String(), []string{"memberOf"}, nil))
			if oe != nil {
				return nil, false, oe
			}
			if len(res.Entries) != len(part) {
				return reached, false, nil
			}
			for _, e := range res.Entries {
				if rangedMemberOf(e) {
					return reached, false, nil
				}
				ms := e.GetEqualFoldAttributeValues("memberOf")
				p.remember(s.srv, e.DN, ms, now)
				for _, m := range ms {
					add(m)
				}
			}
		}
	}
	return reached, true, nil
}

// remember caches the direct memberships of the group dn.
func (p *adProtection) remember(srv *server, dn string, memberOf []string, at time.Time) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(p.parents) >= maxCachedGroups {
		clear(p.parents)
	}
	p.parents[dnKey(dn)] = groupParents{dns: slices.Clone(memberOf), at: at}
}

// rangedMemberOf tells whether e's memberOf came in ranges
// ("memberOf;range=0-1499") rather than whole.
func rangedMemberOf(e *ldap.Entry) bool {
	return slices.ContainsFunc(e.Attributes, func(a *ldap.EntryAttribute) bool {
		return strings.HasPrefix(strings.ToLower(a.Name), "memberof;range=")
	})
}

// dnKey is dn in one spelling, for comparing DNs as map keys.
func dnKey(dn string) string {
	if d, err := ldap.ParseDN(dn); err == nil {
		return strings.ToLower(d.String())
	}
	return strings.ToLower(strings.TrimSpace(dn))
}

// inChain returns the first of groups that dn is a member of, nested
// membership included (LDAP_MATCHING_RULE_IN_CHAIN), or nil. One search
// answers the usual "none of them"; which one is only looked for on a match.
func (s *session) inChain(dn string, groups []protectedGroup) (*protectedGroup, *OpError) {
	if len(groups) == 0 {
		return nil, nil
	}
	member := func(gs []protectedGroup) (bool, *OpError) {
		var f strings.Builder
		f.WriteString("(|")
		for _, g := range gs {
			f.WriteString("(memberOf:" + oidMatchingRuleInChain + ":=" + ldap.EscapeFilter(g.dn) + ")")
		}
		f.WriteString(")")
		res, oe := s.search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			f.String(), []string{"1.1"}, nil))
		if oe != nil {
			return false, oe
		}
		return len(res.Entries) > 0, nil
	}
	ok, oe := member(groups)
	if oe != nil || !ok {
		return nil, oe
	}
	for i := range groups {
		if ok, oe := member(groups[i : i+1]); oe == nil && ok {
			return &groups[i], nil
		}
	}
	return &protectedGroup{dn: "one of the protected groups"}, nil
}

// openLDAPProtected marks members of an excluded group, from memberOf when
// the memberof overlay provides it, else from the groups' member and
// uniqueMember values (direct membership only): one search for every
// excluded group at once (see excludedGroupsWith).
func (s *session) openLDAPProtected(e *ldap.Entry, u *User) *OpError {
	groups := s.c.cfg.ExcludedGroups
	if len(groups) == 0 {
		return nil
	}
	for _, m := range e.GetEqualFoldAttributeValues("memberOf") {
		for _, g := range groups {
			if sameDN(m, g) {
				u.Protected, u.ProtectedReason = true, "member of "+g
				return nil
			}
		}
	}
	in, oe := s.excludedGroupsWith(e.DN, groups)
	if oe != nil {
		return oe
	}
	// The first in the configured order, so the reason names the same group
	// every time.
	for _, g := range groups {
		if in[dnKey(g)] {
			u.Protected, u.ProtectedReason = true, "member of "+g
			return nil
		}
	}
	return nil
}

// excludedGroupsWith returns, by dnKey, which of groups list dn as a member
// or uniqueMember. Groups under one common ancestor (the usual case: one
// naming context) take one subtree search there, selecting the groups by
// entryDN; groups that do not exist or that the service account may not
// read are simply not found, as a base search on each would not find them.
func (s *session) excludedGroupsWith(dn string, groups []string) (map[string]bool, *OpError) {
	in := map[string]bool{}
	v := ldap.EscapeFilter(dn)
	for base, part := range groupsByAncestor(groups) {
		var f strings.Builder
		f.WriteString("(&(|(member=" + v + ")(uniqueMember=" + v + "))(|")
		for _, g := range part {
			f.WriteString("(entryDN=" + ldap.EscapeFilter(g) + ")")
		}
		f.WriteString("))")
		scope := ldap.ScopeWholeSubtree
		if len(part) == 1 && sameDN(base, part[0]) {
			scope = ldap.ScopeBaseObject
		}
		res, oe := s.search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false,
			f.String(), []string{"1.1"}, nil))
		if oe != nil {
			if oe.LDAPResult == ldap.LDAPResultNoSuchObject {
				continue
			}
			return nil, oe
		}
		for _, e := range res.Entries {
			in[dnKey(e.DN)] = true
		}
	}
	return in, nil
}

// groupsByAncestor sorts group DNs under their longest common ancestor: one
// base for groups that share at least their last RDN, and each group that
// shares nothing (or does not parse) as its own base.
func groupsByAncestor(groups []string) map[string][]string {
	out := map[string][]string{}
	type parsed struct {
		raw string
		dn  *ldap.DN
	}
	bySuffix := map[string][]parsed{} // by the last RDN
	var order []string
	for _, g := range groups {
		d, err := ldap.ParseDN(g)
		if err != nil || len(d.RDNs) == 0 {
			out[g] = append(out[g], g)
			continue
		}
		k := strings.ToLower(d.RDNs[len(d.RDNs)-1].String())
		if _, ok := bySuffix[k]; !ok {
			order = append(order, k)
		}
		bySuffix[k] = append(bySuffix[k], parsed{g, d})
	}
	for _, k := range order {
		ps := bySuffix[k]
		common := ps[0].dn.RDNs
		for _, p := range ps[1:] {
			n := 0
			for n < len(common) && n < len(p.dn.RDNs) &&
				strings.EqualFold(common[len(common)-1-n].String(), p.dn.RDNs[len(p.dn.RDNs)-1-n].String()) {
				n++
			}
			common = common[len(common)-n:]
		}
		base := (&ldap.DN{RDNs: common}).String()
		if len(ps) == 1 {
			base = ps[0].raw
		}
		for _, p := range ps {
			out[base] = append(out[base], p.raw)
		}
	}
	return out
}
