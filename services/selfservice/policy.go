// Package selfservice is what employees do without the helpdesk: reset a
// forgotten password, unlock their account, change their password, and
// register the methods that prove who they are. Every step's state lives on
// the server, bound to the person's directory ID and the browser session.
package selfservice

import (
	"context"
	"github.com/writeback/writeback/services/i18n"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
)

// Who self-service is enabled for.
const (
	EnabledNone  = "none"
	EnabledAll   = "all"
	EnabledGroup = "group"
)

// Methods people may use to prove who they are.
const (
	MethodEmail     = "email"
	MethodApp       = "app"
	MethodQuestions = "questions"
	MethodSMS       = "sms"
	MethodPasskey   = "passkey"
)

// Methods lists which methods are allowed.
type Methods struct {
	Email     bool `json:"email"`
	App       bool `json:"app"`
	Questions bool `json:"questions"`
	SMS       bool `json:"sms,omitempty"`
	Passkey   bool `json:"passkey,omitempty"`
}

// List returns the allowed methods in display order.
func (m Methods) List() []string {
	var out []string
	if m.Email {
		out = append(out, MethodEmail)
	}
	if m.App {
		out = append(out, MethodApp)
	}
	if m.Questions {
		out = append(out, MethodQuestions)
	}
	if m.SMS {
		out = append(out, MethodSMS)
	}
	if m.Passkey {
		out = append(out, MethodPasskey)
	}
	return out
}

// MethodLabel names a method for people.
func MethodLabel(m string) string {
	switch m {
	case MethodEmail:
		return i18n.Key("E-mail code")
	case MethodApp:
		return i18n.Key("Authenticator app code")
	case MethodQuestions:
		return i18n.Key("Security questions")
	case MethodSMS:
		return i18n.Key("Text message code")
	case MethodPasskey:
		return i18n.Key("Passkey")
	}
	return m
}

// Policy is the self-service password reset policy (the Password reset
// pages Properties, Authentication methods, Registration, Notifications and
// Customization).
type Policy struct {
	Enabled             string   `json:"enabled"`
	Group               string   `json:"group"`
	Methods             Methods  `json:"methods"`
	Required            int      `json:"required"`
	QuestionsToRegister int      `json:"questions_to_register"`
	QuestionsToAnswer   int      `json:"questions_to_answer"`
	Questions           []string `json:"questions"`
	ReconfirmDays       int      `json:"reconfirm_days"`
	NotifyUsers         bool     `json:"notify_users"`
	NotifyAdmins        bool     `json:"notify_admins"`
	Helpdesk            string   `json:"helpdesk"`
	OrgName             string   `json:"org_name"`
	// Language is the organisation's default language (i18n's code, "de"),
	// for readers whose browser asks for none the portal speaks and for
	// mails sent in the background; empty: English.
	Language string `json:"language,omitempty"`
	// PublicPerMinute and SignInPerMinute cap the requests one client
	// address may send in a minute to the employee pages' forms and to the
	// administrator sign-in; 0 (never saved, or cleared) leaves it to the
	// server's default (writeback serve --rate-limit-public and
	// --rate-limit-signin). They live here, not in a file or a flag alone,
	// so that an administrator can raise them on the day a large NAT hits
	// them, without a restart, and every replica reads the same value.
	PublicPerMinute int `json:"public_per_minute,omitempty"`
	SignInPerMinute int `json:"signin_per_minute,omitempty"`
	// ChallengeOff turns the proof-of-work challenge off (its zero value,
	// on, is the default for portals that never saved it); ChallengeAfter
	// is how many protected steps (codes sent, answers checked) an account
	// or a client address may take in an hour before each further one needs
	// a solved challenge, 0 for DefaultChallengeAfter.
	ChallengeOff   bool `json:"challenge_off,omitempty"`
	ChallengeAfter int  `json:"challenge_after,omitempty"`
}

// The challenge threshold's default and bounds.
const (
	DefaultChallengeAfter = 3
	MaxChallengeAfter     = 100
)

// ChallengeThreshold is ChallengeAfter with its default filled in.
func (p Policy) ChallengeThreshold() int {
	if p.ChallengeAfter == 0 {
		return DefaultChallengeAfter
	}
	return p.ChallengeAfter
}

// Rate limits per client address and minute.
const (
	// DefaultPerMinute is the server's default for both limits when no
	// flag sets another: what the portal always allowed.
	DefaultPerMinute = 30
	// MaxPerMinute is the highest limit the page or a flag accepts: above
	// it a limit no longer protects anything.
	MaxPerMinute = 10000
)

// RateLimits are the per-address limits the Properties page sets; 0 is
// "the server's default".
type RateLimits struct {
	PublicPerMinute int
	SignInPerMinute int
}

// Clone copies the policy without sharing its questions.
func (p Policy) Clone() Policy {
	p.Questions = slices.Clone(p.Questions)
	return p
}

// DefaultPolicy is what a new portal starts with: self-service off until a
// Global Administrator turns it on.
func DefaultPolicy() Policy {
	return Policy{
		Enabled: EnabledNone, Methods: Methods{Email: true, App: true}, Required: 1,
		QuestionsToRegister: 3, QuestionsToAnswer: 3,
		Questions: []string{
			i18n.Key("In what city were you born?"),
			i18n.Key("What was the name of your first pet?"),
			i18n.Key("What was the make of your first car?"),
			i18n.Key("What was the name of your primary school?"),
			i18n.Key("What is your oldest cousin's first name?"),
			i18n.Key("In what city did your parents meet?"),
		},
		ReconfirmDays: 180, NotifyUsers: true,
	}
}

const policyName = "sspr"

// Validate checks a policy; field names match the policy pages' inputs.
func (p Policy) Validate() error {
	f := map[string]errs.Text{}
	switch p.Enabled {
	case EnabledNone, EnabledAll:
	case EnabledGroup:
		if _, err := ldap.ParseDN(p.Group); err != nil || strings.TrimSpace(p.Group) == "" {
			f["group"] = errs.Textf("Enter the DN of the directory group, e.g. CN=SSPR Users,OU=Groups,DC=example,DC=com.")
		}
	default:
		f["enabled"] = errs.Textf("Choose None, Selected or All.")
	}
	n := len(p.Methods.List())
	if n == 0 {
		f["methods"] = errs.Textf("Allow at least one method.")
	}
	if p.Required != 1 && p.Required != 2 {
		f["required"] = errs.Textf("Choose 1 or 2.")
	} else if n > 0 && p.Required > n {
		f["required"] = errs.Textf("%d methods are required but only %d allowed: allow more methods or require fewer.", p.Required, n)
	}
	if p.QuestionsToRegister < 1 || p.QuestionsToRegister > 5 {
		f["questions_to_register"] = errs.Textf("Choose 1 to 5.")
	}
	if p.QuestionsToAnswer < 1 || p.QuestionsToAnswer > p.QuestionsToRegister {
		f["questions_to_answer"] = errs.Textf("Choose 1 up to the number to register.")
	}
	seen := map[string]bool{}
	for _, q := range p.Questions {
		if l := utf8.RuneCountInString(q); l < 5 || l > 200 {
			f["questions"] = errs.Textf("Each question needs 5 to 200 characters.")
		}
		if seen[strings.ToLower(q)] {
			f["questions"] = errs.Textf("A question is listed twice.")
		}
		seen[strings.ToLower(q)] = true
	}
	if p.Methods.Questions && len(p.Questions) < p.QuestionsToRegister {
		f["questions"] = errs.Textf("List at least %d questions to choose from.", p.QuestionsToRegister)
	}
	if p.ReconfirmDays < 0 || p.ReconfirmDays > 730 {
		f["reconfirm_days"] = errs.Textf("Enter 0 (never) to 730 days.")
	}
	if p.Helpdesk != "" && !validHelpdesk(p.Helpdesk) {
		f["helpdesk"] = errs.Textf("Enter an e-mail address, a web address starting with https://, or a phone number such as +44 20 7946 0000.")
	}
	if utf8.RuneCountInString(p.OrgName) > 100 {
		f["org_name"] = errs.Textf("Use at most 100 characters.")
	}
	if _, ok := i18n.Parse(p.Language); p.Language != "" && !ok {
		f["language"] = errs.Textf("Choose one of the languages offered.")
	}
	for name, n := range map[string]int{"public_per_minute": p.PublicPerMinute, "signin_per_minute": p.SignInPerMinute} {
		if n < 0 || n > MaxPerMinute {
			f[name] = rateLimitText
		}
	}
	if p.ChallengeAfter < 0 || p.ChallengeAfter > MaxChallengeAfter {
		f["challenge_after"] = challengeAfterText
	}
	if len(f) > 0 {
		return errs.FieldTexts(f)
	}
	return nil
}

// ChallengeAfterMessage is what the Properties page says next to a
// threshold it cannot take.
var ChallengeAfterMessage = challengeAfterText.String()

var challengeAfterText = errs.Textf("Enter a whole number from 1 to %d, or leave it empty for the default, %d.", MaxChallengeAfter, DefaultChallengeAfter)

func validHelpdesk(s string) bool {
	if len(s) > 300 {
		return false
	}
	if a, err := mail.ParseAddress(s); err == nil && a.Address == s {
		return true
	}
	if _, ok := helpdeskPhone(s); ok {
		return true
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// helpdeskPhone is s as a tel: number ("+442079460000") when s is a phone
// number as people write one: digits with spaces, dashes, dots or
// parentheses, an optional leading +, 5 to 15 digits.
func helpdeskPhone(s string) (string, bool) {
	var b strings.Builder
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
			digits++
		case r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", false
		}
	}
	return b.String(), digits >= 5 && digits <= 15
}

// HelpdeskHref returns a link for the helpdesk contact.
func (p Policy) HelpdeskHref() string {
	if p.Helpdesk == "" {
		return ""
	}
	if strings.Contains(p.Helpdesk, "://") {
		return p.Helpdesk
	}
	if tel, ok := helpdeskPhone(p.Helpdesk); ok {
		return "tel:" + tel
	}
	return "mailto:" + p.Helpdesk
}

// normalize tidies a policy before it is validated and saved.
func (p Policy) normalize() Policy {
	p.Group = strings.TrimSpace(p.Group)
	p.Helpdesk = strings.TrimSpace(p.Helpdesk)
	p.OrgName = strings.TrimSpace(p.OrgName)
	p.Language = strings.ToLower(strings.TrimSpace(p.Language))
	if p.Language == "en" {
		p.Language = ""
	}
	var qs []string
	for _, q := range p.Questions {
		if q = strings.TrimSpace(q); q != "" {
			qs = append(qs, q)
		}
	}
	p.Questions = qs
	if p.Enabled != EnabledGroup {
		p.Group = ""
	}
	return p
}

// RateLimitMessage is what the Properties page says next to a limit it
// cannot take.
var RateLimitMessage = rateLimitText.String()

var rateLimitText = errs.Textf("Enter a whole number from 1 to %d, or leave it empty for the server's default.", MaxPerMinute)

// RateLimits reads the limits per client address that the policy sets,
// from memory without copying the policy: every limited request asks.
func (s *Service) RateLimits(ctx context.Context) (RateLimits, error) {
	var l RateLimits
	_, err := settings.Peek(ctx, s.db, policyName, defaultPolicy, func(p *Policy) {
		l = RateLimits{PublicPerMinute: p.PublicPerMinute, SignInPerMinute: p.SignInPerMinute}
	})
	return l, err
}

// defaultPolicy is DefaultPolicy for RateLimits, which must not build one
// per request (the cache decodes from it only on a miss, and copies it).
var defaultPolicy = DefaultPolicy()

// Policy reads the policy (the defaults when never saved), from memory.
func (s *Service) Policy(ctx context.Context) (Policy, settings.Meta, error) {
	return settings.Get(ctx, s.db, policyName, DefaultPolicy())
}

// PolicyTargetID is the audit target of every policy save, whichever page
// or command made it: the policy pages find their own last change by it.
const PolicyTargetID = "self-service-password-reset"

// SavePolicy applies change to the stored policy if it is still at
// expectVersion, validates the result and records "Update self-service
// password reset policy" with each changed value.
func (s *Service) SavePolicy(ctx context.Context, actor audit.Actor, expectVersion int64, page string, change func(*Policy)) (bool, error) {
	changed, _, err := settings.Update(ctx, s.db, policyName, expectVersion, actor, DefaultPolicy(), func(old Policy) (Policy, []audit.Entry, error) {
		next := old
		next.Questions = slices.Clone(old.Questions)
		change(&next)
		next = next.normalize()
		if err := next.Validate(); err != nil {
			return next, nil, err
		}
		d := policyDiff(old, next)
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdateSSPRPolicy,
			Target: audit.Target{Type: "Policy", ID: PolicyTargetID, Name: page}, Details: d}}, nil
	})
	return changed, err
}

func policyDiff(old, next Policy) audit.Changes {
	d := audit.Changes{}
	d.Add("enabled", old.Enabled, next.Enabled)
	d.Add("group", old.Group, next.Group)
	d.Add("methods", strings.Join(old.Methods.List(), ","), strings.Join(next.Methods.List(), ","))
	d.Add("required", old.Required, next.Required)
	d.Add("questions_to_register", old.QuestionsToRegister, next.QuestionsToRegister)
	d.Add("questions_to_answer", old.QuestionsToAnswer, next.QuestionsToAnswer)
	d.Add("questions", old.Questions, next.Questions)
	d.Add("reconfirm_days", old.ReconfirmDays, next.ReconfirmDays)
	d.Add("notify_users", old.NotifyUsers, next.NotifyUsers)
	d.Add("notify_admins", old.NotifyAdmins, next.NotifyAdmins)
	d.Add("helpdesk", old.Helpdesk, next.Helpdesk)
	d.Add("org_name", old.OrgName, next.OrgName)
	d.Add("language", languageText(old.Language), languageText(next.Language))
	d.Add("public_per_minute", rateText(old.PublicPerMinute), rateText(next.PublicPerMinute))
	d.Add("signin_per_minute", rateText(old.SignInPerMinute), rateText(next.SignInPerMinute))
	d.Add("challenge", !old.ChallengeOff, !next.ChallengeOff)
	d.Add("challenge_after", old.ChallengeThreshold(), next.ChallengeThreshold())
	return d
}

// rateText is a rate limit as the audit log shows it.
func rateText(n int) any {
	if n == 0 {
		return "server default"
	}
	return n
}

// languageText is a default language as the audit log shows it: its code,
// "en" for none.
func languageText(code string) string {
	if code == "" {
		return "en"
	}
	return code
}
