// Package web holds the portal's templ components and the view models they
// render: one view-model struct per page.
package web

import (
	"context"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a-h/templ"
	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
)

// Viewer is the signed-in administrator, as pages show them.
type Viewer struct {
	Name      string
	Email     string
	Role      string // role key, e.g. global-admin
	RoleLabel string
}

// Can reports whether the viewer's role may do something.
func (v *Viewer) IsGlobal() bool { return v != nil && v.Role == "global-admin" }

// IsHelpdesk reports whether the viewer may act on directory users.
func (v *Viewer) IsHelpdesk() bool {
	return v != nil && (v.Role == "global-admin" || v.Role == "helpdesk-admin")
}

// Page is what every admin page shares.
type Page struct {
	Title   string // browser title
	Section string // header crumb, e.g. "Password reset"
	Heading string // e.g. "On-premises integration"
	Lead    string // one sentence on what the page does
	Nav     string // key of the active navigation entry
	Viewer  *Viewer
	CSRF    string
	Flash   string   // confirmation banner
	Errors  []string // summary of problems (with FieldErrors below)
	Fields  map[string]string
}

// FieldError returns the message for a form field, if any.
func (p Page) FieldError(name string) string { return p.Fields[name] }

// ErrorLinks lists field errors in a stable order for the summary box.
func (p Page) ErrorLinks() []FieldLink {
	var out []FieldLink
	for k, v := range p.Fields {
		out = append(out, FieldLink{ID: k, Message: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// FieldLink points the error summary at a field.
type FieldLink struct{ ID, Message string }

// NavItem is one entry of the side navigation.
type NavItem struct {
	Key, Label, Href string
}

// NavGroup is a titled list of entries.
type NavGroup struct {
	Title string
	Items []NavItem
}

// NavSection is a top-level section of the side navigation.
type NavSection struct {
	Title  string
	Groups []NavGroup
}

// Navigation returns what a viewer may open. Only pages that exist appear.
func Navigation(v *Viewer) []NavSection {
	if v == nil {
		return nil
	}
	manage := []NavItem{
		{Key: "properties", Label: i18n.Key("Properties"), Href: "/admin/password-reset/properties"},
		{Key: "methods", Label: i18n.Key("Authentication methods"), Href: "/admin/password-reset/authentication-methods"},
		{Key: "registration", Label: i18n.Key("Registration"), Href: "/admin/password-reset/registration"},
		{Key: "notifications", Label: i18n.Key("Notifications"), Href: "/admin/password-reset/notifications"},
		{Key: "reminders", Label: i18n.Key("Expiry reminders"), Href: "/admin/password-reset/expiry-reminders"},
		{Key: "customization", Label: i18n.Key("Customization"), Href: "/admin/password-reset/customization"},
		{Key: "branding", Label: i18n.Key("Company branding"), Href: "/admin/password-reset/company-branding"},
		{Key: "protection", Label: i18n.Key("Password protection"), Href: "/admin/password-reset/password-protection"},
		{Key: "onprem", Label: i18n.Key("On-premises integration"), Href: "/admin/password-reset/on-premises-integration"},
		{Key: "mail", Label: i18n.Key("Mail server"), Href: "/admin/password-reset/mail-server"},
		{Key: "sms", Label: i18n.Key("Text messages"), Href: "/admin/password-reset/text-messages"},
	}
	if v.IsGlobal() {
		// It reads the whole directory and mails people: Global
		// Administrators only.
		manage = append(manage, NavItem{Key: "campaign", Label: i18n.Key("Registration campaign"), Href: "/admin/password-reset/registration-campaign"})
	}
	out := []NavSection{{Title: i18n.Key("Password reset"), Groups: []NavGroup{{Title: i18n.Key("Manage"), Items: manage},
		{Title: i18n.Key("Activity"), Items: []NavItem{{Key: "audit", Label: i18n.Key("Audit logs"), Href: "/admin/audit"},
			{Key: "reports", Label: i18n.Key("Usage & insights"), Href: "/admin/reports"}}}}}}
	hybrid := []NavItem{{Key: "directory", Label: i18n.Key("Directory connection"), Href: "/admin/directory"}}
	if v.IsGlobal() {
		hybrid = append(hybrid, NavItem{Key: "agents", Label: i18n.Key("Writeback agents"), Href: "/admin/agents"})
	}
	out = append(out, NavSection{Title: i18n.Key("Hybrid management"), Groups: []NavGroup{{Items: hybrid}}})
	if v.IsHelpdesk() {
		out = append(out, NavSection{Title: i18n.Key("Users"), Groups: []NavGroup{{Items: []NavItem{
			{Key: "users", Label: i18n.Key("Directory users"), Href: "/admin/users"},
		}}}})
	}
	if v.IsGlobal() {
		out = append(out, NavSection{Title: i18n.Key("Administration"), Groups: []NavGroup{{Items: []NavItem{
			{Key: "admins", Label: i18n.Key("Administrators"), Href: "/admin/administrators"},
			{Key: "api-tokens", Label: i18n.Key("API tokens"), Href: "/admin/api-tokens"},
		}}}})
	}
	out = append(out, NavSection{Title: i18n.Key("Your account"), Groups: []NavGroup{{Items: []NavItem{
		{Key: "security", Label: i18n.Key("Sign-in methods"), Href: "/admin/security"},
	}}}})
	return out
}

// UTC formats a time for display in UTC.
func UTC(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ISO formats a time for a <time datetime> attribute.
func ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// LoginView is the sign-in page.
type LoginView struct {
	Page
	Email string
	Next  string
}

// SetupView is the first-administrator page.
type SetupView struct {
	Page
	Token string
	Email string
	Name  string
}

// OnPremView is "Password reset | On-premises integration".
type OnPremView struct {
	Page
	Writeback bool
	Unlock    bool
	Version   int64
	UpdatedBy string
	UpdatedAt time.Time
	Status    ServiceStatus
	// Setup lists what self-service still needs, in the order an
	// administrator sets it up.
	Setup []SetupItem
	// NoDirectory is set when a switch was refused because no directory
	// connection exists: its error then links to that page.
	NoDirectory bool
	// Agents is the writeback agents' state when the directory is reached
	// through them; nil in direct mode.
	Agents *AgentsState
}

// AgentsState is the writeback agents as the writeback panel shows them.
type AgentsState struct {
	Connected int // agents connected now
	Writeback int // of those, with password writeback on
	// Unavailable says why writeback cannot run through them ("Writeback
	// unavailable: no agent connected."), empty when it can.
	Unavailable string
}

// Summary is one sentence on the agents: how many are connected and how
// many of those write passwords, in English (the API).
func (a AgentsState) Summary() string { return a.SummaryIn(context.Background()) }

// SummaryIn is Summary in the reader's language (ctx).
func (a AgentsState) SummaryIn(ctx context.Context) string {
	switch {
	case a.Connected == 0:
		return i18n.T(ctx, "No writeback agent is connected.")
	case a.Connected == 1 && a.Writeback == 1:
		return i18n.T(ctx, "1 writeback agent is connected, with password writeback on.")
	case a.Connected == 1:
		return i18n.T(ctx, "1 writeback agent is connected, with password writeback off.")
	}
	return i18n.T(ctx, "%d writeback agents are connected, %d of them with password writeback on.", a.Connected, a.Writeback)
}

// Setup item states.
const (
	SetupDone    = "done"
	SetupMissing = "missing"
	SetupFailed  = "failed"
)

// SetupItem is one line of the "before self-service works" checklist: a
// state, one sentence, and a link to the page that fixes it.
type SetupItem struct {
	Key      string // stable name for tests, e.g. "directory"
	Title    string // e.g. "Directory connection"
	State    string // SetupDone, SetupMissing or SetupFailed
	Text     string
	Href     string
	LinkText string
}

// SetupReady reports whether every setup item is done.
func (v OnPremView) SetupReady() bool {
	for _, it := range v.Setup {
		if it.State != SetupDone {
			return false
		}
	}
	return true
}

// SetupDoneCount counts the setup items that are done.
func (v OnPremView) SetupDoneCount() int {
	n := 0
	for _, it := range v.Setup {
		if it.State == SetupDone {
			n++
		}
	}
	return n
}

// ServiceStatus is the "On-premises writeback service" panel.
type ServiceStatus struct {
	State     string // not-configured, connected, error
	Message   string
	CheckedAt time.Time
	Details   []string
}

// AdminRow is one administrator in the Administrators table.
type AdminRow struct {
	ID        int64
	Name      string
	Email     string
	Role      string
	RoleLabel string
	Disabled  bool
	IsSelf    bool
	Factors   int // second factors enrolled
}

// RoleOption is a role choice.
type RoleOption struct{ Value, Label string }

// AdminsView is the Administrators page.
type AdminsView struct {
	Page
	Admins []AdminRow
	Roles  []RoleOption
	// Kept input of the add form.
	NewEmail, NewName, NewRole string
	// The second-factor policy: which roles must use one.
	PolicyGlobal, PolicyHelpdesk, PolicyReports bool
	PolicyVersion                               int64
}

// ErrorView is a 403/404/500 page.
type ErrorView struct {
	Page
	Status  int
	Message string
}

// DirectoryView is the Directory connection page.
type DirectoryView struct {
	Page
	Version int64
	// Mode is "direct" or "agents" (writeback.ModeDirect, ModeAgents).
	Mode                   string
	Type                   string
	URLs                   string // one per line
	Security               string // ldaps, starttls, none
	CAPEM                  string
	BindDN                 string
	HasPassword            bool
	BaseDNs                string // one per line
	UserFilter             string
	LoginAttributes        string // comma-separated
	RecoveryEmailAttribute string
	MobileAttribute        string // "": mobile
	ExcludedGroups         string // one per line
	PasswordWriteback      bool
	UpdatedBy              string
	UpdatedAt              time.Time
	TestLogin              string
	Checklist              *Checklist
	Detected               string
}

// Checklist is a connection test result.
type Checklist struct {
	OK    bool
	Items []CheckItem
}

// CheckItem is one line of a checklist.
type CheckItem struct {
	Name, Detail string
	OK           bool
}

// UserRow is one directory user in a list.
type UserRow struct {
	Login, DisplayName, Email, DN string
	Locked, Disabled, Expired     bool
	MustChange, Protected         bool
	ProtectedReason               string
}

// UsersView is the helpdesk user search.
type UsersView struct {
	Page
	Query    string
	Results  []UserRow
	Searched bool
	Note     string
}

// UserView is one directory user with the helpdesk actions.
type UserView struct {
	Page
	Meter       Meter // the reset form's strength meter
	User        UserRow
	ID          string
	LockedUntil time.Time
	PasswordSet time.Time
	CanAct      bool
	WhyNot      string
	CanUnlock   bool
	Policy      string
	MustChange  bool
	// Self-service: what the person registered, and their block (zero when
	// not blocked).
	Methods      []UserMethod
	BlockedUntil time.Time
}

// UserMethod is one registered method on a user's page.
type UserMethod struct {
	Method, Label, Detail string
	Registered            time.Time
}

// PolicyView is one of the self-service policy pages (Properties,
// Authentication methods, Registration, Notifications, Customization).
type PolicyView struct {
	Page
	Version             int64
	Enabled             string
	Group               string
	MethodEmail         bool
	MethodApp           bool
	MethodQuestions     bool
	MethodSMS           bool
	MethodPasskey       bool
	PasskeysAvailable   bool // the base URL has a host name: passkeys can be offered
	Required            int
	QuestionsToRegister int
	QuestionsToAnswer   int
	Questions           string // one per line
	ReconfirmDays       int
	NotifyUsers         bool
	NotifyAdmins        bool
	Helpdesk            string
	OrgName             string
	Language            string // the default language's code, "" for English
	// PublicPerMinute and SignInPerMinute are the Properties page's rate
	// limits as typed, empty for the server's default, which the Default
	// fields give; MaxPerMinute is the highest either may be.
	PublicPerMinute        string
	SignInPerMinute        string
	DefaultPublicPerMinute int
	DefaultSignInPerMinute int
	MaxPerMinute           int
	// Challenge is the proof-of-work switch; ChallengeAfter its threshold
	// as typed, empty for the default (DefaultChallengeAfter).
	Challenge             bool
	ChallengeAfter        string
	DefaultChallengeAfter int
	MaxChallengeAfter     int
	// UpdatedBy and UpdatedAt name the last change to this page's own
	// fields (the pages share one settings document).
	UpdatedBy string
	UpdatedAt time.Time
}

// ProtectionView is the Password protection page.
type ProtectionView struct {
	Page
	Version  int64
	Common   bool
	Personal bool
	Custom   string // one term per line
	// BreachedFile is the breached-password list's path; BreachedStatus
	// describes the list in use, BreachedProblem why it cannot be used.
	BreachedFile    string
	BreachedStatus  string
	BreachedProblem string
	Terms           int // terms saved
	CommonTerms     int // of the bundled list
	MaxTerms        int
	UpdatedBy       string
	UpdatedAt       time.Time
}

// BrandingView is "Password reset › Company branding".
type BrandingView struct {
	Page
	Version       int64
	Accent        string // as saved or typed; empty: Writeback's own
	HideAdminLink bool
	LogoPath      string // the saved logo's path; empty: none
	LogoType      string
	LogoBytes     int
	MaxLogoKB     int
	OrgName       string // from Customization
	UpdatedBy     string
	UpdatedAt     time.Time
}

// MailView is the mail server page.
type MailView struct {
	Page
	Version     int64
	Host        string
	Port        int
	TLS         string
	From        string
	Username    string
	HasPassword bool
	CAPEM       string
	TestTo      string
	UpdatedBy   string
	UpdatedAt   time.Time
	// The last attempt to send mail (zero At: none yet).
	LastSendOK      bool
	LastSendMessage string
	LastSendAt      time.Time
}

// SMSView is the text message gateway page.
type SMSView struct {
	Page
	Version        int64
	Preset         string
	Presets        []SMSPreset
	PresetHelp     string
	Method         string
	URL            string
	Headers        string // one "Name: value" a line
	Encoding       string
	Body           string
	From           string
	Auth           string
	Username       string
	AuthHeader     string
	HasSecret      bool
	DefaultRegion  string
	AllowedRegions string // comma-separated
	DailyCap       string // "" for the default
	DefaultCap     int
	Limits         SMSLimits
	TestTo         string
	UpdatedBy      string
	UpdatedAt      time.Time
	// The last attempt to text (zero At: none yet).
	LastSendOK      bool
	LastSendMessage string
	LastSendAt      time.Time
}

// SMSPreset is a gateway template the page offers.
type SMSPreset struct{ Key, Label string }

// SMSLimits are the fixed limits the gateway page lists.
type SMSLimits struct {
	PerAccount, PerNumber, PerNumberDay, PerClient int
	CooldownSeconds                                int
}

// navKey is what the navigation's HTML depends on: the viewer's rights and
// the current entry.
type navKey struct {
	helpdesk, global bool
	nav              string
	base             string // the path prefix (Base)
	lang             language.Tag
}

// navCache holds the navigation's HTML by navKey: the same few kilobytes on
// every admin page, built once instead of a slice of sections and some
// thirty escaped strings per request. navCacheMax bounds it (keys come from
// handlers' constants, so it never fills in practice).
var (
	navCache    sync.Map // navKey → templ.Component
	navCacheLen atomic.Int32
)

const navCacheMax = 64

// sideNav is the navigation for v with nav current, rendered once per
// navKey.
func sideNav(v *Viewer, nav string) templ.Component {
	if v == nil {
		return templ.NopComponent
	}
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		k := navKey{helpdesk: v.IsHelpdesk(), global: v.IsGlobal(), nav: nav, base: Base(ctx), lang: i18n.LangOf(ctx)}
		if c, ok := navCache.Load(k); ok {
			return c.(templ.Component).Render(ctx, w)
		}
		var b strings.Builder
		if err := navEntries(v, nav).Render(i18n.WithLang(WithBase(context.Background(), k.base), k.lang), &b); err != nil || navCacheLen.Load() >= navCacheMax {
			return navEntries(v, nav).Render(ctx, w)
		}
		c := templ.Raw(b.String())
		if _, loaded := navCache.LoadOrStore(k, c); !loaded {
			navCacheLen.Add(1)
		}
		return c.Render(ctx, w)
	})
}

// RemindersView is the Password expiry reminders page.
type RemindersView struct {
	Page
	Version    int64
	Enabled    bool
	Thresholds string // "14, 7, 1"
	UpdatedBy  string
	UpdatedAt  time.Time
	// DryRun is set once the dry run ran: who would be mailed now.
	DryRun      bool
	DryRunError string // why it could not run, safe to show
	Due         []ReminderRow
}

// ReminderRow is one line of the dry run.
type ReminderRow struct {
	Login, Name string
	To          string // masked address, or why none is mailed
	Mailed      bool
	Expires     time.Time
	Left        string
	Threshold   int
}
