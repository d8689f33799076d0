package web

import "time"

// FactorRow is one of an administrator's second factors.
type FactorRow struct {
	ID        int64
	KindLabel string
	Name      string
	Created   time.Time
	LastUsed  time.Time // zero when never used
}

// SecondStepView is the sign-in's second step: the factor.
type SecondStepView struct {
	Page
	Next           string
	HasApp         bool
	HasPasskey     bool
	PasskeyOptions string // JSON for navigator.credentials.get
	RecoveryLeft   int
	// Open is the way shown open: "app", "recovery" or "passkey".
	Open string
}

// EnrolView enrols a second factor: at sign-in (Action "/login/enrol") or
// from the administrator's own page (Action "/admin/security").
type EnrolView struct {
	Page
	Action         string
	Next           string
	AtSignIn       bool
	Required       bool
	TOTPSecret     string
	TOTPURL        string
	TOTPQR         string
	PasskeyOptions string // JSON for navigator.credentials.create; "" when passkeys are off
	AppName        string
	PasskeyName    string
}

// RecoveryCodesView shows new recovery codes, once.
type RecoveryCodesView struct {
	Page
	Codes    []string
	Continue string
}

// SecurityView is an administrator's own sign-in methods page.
type SecurityView struct {
	Page
	Factors      []FactorRow
	RecoveryLeft int
	Required     bool
}

// ResetLinkView shows the one-time link made by resetting an
// administrator's sign-in.
type ResetLinkView struct {
	Page
	Link  string
	Name  string
	Email string
}

// ResetPasswordView lets an administrator whose sign-in was reset choose a
// new password.
type ResetPasswordView struct {
	Page
	Token string
	Email string
}
