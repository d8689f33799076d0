// Package challenge asks a browser for a little proof of work before a
// self-service step that sends a code or checks an answer, once an account
// or a client address has made many attempts: a script that knows a name
// then pays CPU time for every try, while a person's browser solves the
// challenge by itself in a second or two. Nothing leaves the portal: no
// third-party CAPTCHA service is asked.
//
// The challenge is ALTCHA's first format: the browser looks for the number
// n ≤ MaxNumber with SHA-256(salt + n) = challenge. The salt carries its
// expiry; the challenge is HMAC-signed with a key derived from the keyring,
// for one scope (a self-service flow), so it is checked without server
// state. A solution is spent in the database when it is accepted, so it is
// accepted once across every replica.
package challenge

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/writeback/writeback/services/errs"
)

// Algorithm is the only hash the challenges use.
const Algorithm = "SHA-256"

// Bounds of the work asked. A browser hashes about 20,000 times a second
// through WebCrypto (static/app.js), so the first challenge takes it about
// a second on average (half of DefaultMaxNumber); each level doubles that,
// up to MaxMaxNumber.
const (
	DefaultMaxNumber = 50_000
	MinMaxNumber     = 1_000
	MaxMaxNumber     = 1_000_000
	// TTL is how long a challenge may be solved and sent.
	TTL = 10 * time.Minute
	// maxPayload bounds what is decoded: a solution is about 400 bytes.
	maxPayload = 2048
)

// Refusals. They read the same to the person whatever was wrong (forged,
// replayed, missing), except for the expired one, which says what happened.
var (
	ErrMissing = errs.E(errs.Invalid, "Your browser has not finished its automatic check yet. Wait until it says it is done, then try again. It needs JavaScript turned on.", nil)
	ErrInvalid = errs.E(errs.Invalid, "The automatic check of your browser did not pass. It has started again: wait until it says it is done, then try again.", nil)
	ErrExpired = errs.E(errs.Invalid, "The automatic check of your browser expired. It has started again: wait until it says it is done, then try again.", nil)
)

// Refused tells whether err is one of the refusals of Check.
func Refused(err error) bool {
	return errors.Is(err, ErrMissing) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrExpired)
}

// Challenge is what the page gives the browser, as ALTCHA's widget reads it.
type Challenge struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int    `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// solution is what the browser sends back, base64 of its JSON.
type solution struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	Number    int    `json:"number"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
}

// Store spends solutions (store.DB).
type Store interface {
	SpendChallenge(ctx context.Context, id string, expiresMS int64) (bool, error)
}

// Service issues and checks challenges.
type Service struct {
	key []byte
	db  Store
	now func() time.Time
	// MaxNumber bounds the number searched for at level 0 (MinMaxNumber
	// to MaxMaxNumber); tests may lower it before the service is used.
	MaxNumber int
}

// New builds the service; key is derived from the keyring for this alone.
func New(key []byte, db Store) *Service {
	return &Service{key: key, db: db, now: time.Now, MaxNumber: DefaultMaxNumber}
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

// maxNumber is the bound at a level: MaxNumber doubled level times, within
// MinMaxNumber and MaxMaxNumber.
func (s *Service) maxNumber(level int) int {
	n := min(max(s.MaxNumber, MinMaxNumber), MaxMaxNumber)
	for ; level > 0 && n < MaxMaxNumber; level-- {
		n *= 2
	}
	return min(n, MaxMaxNumber)
}

// sign is the challenge's signature for a scope.
func (s *Service) sign(scope, challenge string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("sign\x00" + scope + "\x00" + challenge))
	return hex.EncodeToString(m.Sum(nil))
}

// spentID names a solved challenge in the database: a keyed hash of its
// salt (which is random), not the salt itself.
func (s *Service) spentID(salt string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("spent\x00" + salt))
	return hex.EncodeToString(m.Sum(nil))
}

func hashHex(salt string, n int) string {
	sum := sha256.Sum256([]byte(salt + strconv.Itoa(n)))
	return hex.EncodeToString(sum[:])
}

// Issue makes a challenge for scope (a flow's ID: a solution made for one
// flow is refused on another). level (0 and up) doubles the work per step,
// so that the attempts past a threshold cost more and more, within the bound.
func (s *Service) Issue(scope string, level int) (Challenge, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Challenge{}, fmt.Errorf("challenge: random salt: %w", err)
	}
	maxN := s.maxNumber(level)
	var nb [8]byte
	if _, err := rand.Read(nb[:]); err != nil {
		return Challenge{}, fmt.Errorf("challenge: random number: %w", err)
	}
	var n uint64
	for _, x := range nb {
		n = n<<8 | uint64(x)
	}
	salt := hex.EncodeToString(b[:]) + "?expires=" + strconv.FormatInt(s.now().Add(TTL).Unix(), 10)
	ch := hashHex(salt, int(n%uint64(maxN+1)))
	return Challenge{Algorithm: Algorithm, Challenge: ch, MaxNumber: maxN, Salt: salt, Signature: s.sign(scope, ch)}, nil
}

// JSON is the challenge as the page's data attribute carries it.
func (c Challenge) JSON() string {
	b, _ := json.Marshal(c)
	return string(b)
}

// Check accepts payload (base64 of the solution's JSON) once: it must be a
// challenge this portal issued for scope, unexpired, solved, and not spent
// before. Only an accepted solution is spent.
func (s *Service) Check(ctx context.Context, scope, payload string) error {
	payload = strings.TrimSpace(payload)
	if payload == "" {
		return ErrMissing
	}
	if len(payload) > maxPayload {
		return ErrInvalid
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return ErrInvalid
	}
	var sol solution
	if err := json.Unmarshal(raw, &sol); err != nil {
		return ErrInvalid
	}
	if sol.Algorithm != Algorithm || sol.Number < 0 || sol.Number > MaxMaxNumber ||
		!hmac.Equal([]byte(sol.Signature), []byte(s.sign(scope, sol.Challenge))) {
		return ErrInvalid
	}
	exp, ok := expires(sol.Salt)
	if !ok {
		return ErrInvalid
	}
	if !hmac.Equal([]byte(hashHex(sol.Salt, sol.Number)), []byte(sol.Challenge)) {
		return ErrInvalid
	}
	if s.now().After(exp) {
		return ErrExpired
	}
	fresh, err := s.db.SpendChallenge(ctx, s.spentID(sol.Salt), exp.UnixMilli())
	if err != nil {
		return fmt.Errorf("challenge: spend: %w", err)
	}
	if !fresh {
		return ErrInvalid
	}
	return nil
}

// expires reads the expiry the salt carries ("…?expires=UNIX").
func expires(salt string) (time.Time, bool) {
	_, q, ok := strings.Cut(salt, "?expires=")
	if !ok {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

// Solve finds the solution of c the way a browser does and returns the
// payload to send: for tests and for tools that drive the pages. It fails
// when no number up to c.MaxNumber fits.
func Solve(c Challenge) (string, error) {
	for n := 0; n <= c.MaxNumber; n++ {
		if hashHex(c.Salt, n) == c.Challenge {
			b, _ := json.Marshal(solution{Algorithm: c.Algorithm, Challenge: c.Challenge, Number: n, Salt: c.Salt, Signature: c.Signature})
			return base64.StdEncoding.EncodeToString(b), nil
		}
	}
	return "", errors.New("challenge: no solution")
}
