package selfservice

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/writeback/writeback/services/admins"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/keyring"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/store"
)

// Limits of the self-service flows.
const (
	FlowTTL         = 15 * time.Minute
	CodeTTL         = 10 * time.Minute
	CodeTries       = 5
	FailureWindow   = time.Hour
	FailuresToBlock = 5
	BlockFor        = 24 * time.Hour
	CodesPerUser    = 5 // e-mails with codes per account per hour
	CodesPerAddress = 5 // per destination address per hour
)

// Service runs self-service.
type Service struct {
	db      *store.DB
	wb      *writeback.Service // its directory for sign-ins with a directory password (beginSignIn); its status panel
	dir     Directory          // everything else of the directory: switches, lookups, reads, resets, unlocks
	keys    *keyring.Keyring
	log     *slog.Logger
	baseURL string
	now     func() time.Time

	// Pacer makes the steps that could tell whether an account exists take
	// indistinguishable time (see timing.go). Tests may replace it before
	// the service is used (NewPacer(0): no wait in a fresh process).
	Pacer *Pacer
	// AnswerParams is the argon2id cost of security-question answers.
	AnswerParams admins.HashParams

	// evaluating, when set (tests), is called each time a guess is about to
	// be checked against what is stored, after its failure is reserved.
	evaluating func(method string)
	// verifyHash checks an answer against its argon2id hash
	// (admins.VerifyPassword; replaced in tests).
	verifyHash func(encoded, answer string) (bool, error)

	codeKey []byte
	// banned refuses weak new passwords before anything is written
	// (UseBanned); nil: none is refused here.
	banned *banned.Service
	rec    Recorder // metrics (observe.go)
	// smsClient sends to the text message gateway; nil: sms.NewSender's.
	smsClient sms.Client

	dummyOnce sync.Once
	dummyHash string
	sends     sync.WaitGroup
	bg        context.Context
}

// New builds the service. baseURL is the only source of links in e-mails.
func New(db *store.DB, wb *writeback.Service, keys *keyring.Keyring, log *slog.Logger, baseURL string) *Service {
	return &Service{db: db, wb: wb, dir: writebackDirectory{wb}, keys: keys, log: log, baseURL: strings.TrimSuffix(baseURL, "/"), now: time.Now,
		Pacer: NewPacer(DefaultPadStart), AnswerParams: admins.DefaultHashParams, codeKey: keys.Derive("sspr-codes"),
		verifyHash: admins.VerifyPassword, rec: noRecorder{}, bg: context.WithoutCancel(context.Background())}
}

// UseBanned makes resets and changes refuse the passwords the banned
// rules refuse (services/banned), before anything is written.
func (s *Service) UseBanned(b *banned.Service) { s.banned = b }

// OrgName is the organisation's name of the policy, for the banned rules
// (banned.Service.SetOrgName) and every page's header: read from memory
// without copying the policy.
func (s *Service) OrgName(ctx context.Context) (string, error) {
	var name string
	_, err := settings.Peek(ctx, s.db, policyName, DefaultPolicy(), func(p *Policy) { name = p.OrgName })
	return name, err
}

// refuseBanned checks a new password against the banned rules; personal
// is what of the account they use (banned.Personal). A refusal is the
// field error the person sees.
func (s *Service) refuseBanned(ctx context.Context, password string, personal []string) error {
	if s.banned == nil {
		return nil
	}
	r, ok, err := s.banned.Check(ctx, password, personal)
	if err != nil || ok {
		return err
	}
	return errs.FieldErrors(map[string]string{"password": banned.EmployeeMessage(r.Rule)})
}

// Wait waits for e-mails being sent in the background (shutdown, tests).
func (s *Service) Wait() { s.sends.Wait() }

// paced ends a step begun with s.Pacer.begin with the outcome *o (see
// endPace); deferred, for steps paced as a whole.
func (s *Service) paced(ctx context.Context, pc pace, o *outcome) { s.endPace(ctx, pc, *o) }

// endPace ends a paced step (or the part of one where accounts differ)
// against the directory the portal uses now, with the outcome o.
func (s *Service) endPace(ctx context.Context, pc pace, o outcome) {
	dir := ""
	if o != outShown {
		dir = s.directoryKey(ctx)
	}
	pc.end(ctx, dir, o)
}

// directoryKey names the directory the steps run against: its type and
// servers ("" when unknown, as with a fake in tests).
func (s *Service) directoryKey(ctx context.Context) string {
	if k, ok := s.dir.(interface{ key(context.Context) string }); ok {
		return k.key(ctx)
	}
	return ""
}

func randomID() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// newCode returns an 8-digit code.
func newCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(100_000_000))
	if err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return fmt.Sprintf("%08d", n.Int64())
}

// mac is a keyed hash: codes and addresses are stored only as this.
func (s *Service) mac(parts ...string) string {
	h := hmac.New(sha256.New, s.codeKey)
	h.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h.Sum(nil))
}

// BrowserHash binds flows to a browser session secret without storing it.
func BrowserHash(secret string) string {
	h := sha256.Sum256([]byte("writeback-browser:" + secret))
	return hex.EncodeToString(h[:])
}

// Mask shows an address as a•••@e•••.com: first letter and the top-level domain.
func Mask(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return "•••"
	}
	first := func(s string) string {
		for _, r := range s {
			return string(r)
		}
		return ""
	}
	tld := ""
	if i := strings.LastIndex(domain, "."); i >= 0 {
		tld = domain[i:]
	}
	return first(local) + "•••@" + first(domain) + "•••" + tld
}

// normalizeAnswer makes answers to security questions compare loosely:
// case, spacing and punctuation do not matter.
func normalizeAnswer(a string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(a) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// record appends an audit event in its own transaction; a failure to record
// is logged (the action it describes already happened).
func (s *Service) record(ctx context.Context, e audit.Entry) {
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { _, err := audit.Record(ctx, tx, e); return err }); err != nil {
		s.log.Error("record audit event", "activity", e.Activity, "err", err)
	}
}

// SetDirectory replaces the directory of every step but the sign-in with a
// directory password on /change and /register, which keeps using the
// writeback service's directory (tests).
func (s *Service) SetDirectory(d Directory) { s.dir = d }

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }
