package banned

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// Limits of the organisation's list.
const (
	MaxTerms   = 1000
	MaxTermLen = 64
)

const docName = "password_protection"

// TargetID names the settings in audit rows.
const TargetID = "password-protection"

// Settings are the "Password reset › Password protection" page.
type Settings struct {
	Common   bool     `json:"common"`   // refuse the bundled list's common passwords
	Personal bool     `json:"personal"` // refuse the person's names and login, and the organisation's name
	Custom   []string `json:"custom"`   // the organisation's own banned terms, as typed
	// BreachedFile is the path, on the portal's server, of an offline list
	// of breached passwords' SHA-1 hashes (OpenBreached); empty: none.
	BreachedFile string `json:"breached_file,omitempty"`
}

// Default has both built-in rules on and no terms of the organisation's.
func Default() Settings { return Settings{Common: true, Personal: true} }

// Service keeps the settings and checks new passwords with them.
type Service struct {
	db *store.DB

	// orgName gives the organisation's name for the personal rule (the
	// self-service policy's; SetOrgName).
	orgName func(context.Context) (string, error)

	mu      sync.Mutex
	version int64 // of the settings custom was made from
	custom  *List

	breached breachedCache
}

// SetOrgName names where the organisation's name comes from (the
// self-service policy's "organisation name"), before the service is used.
func (s *Service) SetOrgName(f func(context.Context) (string, error)) { s.orgName = f }

// New builds the service.
func New(db *store.DB) *Service { return &Service{db: db, version: -1} }

// Settings reads the settings.
func (s *Service) Settings(ctx context.Context) (Settings, settings.Meta, error) {
	return settings.Get(ctx, s.db, docName, Default())
}

// CleanTerms trims, drops empty lines and duplicates (whatever the case),
// and checks the limits; the field error is for the "custom" field.
func CleanTerms(terms []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, t := range terms {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		switch n := utf8.RuneCountInString(t); {
		case n < minTermLen:
			return nil, errs.FieldTexts(map[string]errs.Text{"custom": errs.Textf("%q is too short: a banned term has 3 characters or more.", t)})
		case n > MaxTermLen:
			return nil, errs.FieldTexts(map[string]errs.Text{"custom": errs.Textf("A banned term has at most %d characters; %.20q… has %d.", MaxTermLen, t, n)})
		case strings.ContainsFunc(t, func(r rune) bool { return r < ' ' || r == 0x7f }):
			return nil, errs.FieldErrors(map[string]string{"custom": "A banned term cannot hold control characters."})
		}
		k := Normalize(t)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, t)
	}
	if len(out) > MaxTerms {
		return nil, errs.FieldTexts(map[string]errs.Text{"custom": errs.Textf("The list holds at most %d terms; this one has %d.", MaxTerms, len(out))})
	}
	return out, nil
}

// Save stores next if the settings are still at expectVersion, audited as
// "Update password protection" with what changed (terms added and
// removed, never the whole list again).
func (s *Service) Save(ctx context.Context, actor audit.Actor, expectVersion int64, next Settings) (bool, error) {
	custom, err := CleanTerms(next.Custom)
	if err != nil {
		return false, err
	}
	next.Custom = custom
	if next.BreachedFile = strings.TrimSpace(next.BreachedFile); next.BreachedFile != "" {
		if _, err := OpenBreached(next.BreachedFile); err != nil {
			return false, errs.FieldTexts(map[string]errs.Text{"breached_file": errs.Textf("This breached-password list cannot be used: %s.", err.Error())})
		}
	}
	changed, _, err := settings.Update(ctx, s.db, docName, expectVersion, actor, Default(), func(old Settings) (Settings, []audit.Entry, error) {
		d := audit.Changes{}
		d.Add("common", old.Common, next.Common)
		d.Add("personal", old.Personal, next.Personal)
		d.Add("breached_file", old.BreachedFile, next.BreachedFile)
		var added, removed []string
		for _, t := range next.Custom {
			if !containsTerm(old.Custom, t) {
				added = append(added, t)
			}
		}
		for _, t := range old.Custom {
			if !containsTerm(next.Custom, t) {
				removed = append(removed, t)
			}
		}
		if len(added) > 0 {
			d["terms_added"] = added
		}
		if len(removed) > 0 {
			d["terms_removed"] = removed
		}
		if len(d) == 0 {
			return old, nil, nil
		}
		d["terms"] = len(next.Custom)
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: audit.ActivityUpdatePasswordProtection,
			Target: audit.Target{Type: "Policy", ID: TargetID, Name: "Password protection"}, Details: d}}, nil
	})
	return changed, err
}

func containsTerm(list []string, t string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return Normalize(x) == Normalize(t) })
}

// Edit adds and removes terms of the organisation's list on its current
// version (the command line's `sspr banned add|remove`). A term to remove
// that is not on the list is an error naming it.
func (s *Service) Edit(ctx context.Context, actor audit.Actor, add, remove []string) (bool, error) {
	cur, meta, err := s.Settings(ctx)
	if err != nil {
		return false, err
	}
	next := cur
	next.Custom = slices.Clone(cur.Custom)
	for _, t := range remove {
		t = strings.TrimSpace(t)
		if !containsTerm(next.Custom, t) {
			return false, errs.Ef(errs.NotFound, nil, "%q is not on the banned list.", t)
		}
		next.Custom = slices.DeleteFunc(next.Custom, func(x string) bool { return Normalize(x) == Normalize(t) })
	}
	next.Custom = append(next.Custom, add...)
	return s.Save(ctx, actor, meta.Version, next)
}

// Check refuses password by the rules that are on; personal are the
// person's names and login and the organisation's name (used when the
// personal rule is on).
func (s *Service) Check(ctx context.Context, password string, personal []string) (Refusal, bool, error) {
	st, meta, err := s.Settings(ctx)
	if err != nil {
		return Refusal{}, false, fmt.Errorf("banned: read the settings: %w", err)
	}
	c := Checker{Custom: s.customList(st, meta.Version)}
	if st.Common {
		c.Common = Common()
	}
	if !st.Personal {
		personal = nil
	} else if s.orgName != nil {
		org, err := s.orgName(ctx)
		if err != nil {
			return Refusal{}, false, fmt.Errorf("banned: read the organisation's name: %w", err)
		}
		personal = append(slices.Clone(personal), org)
	}
	r, ok := c.Check(password, personal)
	if !ok || st.BreachedFile == "" {
		return r, ok, nil
	}
	// Last: the one rule that reads a file.
	l, err := s.breached.get(st.BreachedFile)
	if err != nil {
		return Refusal{}, false, err
	}
	found, err := l.Contains(password)
	if err != nil {
		return Refusal{}, false, err
	}
	if found {
		return Refusal{Rule: RuleBreached}, false, nil
	}
	return Refusal{}, true, nil
}

// Breached opens the configured breached-password list, for the page's
// status line; nil, nil when none is configured.
func (s *Service) Breached(ctx context.Context) (*Breached, error) {
	st, _, err := s.Settings(ctx)
	if err != nil || st.BreachedFile == "" {
		return nil, err
	}
	return s.breached.get(st.BreachedFile)
}

// SetBreachedFile sets or (with "") clears the breached-password list on
// the settings' current version (the command line's `sspr banned
// breached`).
func (s *Service) SetBreachedFile(ctx context.Context, actor audit.Actor, path string) (bool, error) {
	cur, meta, err := s.Settings(ctx)
	if err != nil {
		return false, err
	}
	cur.BreachedFile = path
	return s.Save(ctx, actor, meta.Version, cur)
}

// customList is the organisation's list made once per version.
func (s *Service) customList(st Settings, version int64) *List {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version != version || s.custom == nil {
		s.custom, s.version = NewList(st.Custom), version
	}
	return s.custom
}
