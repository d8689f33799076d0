package web

import "time"

// Public is what every employee page shares: the organisation's name and
// helpdesk contact from Customization.
type Public struct {
	Page
	OrgName  string
	Helpdesk string
	HelpHref string
}

// StartView is the public start page.
type StartView struct {
	Public
	Available   bool
	Reason      string
	UnlockOffer bool
}

// WhoView is "Who are you?", the first step of reset and unlock.
type WhoView struct {
	Public
	Kind        string // reset or unlock
	Login       string
	Unavailable string
}

// MethodOption is a verification method a person may choose.
type MethodOption struct{ Key, Label string }

// Rules is the password policy shown beside a new-password field.
type Rules struct {
	Has            bool
	MinLength      int
	Complexity     bool
	History        int
	HistoryOnReset bool
}

// StepView is one step of a reset or unlock.
type StepView struct {
	Public
	Kind      string
	ID        string
	Step      string
	Methods   []MethodOption
	Verified  int
	Required  int
	Questions []string
	Masked    []string
	// MaskedPhone is where text message codes go (after a first
	// verification); SMSTrouble says the portal's texts may not be arriving.
	MaskedPhone string
	SMSTrouble  bool
	NotLocked   bool // an unlock found the account was not locked
	Rules       Rules
	// Challenge is the proof-of-work challenge (JSON) the step's forms
	// need solved, "" when none is needed.
	Challenge string
	Meter     Meter // the password step's strength meter
	// PasskeyOptions is the request of the passkey step (JSON).
	PasskeyOptions string
}

// ChangeView is the change-password page.
type ChangeView struct {
	Public
	Login string
	Done  bool
	// Reconfirm: after the change, the person's registered methods are due
	// for re-confirmation.
	Reconfirm bool
	Rules     Rules
	Meter     Meter
}

// RegisterSignInView signs a person in to register methods.
type RegisterSignInView struct {
	Public
	Login string
}

// RegisterView lists and adds a person's verification methods.
type RegisterView struct {
	Public
	ID             string
	Login          string
	AllowEmail     bool
	AllowApp       bool
	AllowQuestions bool
	AllowSMS       bool
	Phone          string // masked registered number
	DirectoryPhone string // masked number from the directory
	PendingPhone   string // masked number a code was texted to
	PhoneInput     string
	DirectoryEmail string
	AltEmail       string
	App            bool
	Questions      bool
	PendingEmail   string
	AppSecret      string
	AppQR          string
	AppURL         string // otpauth:// link, for an app on the same phone
	AllowPasskey   bool
	Passkeys       []Passkey
	PasskeyOptions string // request to register one more (JSON); "" when unavailable
	Choices        []string
	ToRegister     int
	Stale          bool
	EmailInput     string
}

// Passkey is a registered passkey as the register page lists it.
type Passkey struct {
	ID       string
	Name     string
	Created  time.Time
	LastUsed time.Time
}

// Slots returns 0..n-1 for ranging over question slots.
func Slots(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
