package writeback

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/settings"
)

const connectionName = "directory"

// sealContext binds the sealed password to its place in the database.
const sealContext = "directory.bind_password"

// Directory modes: how the portal reaches the on-premises directory.
const (
	// ModeDirect: the portal holds the servers and the service account and
	// opens LDAP connections itself. An empty mode means direct.
	ModeDirect = "direct"
	// ModeAgents: writeback agents inside the company network hold the
	// directory connection and dial out to the portal; the portal holds no
	// directory URL or credential and never connects to a DC.
	ModeAgents = "agents"
)

// Connection is the stored directory connection. The service-account
// password is only ever held sealed.
type Connection struct {
	// Mode is ModeDirect (also when empty: connections saved before there
	// were modes) or ModeAgents. In agents mode the connection holds no
	// URL, CA, bind DN or password.
	Mode                   string         `json:"mode,omitempty"`
	Type                   directory.Type `json:"type"`
	URLs                   []string       `json:"urls"`
	StartTLS               bool           `json:"start_tls"`
	CAPEM                  string         `json:"ca_pem"`
	BindDN                 string         `json:"bind_dn"`
	BindPasswordSealed     string         `json:"bind_password_sealed"`
	BaseDNs                []string       `json:"base_dns"`
	UserFilter             string         `json:"user_filter"`
	LoginAttributes        []string       `json:"login_attributes"`
	RecoveryEmailAttribute string         `json:"recovery_email_attribute"`
	MobileAttribute        string         `json:"mobile_attribute,omitempty"`
	ExcludedGroups         []string       `json:"excluded_groups"`
	// PasswordWriteback is the connector-side switch ("Optional features ›
	// Password writeback"): writeback happens only when it and the portal's
	// "Write back passwords to your on-premises directory" are both Yes.
	PasswordWriteback bool `json:"password_writeback"`
}

// Clone copies the connection without sharing its lists.
func (c Connection) Clone() Connection {
	c.URLs, c.BaseDNs = slices.Clone(c.URLs), slices.Clone(c.BaseDNs)
	c.LoginAttributes, c.ExcludedGroups = slices.Clone(c.LoginAttributes), slices.Clone(c.ExcludedGroups)
	return c
}

// Configured reports whether a connection has been saved: servers with a
// service account in direct mode, or agents mode (the agents hold the rest).
func (c Connection) Configured() bool {
	return c.Agents() || (len(c.URLs) > 0 && c.BindDN != "")
}

// Agents reports whether the directory is reached through writeback agents.
func (c Connection) Agents() bool { return c.Mode == ModeAgents }

// ModeOrDefault is the connection's mode, ModeDirect when none is stored.
func (c Connection) ModeOrDefault() string {
	if c.Mode == "" {
		return ModeDirect
	}
	return c.Mode
}

// HasPassword reports whether a service-account password is stored.
func (c Connection) HasPassword() bool { return c.BindPasswordSealed != "" }

// Input is a connection as an administrator submits it. An empty
// BindPassword keeps the stored one (the password is write-only), as long as
// it goes to the same servers (see SaveConnection).
type Input struct {
	// Mode is ModeDirect (or empty) or ModeAgents. Agents mode needs none
	// of the server and service-account fields, and saving it clears them.
	Mode                   string
	Type                   directory.Type
	URLs                   []string
	StartTLS               bool
	CAPEM                  string
	BindDN                 string
	BindPassword           string
	BaseDNs                []string
	UserFilter             string
	LoginAttributes        []string
	RecoveryEmailAttribute string
	MobileAttribute        string
	ExcludedGroups         []string
	PasswordWriteback      bool
}

// InputOf is the stored connection as an Input, without a password: what a
// form or a command starts from.
func InputOf(c Connection) Input {
	return Input{Mode: c.ModeOrDefault(), Type: c.Type, URLs: c.URLs, StartTLS: c.StartTLS, CAPEM: c.CAPEM, BindDN: c.BindDN,
		BaseDNs: c.BaseDNs, UserFilter: c.UserFilter, LoginAttributes: c.LoginAttributes,
		RecoveryEmailAttribute: c.RecoveryEmailAttribute, MobileAttribute: c.MobileAttribute, ExcludedGroups: c.ExcludedGroups,
		PasswordWriteback: c.PasswordWriteback}
}

// Connection reads the stored connection, from memory (decoded once per
// version: see settings.Get).
func (s *Service) Connection(ctx context.Context) (Connection, settings.Meta, error) {
	return settings.Get(ctx, s.db, connectionName, Connection{})
}

// config turns a stored connection (and a plain password) into a client config.
func config(c Connection, password string) directory.Config {
	return directory.Config{
		Type: c.Type, URLs: c.URLs, StartTLS: c.StartTLS, CAPEM: c.CAPEM,
		BindDN: c.BindDN, BindPassword: password, BaseDNs: c.BaseDNs, UserFilter: c.UserFilter,
		LoginAttributes: c.LoginAttributes, RecoveryEmailAttribute: c.RecoveryEmailAttribute, MobileAttribute: c.MobileAttribute,
		ExcludedGroups: c.ExcludedGroups,
	}
}

// SplitList splits a comma-separated list (login attributes), trimming each
// item and dropping empty ones, so that "a, b" and "a,b" are the same list
// and a list survives being shown and saved again unchanged.
func SplitList(s string) []string { return clean(strings.Split(s, ",")) }

// clean trims every item and drops empty ones.
func clean(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// normalize trims the input and drops empty list entries.
func (in Input) normalize() Input {
	in.URLs, in.BaseDNs, in.ExcludedGroups = clean(in.URLs), clean(in.BaseDNs), clean(in.ExcludedGroups)
	in.LoginAttributes = clean(in.LoginAttributes)
	in.BindDN, in.UserFilter = strings.TrimSpace(in.BindDN), strings.TrimSpace(in.UserFilter)
	in.RecoveryEmailAttribute = strings.TrimSpace(in.RecoveryEmailAttribute)
	in.MobileAttribute = strings.TrimSpace(in.MobileAttribute)
	in.CAPEM = strings.TrimSpace(in.CAPEM)
	in.Mode = strings.ToLower(strings.TrimSpace(in.Mode))
	if in.Mode == "" {
		in.Mode = ModeDirect
	}
	if in.Mode == ModeAgents {
		// The agents hold the directory connection: nothing here may point
		// at a server or carry a credential.
		in.URLs, in.StartTLS, in.CAPEM, in.BindDN, in.BindPassword = nil, false, "", "", ""
	}
	return in
}

// WithTypeDefaults is the one rule for what a connection of in.Type gets by
// default, used by the page (detecting the type and saving) and the command
// line alike. When the type differs from the one the connection had (from;
// empty for a first save), login attributes that are empty or still hold
// from's defaults take in.Type's, and so does a user filter that holds from's
// default (an empty one means the type's default anyway); the excluded groups
// become AD's protected groups when the type becomes AD and the list is empty,
// and are dropped when it stops being AD while they are still AD's defaults.
// An empty recovery e-mail attribute is mail (an empty mobile attribute stays
// empty: the directory client reads mobile then).
func WithTypeDefaults(in Input, from directory.Type) Input {
	if in.RecoveryEmailAttribute == "" {
		in.RecoveryEmailAttribute = "mail"
	}
	if in.Type == from {
		return in
	}
	base := ""
	if bases := clean(in.BaseDNs); len(bases) > 0 {
		base = bases[0]
	}
	prev, next := directory.Defaults(from, ""), directory.Defaults(in.Type, base)
	// An empty filter means the type's default already.
	if f := strings.TrimSpace(in.UserFilter); f != "" && f == prev.UserFilter {
		in.UserFilter = next.UserFilter
	}
	if len(in.LoginAttributes) == 0 || sameFold(in.LoginAttributes, prev.LoginAttributes) {
		in.LoginAttributes = next.LoginAttributes
	}
	switch {
	case len(clean(in.ExcludedGroups)) == 0 && base != "":
		in.ExcludedGroups = next.ExcludedGroups // AD's protected groups in the base DN's domain
	case in.Type != directory.TypeAD && isADDefaults(in.ExcludedGroups):
		in.ExcludedGroups = nil
	}
	return in
}

// isADDefaults tells whether every group of gs is one of AD's default
// protected groups (in whatever domain).
func isADDefaults(gs []string) bool {
	gs = clean(gs)
	if len(gs) == 0 {
		return false
	}
	for _, g := range gs {
		if !slices.ContainsFunc(directory.DefaultADExcludedGroups(directory.DomainDN(g)), func(d string) bool { return strings.EqualFold(d, g) }) {
			return false
		}
	}
	return true
}

func sameFold(a, b []string) bool {
	return slices.EqualFunc(a, b, strings.EqualFold)
}

// msgPasswordAgain is the bind_password field error when the stored password
// would go to a server it was not entered for.
var msgPasswordAgain = i18n.Key("Enter the service account password again: the server changed (a new server URL, CA certificate or TLS setting), " +
	"and a stored password is only ever sent to the server it was entered for.")

// serverChanged tells whether next would send the stored password somewhere
// it was not entered for: a server URL that was not configured, other trusted
// CAs, or another TLS setting. Dropping a URL or reordering them is no change.
func serverChanged(old Connection, next Input) bool {
	key := func(u string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(u)), "/") }
	known := map[string]bool{}
	for _, u := range old.URLs {
		known[key(u)] = true
	}
	for _, u := range next.URLs {
		if !known[key(u)] {
			return true
		}
	}
	// StartTLS only matters for ldap:// URLs.
	plain := func(us []string) bool {
		return slices.ContainsFunc(us, func(u string) bool { return strings.HasPrefix(key(u), "ldap://") })
	}
	tlsChanged := old.StartTLS != next.StartTLS && (plain(old.URLs) || plain(next.URLs))
	return strings.TrimSpace(old.CAPEM) != strings.TrimSpace(next.CAPEM) || tlsChanged
}

// msgMode is the mode field error for a mode that is neither.
var msgMode = i18n.Key("Choose Direct or Through writeback agents.")

// SaveConnection validates and saves a connection if it is still at
// expectVersion, and records "Update directory connection" with old → new
// values (the password only as "changed"). The same validation serves the
// page and the command line: the per-type defaults of WithTypeDefaults, and
// a new password whenever the servers, their CA or the TLS setting changed,
// so a stored password never reaches a server it was not entered for.
//
// In agents mode nothing of the servers or the service account is needed
// or kept: saving it clears the URLs, CA, bind DN and password. The other
// fields (type, search bases, filter, attributes, excluded groups, the
// connector switch) are the agents' business then; they keep what was
// stored, whatever was submitted, so only values validated in direct mode
// are ever stored and a switch back to direct starts from them.
func (s *Service) SaveConnection(ctx context.Context, actor audit.Actor, expectVersion int64, in Input) (bool, error) {
	in = in.normalize()
	if in.Mode != ModeDirect && in.Mode != ModeAgents {
		return false, errs.FieldErrors(map[string]string{"mode": msgMode})
	}
	modeChanged := false
	changed, _, err := settings.Update(ctx, s.db, connectionName, expectVersion, actor, Connection{}, func(old Connection) (Connection, []audit.Entry, error) {
		modeChanged = old.ModeOrDefault() != in.Mode
		if in.Mode == ModeAgents {
			return agentsConnection(old)
		}
		from := old.Type
		if !old.Configured() {
			from = ""
		}
		in := WithTypeDefaults(in, from).normalize()
		password, sealed := in.BindPassword, old.BindPasswordSealed
		retype := password == "" && sealed != "" && old.Configured() && serverChanged(old, in)
		if password == "" && sealed != "" {
			// Keep the stored password; it is needed only to validate completeness.
			pt, err := s.keys.Open(sealContext, sealed)
			if err != nil {
				return old, nil, errs.FieldErrors(map[string]string{"bind_password": "The stored password cannot be decrypted (was the key file replaced?). Enter the password again."})
			}
			password = string(pt)
		} else if password != "" {
			var err error
			if sealed, err = s.keys.Seal(sealContext, []byte(password)); err != nil {
				return old, nil, err
			}
		}
		next := Connection{Mode: ModeDirect, Type: in.Type, URLs: in.URLs, StartTLS: in.StartTLS, CAPEM: in.CAPEM, BindDN: in.BindDN,
			BindPasswordSealed: sealed, BaseDNs: in.BaseDNs, UserFilter: in.UserFilter, LoginAttributes: in.LoginAttributes,
			RecoveryEmailAttribute: in.RecoveryEmailAttribute, MobileAttribute: in.MobileAttribute, ExcludedGroups: in.ExcludedGroups,
			PasswordWriteback: in.PasswordWriteback}
		verr := config(next, password).Validate()
		if retype {
			fields := maps.Clone(errs.FieldsOf(verr))
			if fields == nil {
				fields = map[string]string{}
			}
			fields["bind_password"] = msgPasswordAgain
			return old, nil, errs.FieldErrors(fields)
		}
		if verr != nil {
			return old, nil, verr
		}
		return saved(old, next, in.BindPassword != "")
	})
	if changed {
		s.dropClient()
		if modeChanged {
			// The status panel still tells of the other way of reaching the
			// directory: the monitor checks the new one soon.
			s.kickMonitor()
		}
	}
	return changed, err
}

// agentsConnection is old switched to agents mode: no servers, CA, service
// account or password; everything else as stored.
func agentsConnection(old Connection) (Connection, []audit.Entry, error) {
	next := old.Clone()
	next.Mode = ModeAgents
	next.URLs, next.StartTLS, next.CAPEM, next.BindDN, next.BindPasswordSealed = nil, false, "", "", ""
	return saved(old, next, false)
}

// saved is what settings.Update stores for next: next with its audit row,
// or old unchanged when nothing differs.
func saved(old, next Connection, passwordChanged bool) (Connection, []audit.Entry, error) {
	d := diff(old, next, passwordChanged)
	if len(d) == 0 {
		return old, nil, nil
	}
	name := strings.Join(next.URLs, ", ")
	if next.Agents() {
		name = "writeback agents"
	}
	return next, []audit.Entry{{Category: audit.CategoryDirectoryManagement, Activity: audit.ActivityUpdateDirectory,
		Target: audit.Target{Type: "Directory", ID: "on-premises", Name: name}, Details: d}}, nil
}

// diff lists what changed between two connections for the audit log.
func diff(old, next Connection, passwordChanged bool) audit.Changes {
	d := audit.Changes{}
	add := d.Add
	add("mode", old.ModeOrDefault(), next.ModeOrDefault())
	add("type", old.Type, next.Type)
	add("urls", old.URLs, next.URLs)
	add("start_tls", old.StartTLS, next.StartTLS)
	if old.CAPEM != next.CAPEM {
		d["trusted_ca_certificates"] = "changed"
	}
	add("bind_dn", old.BindDN, next.BindDN)
	switch {
	case passwordChanged:
		d["bind_password"] = "changed"
	case old.BindPasswordSealed != "" && next.BindPasswordSealed == "":
		d["bind_password"] = "cleared"
	}
	add("base_dns", old.BaseDNs, next.BaseDNs)
	add("user_filter", old.UserFilter, next.UserFilter)
	add("login_attributes", old.LoginAttributes, next.LoginAttributes)
	add("recovery_email_attribute", old.RecoveryEmailAttribute, next.RecoveryEmailAttribute)
	add("mobile_attribute", old.MobileAttribute, next.MobileAttribute)
	add("excluded_groups", old.ExcludedGroups, next.ExcludedGroups)
	add("password_writeback", old.PasswordWriteback, next.PasswordWriteback)
	return d
}

// Detect reads a server's rootDSE to tell AD from OpenLDAP.
func (s *Service) Detect(ctx context.Context, url string, startTLS bool, caPEM string) (directory.Type, error) {
	return directory.Detect(ctx, url, startTLS, caPEM)
}
