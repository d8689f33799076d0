// Package branding is the organisation's look on the portal's pages: its
// logo, its accent colour (kept readable: WCAG AA contrast), and whether
// employees see the "Administrator sign-in" link. The organisation's name
// and helpdesk contact stay where they are (the self-service policy's
// Customization page); Brand brings them together for the page header.
package branding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

const docName = "branding"

// TargetID names the settings in audit rows.
const TargetID = "company-branding"

// ActivityUpdate is the audit activity of a save.
const ActivityUpdate = "Update company branding"

// Settings are the "Password reset › Company branding" page. The logo is
// kept in the same document (one save changes all of it at once); hot
// paths read it with settings.Peek, never copying the image.
type Settings struct {
	Accent        string `json:"accent,omitempty"` // "#rrggbb"; empty: Writeback's own
	HideAdminLink bool   `json:"hide_admin_link,omitempty"`
	LogoType      string `json:"logo_type,omitempty"` // image/png or image/svg+xml; empty: no logo
	LogoSHA       string `json:"logo_sha,omitempty"`  // hex SHA-256 of Logo, the version in its address
	Logo          []byte `json:"logo,omitempty"`
}

// Brand is what every page needs of the branding: small, copied.
type Brand struct {
	OrgName       string
	Accent        string
	HideAdminLink bool
	LogoSHA       string // empty: no logo of the organisation's
}

// Input is a save from the page: a new logo (nil keeps the current one),
// or RemoveLogo.
type Input struct {
	Accent        string
	HideAdminLink bool
	Logo          []byte
	RemoveLogo    bool
}

// Service keeps the branding.
type Service struct {
	db      *store.DB
	orgName func(context.Context) (string, error)
}

// New builds the service; orgName gives the organisation's name (the
// self-service policy's), nil for none.
func New(db *store.DB, orgName func(context.Context) (string, error)) *Service {
	return &Service{db: db, orgName: orgName}
}

// Settings reads the settings, logo included (for the page).
func (s *Service) Settings(ctx context.Context) (Settings, settings.Meta, error) {
	return settings.Get(ctx, s.db, docName, Settings{})
}

// Brand is what the page header needs, read from memory without copying
// the logo.
func (s *Service) Brand(ctx context.Context) (Brand, error) {
	var b Brand
	_, err := settings.Peek(ctx, s.db, docName, Settings{}, func(v *Settings) {
		b = Brand{Accent: v.Accent, HideAdminLink: v.HideAdminLink, LogoSHA: v.LogoSHA}
	})
	if err != nil {
		return Brand{}, err
	}
	if s.orgName != nil {
		if b.OrgName, err = s.orgName(ctx); err != nil {
			return Brand{}, err
		}
	}
	return b, nil
}

// Logo calls f with the logo (nothing when there is none). f must not keep
// data after it returns: it is the copy every reader shares.
func (s *Service) Logo(ctx context.Context, f func(typ, sha string, data []byte)) error {
	_, err := settings.Peek(ctx, s.db, docName, Settings{}, func(v *Settings) {
		if v.LogoType != "" {
			f(v.LogoType, v.LogoSHA, v.Logo)
		}
	})
	return err
}

// Save checks and stores in if the settings are still at expectVersion,
// audited as "Update company branding" with what changed (the logo by its
// type, size and hash, never its bytes).
func (s *Service) Save(ctx context.Context, actor audit.Actor, expectVersion int64, in Input) (bool, error) {
	fields := map[string]errs.Text{}
	accent, err := CheckAccent(in.Accent)
	if err != nil {
		fields["accent"] = errs.TextOf(err)
	}
	var logoType string
	if in.Logo != nil && !in.RemoveLogo {
		if logoType, err = CheckLogo(in.Logo); err != nil {
			fields["logo"] = errs.TextOf(err)
		}
	}
	if len(fields) > 0 {
		return false, errs.FieldTexts(fields)
	}
	changed, _, err := settings.Update(ctx, s.db, docName, expectVersion, actor, Settings{}, func(old Settings) (Settings, []audit.Entry, error) {
		next := old
		next.Accent, next.HideAdminLink = accent, in.HideAdminLink
		switch {
		case in.RemoveLogo:
			next.LogoType, next.LogoSHA, next.Logo = "", "", nil
		case in.Logo != nil:
			sum := sha256.Sum256(in.Logo)
			next.LogoType, next.LogoSHA, next.Logo = logoType, hex.EncodeToString(sum[:]), in.Logo
		}
		d := audit.Changes{}
		d.Add("accent", old.Accent, next.Accent)
		d.Add("hide_admin_link", old.HideAdminLink, next.HideAdminLink)
		if old.LogoSHA != next.LogoSHA {
			switch {
			case next.LogoSHA == "":
				d["logo"] = "removed"
			default:
				d["logo"] = fmt.Sprintf("%s, %d bytes, sha256 %s", next.LogoType, len(next.Logo), next.LogoSHA[:16])
			}
		}
		if len(d) == 0 {
			return old, nil, nil
		}
		return next, []audit.Entry{{Category: audit.CategoryPolicy, Activity: ActivityUpdate,
			Target: audit.Target{Type: "Policy", ID: TargetID, Name: "Company branding"}, Details: d}}, nil
	})
	return changed, err
}

// CheckAccent accepts "" (Writeback's own colour) or #rgb / #rrggbb with at
// least 4.5:1 contrast against the page (WCAG AA for text: links are in
// the accent colour, and buttons carry text on it), returning it as
// lower-case #rrggbb.
func CheckAccent(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return "", nil
	}
	c, ok := parseHex(s)
	if !ok {
		return "", errs.Invalidf("Enter a colour as # and six hexadecimal digits, such as #0b5cad, or leave it empty for Writeback's own.")
	}
	// Rounded down, so that a colour just short of the bar never reads
	// as reaching it ("4.5:1, needs 4.5:1").
	if r := contrast(c, white); r < minContrast {
		return "", errs.Invalidf("%s has a contrast of %.1f:1 against the white page; links and buttons need at least 4.5:1 (WCAG AA). Choose a darker colour.", c.hex(), math.Floor(r*10)/10)
	}
	if r := contrast(c, lightBG); r < minContrast {
		return "", errs.Invalidf("%s has a contrast of %.1f:1 against the page's grey background; it needs at least 4.5:1 (WCAG AA). Choose a darker colour.", c.hex(), math.Floor(r*10)/10)
	}
	return c.hex(), nil
}
