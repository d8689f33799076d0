package handlers

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/writeback/writeback/services/agents"
	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/store"
)

// The on-premises integration settings, as the page shows and saves them.

type apiOnPrem struct {
	Writeback bool       `json:"writeback" doc:"Write back passwords to your on-premises directory."`
	Unlock    bool       `json:"unlock" doc:"Let people unlock their account without resetting their password."`
	Version   int64      `json:"version" doc:"The settings' version: send it back with a change. A change saved meanwhile refuses yours (409)."`
	UpdatedBy string     `json:"updated_by,omitempty" doc:"Who saved the settings last."`
	UpdatedAt *time.Time `json:"updated_at,omitempty" doc:"When the settings were saved last."`
}

type apiOnPremOut struct {
	Body apiOnPrem
}

type apiOnPremIn struct {
	Body struct {
		Writeback *bool `json:"writeback,omitempty" doc:"Yes (true) or No (false); required, as on the page."`
		Unlock    bool  `json:"unlock,omitempty" doc:"Ignored (No) while writeback is No."`
		Version   int64 `json:"version" minimum:"0" doc:"The version read with GET."`
	}
}

type apiSaved struct {
	Body struct {
		apiOnPrem
		Changed bool   `json:"changed"`
		Message string `json:"message" doc:"The confirmation the page shows."`
	}
}

func (s *Server) apiOnPremRead(ctx context.Context) (apiOnPrem, error) {
	o, meta, err := s.settings.OnPrem(ctx)
	if err != nil {
		return apiOnPrem{}, err
	}
	return apiOnPrem{Writeback: o.Writeback, Unlock: o.Unlock, Version: meta.Version, UpdatedBy: meta.UpdatedBy, UpdatedAt: apiTime(meta.UpdatedAt)}, nil
}

func (s *Server) apiSettings(api huma.API) {
	register(s, api, rolesRead, huma.Operation{OperationID: "get-on-premises-integration", Method: http.MethodGet,
		Path: "/settings/on-premises-integration", Summary: "Read the on-premises integration settings", Tags: []string{"Settings"},
		Description: "What Password reset | On-premises integration shows."},
		func(ctx context.Context, _ *struct{}) (*apiOnPremOut, error) {
			o, err := s.apiOnPremRead(ctx)
			return &apiOnPremOut{Body: o}, err
		})
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-on-premises-integration", Method: http.MethodPut,
		Path: "/settings/on-premises-integration", Summary: "Save the on-premises integration settings", Tags: []string{"Settings"},
		Description: "Saves as the page does, with the same checks: writeback cannot be Yes without a directory connection (422), " +
			"and a version that is not the current one is refused (409).",
		Errors: []int{http.StatusUnprocessableEntity, http.StatusConflict}},
		func(ctx context.Context, in *apiOnPremIn) (*apiSaved, error) {
			fields := map[string]string{}
			var next settings.OnPrem
			if in.Body.Writeback == nil {
				fields["writeback"] = "Choose Yes or No."
			} else {
				next = settings.OnPrem{Writeback: *in.Body.Writeback, Unlock: in.Body.Unlock}
			}
			if _, err := s.onPremNoDirectory(ctx, next, fields); err != nil {
				return nil, err
			}
			if len(fields) > 0 {
				return nil, errs.FieldErrors(fields)
			}
			changed, _, err := s.settings.SaveOnPrem(ctx, caller(ctx).actor, in.Body.Version, next)
			if err != nil {
				return nil, err
			}
			out := &apiSaved{}
			if out.Body.apiOnPrem, err = s.apiOnPremRead(ctx); err != nil {
				return nil, err
			}
			out.Body.Changed, out.Body.Message = changed, "Saved. Nothing changed."
			if changed {
				next = next.Normalize()
				out.Body.Message = "Saved. Write back passwords: " + yesNo(next.Writeback) + ". Unlock without resetting the password: " + yesNo(next.Unlock) + "."
			}
			return out, nil
		})
}

// The audit log's retention, as the Audit logs page shows and saves it to
// Global Administrators.

type apiRetention struct {
	Days      int        `json:"retention_days" doc:"How many days audit events are kept."`
	Version   int64      `json:"version" doc:"The setting's version: send it back with a change. A change saved meanwhile refuses yours (409)."`
	UpdatedBy string     `json:"updated_by,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

type apiRetentionOut struct {
	Body struct {
		apiRetention
		Changed bool `json:"changed,omitempty" doc:"On a save: whether it changed anything."`
	}
}

type apiRetentionIn struct {
	Body struct {
		Days    int   `json:"retention_days" doc:"1 to 3650 days (checked as on the page)."`
		Version int64 `json:"version" minimum:"0" doc:"The version read with GET."`
	}
}

func (s *Server) apiRetentionRead(ctx context.Context) (*apiRetentionOut, error) {
	ret, meta, err := s.settings.Retention(ctx)
	if err != nil {
		return nil, err
	}
	out := &apiRetentionOut{}
	out.Body.apiRetention = apiRetention{Days: ret.Days, Version: meta.Version, UpdatedBy: meta.UpdatedBy, UpdatedAt: apiTime(meta.UpdatedAt)}
	return out, nil
}

func (s *Server) apiRetention(api huma.API) {
	register(s, api, rolesGlobal, huma.Operation{OperationID: "get-audit-retention", Method: http.MethodGet,
		Path: "/settings/audit-retention", Summary: "Read the audit log's retention", Tags: []string{"Settings"},
		Description: "The retention the Audit logs page shows Global Administrators."},
		func(ctx context.Context, _ *struct{}) (*apiRetentionOut, error) { return s.apiRetentionRead(ctx) })
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-audit-retention", Method: http.MethodPut,
		Path: "/settings/audit-retention", Summary: "Save the audit log's retention", Tags: []string{"Settings"},
		Description: "Saves as the Audit logs page does: 1 to 3650 days (422 otherwise), a stale version refused (409).",
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusConflict}},
		func(ctx context.Context, in *apiRetentionIn) (*apiRetentionOut, error) {
			changed, err := s.settings.SaveRetention(ctx, caller(ctx).actor, in.Body.Version, in.Body.Days)
			if err != nil {
				return nil, err
			}
			out, err := s.apiRetentionRead(ctx)
			if err == nil {
				out.Body.Changed = changed
			}
			return out, err
		})
}

// The directory's and the agents' state.

type apiAgentsState struct {
	Connected int    `json:"connected" doc:"Agents connected now."`
	Writeback int    `json:"writeback" doc:"Connected agents with password writeback on."`
	Summary   string `json:"summary"`
}

type apiStatusOut struct {
	Body struct {
		State     string          `json:"state" enum:"connected,error,not-configured" doc:"The last connection test's result."`
		Message   string          `json:"message"`
		CheckedAt *time.Time      `json:"checked_at,omitempty"`
		Details   []string        `json:"details,omitempty"`
		Writeback bool            `json:"writeback" doc:"Whether resets and unlocks are written to the directory now."`
		Unlock    bool            `json:"unlock" doc:"Whether unlock without reset is allowed."`
		Reason    string          `json:"reason,omitempty" doc:"Why writeback is not available, when it is not."`
		Agents    *apiAgentsState `json:"agents,omitempty" doc:"In agents mode: the writeback agents."`
	}
}

type apiAgentsOut struct {
	Body []agents.Info
}

func (s *Server) apiDirectory(api huma.API) {
	register(s, api, rolesRead, huma.Operation{OperationID: "get-directory-status", Method: http.MethodGet,
		Path: "/directory/status", Summary: "Read the directory and writeback status", Tags: []string{"Directory"},
		Description: "The writeback service panel of On-premises integration."},
		func(ctx context.Context, _ *struct{}) (*apiStatusOut, error) {
			st, err := s.settings.Status(ctx)
			if err != nil {
				return nil, err
			}
			wst, err := s.writeback.State(ctx)
			if err != nil {
				return nil, err
			}
			out := &apiStatusOut{}
			b := &out.Body
			b.State, b.Message, b.CheckedAt, b.Details = string(st.State), st.Message, apiTime(st.CheckedAt), st.Details
			b.Writeback, b.Unlock, b.Reason = wst.Writeback, wst.Unlock, wst.Reason
			if a := agentsState(wst); a != nil {
				b.Agents = &apiAgentsState{Connected: a.Connected, Writeback: a.Writeback, Summary: a.Summary()}
			}
			return out, nil
		})
	register(s, api, rolesGlobal, huma.Operation{OperationID: "list-agents", Method: http.MethodGet,
		Path: "/agents", Summary: "List the writeback agents", Tags: []string{"Directory"},
		Description: "What Hybrid management | Writeback agents shows."},
		func(ctx context.Context, _ *struct{}) (*apiAgentsOut, error) {
			if s.agents == nil {
				return &apiAgentsOut{Body: []agents.Info{}}, nil
			}
			list, err := s.agents.List(ctx)
			if list == nil {
				list = []agents.Info{}
			}
			return &apiAgentsOut{Body: list}, err
		})
}

// Directory users: show, reset, unlock, as the helpdesk pages.

type apiUser struct {
	Login           string     `json:"login"`
	DisplayName     string     `json:"display_name"`
	Email           string     `json:"email,omitempty"`
	DN              string     `json:"dn"`
	ID              string     `json:"id" doc:"objectGUID (AD) or entryUUID (OpenLDAP)."`
	Locked          bool       `json:"locked"`
	LockedUntil     *time.Time `json:"locked_until,omitempty"`
	Disabled        bool       `json:"disabled"`
	PasswordExpired bool       `json:"password_expired"`
	MustChange      bool       `json:"must_change"`
	PasswordLastSet *time.Time `json:"password_last_set,omitempty"`
	Protected       bool       `json:"protected"`
	ProtectedReason string     `json:"protected_reason,omitempty"`
	CanAct          bool       `json:"can_act" doc:"Whether reset and unlock can run for this user now."`
	WhyNot          string     `json:"why_not,omitempty" doc:"Why not, when they cannot."`
	Policy          string     `json:"policy,omitempty" doc:"The directory's password rules for this user."`
}

func (s *Server) apiUserOf(ctx context.Context, u directory.User) (apiUser, error) {
	st, err := s.writeback.State(ctx)
	if err != nil {
		return apiUser{}, err
	}
	row := userRow(u)
	out := apiUser{Login: u.Login, DisplayName: row.DisplayName, Email: u.Email, DN: u.DN, ID: u.ID, Locked: u.Locked,
		LockedUntil: apiTime(u.LockedUntil), Disabled: u.Disabled, PasswordExpired: u.PasswordExpired, MustChange: u.MustChange,
		PasswordLastSet: apiTime(u.PasswordLastSet), Protected: u.Protected, ProtectedReason: u.ProtectedReason}
	out.CanAct, out.WhyNot = canAct(st, u)
	if pol, err := s.writeback.Policy(ctx, u); err == nil {
		out.Policy = pol.String()
	}
	return out, nil
}

type apiLoginIn struct {
	Login string `path:"login" maxLength:"256" doc:"The user's login (sAMAccountName, userPrincipalName or uid, as the Users page finds them)."`
}

type apiUserOut struct {
	Body apiUser
}

type apiResetIn struct {
	Login string `path:"login" maxLength:"256"`
	Body  struct {
		Password   string `json:"password,omitempty" maxLength:"256" doc:"The new password. Leave it out and set generate to have one made."`
		Generate   bool   `json:"generate,omitempty" doc:"Make a random password that meets the directory's rules, returned once in this answer."`
		MustChange bool   `json:"must_change,omitempty" doc:"Require the user to change the password at next sign-in."`
	}
}

type apiActionOut struct {
	Body struct {
		User    apiUser `json:"user"`
		Message string  `json:"message" doc:"The confirmation the page shows."`
		// Password is only ever set for generate: it is not kept anywhere.
		Password string `json:"password,omitempty" doc:"The generated password, when generate was set: shown only in this answer."`
	}
}

// generatedLength is the length of a generated password, unless the
// directory asks for more.
const generatedLength = 20

// generatePassword makes a random password of at least min characters with
// upper and lower case letters, digits and symbols, so that it meets
// complexity rules; the alphabet leaves out look-alikes (0/O, 1/l/I).
func generatePassword(min int) (string, error) {
	classes := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!#%+-=?@_"}
	n := max(generatedLength, min)
	buf := make([]byte, n)
	rnd := make([]byte, n)
	if _, err := rand.Read(rnd); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	all := classes[0] + classes[1] + classes[2] + classes[3]
	for i := range buf {
		set := all
		if i < len(classes) {
			set = classes[i]
		}
		buf[i] = set[int(rnd[i])%len(set)]
	}
	// The first four (one of each class) go to random places.
	perm := make([]byte, n)
	if _, err := rand.Read(perm); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	for i := n - 1; i > 0; i-- {
		j := int(perm[i]) % (i + 1)
		buf[i], buf[j] = buf[j], buf[i]
	}
	return string(buf), nil
}

func (s *Server) apiUsers(api huma.API) {
	register(s, api, rolesHelpdesk, huma.Operation{OperationID: "get-user", Method: http.MethodGet,
		Path: "/users/{login}", Summary: "Show a directory user", Tags: []string{"Users"},
		Description: "The account state the Users page shows.", Errors: []int{http.StatusNotFound}},
		func(ctx context.Context, in *apiLoginIn) (*apiUserOut, error) {
			u, err := s.writeback.Lookup(ctx, in.Login)
			if err != nil {
				return nil, err
			}
			out, err := s.apiUserOf(ctx, u)
			return &apiUserOut{Body: out}, err
		})
	register(s, api, rolesHelpdesk, huma.Operation{OperationID: "reset-user-password", Method: http.MethodPost,
		Path: "/users/{login}/reset", Summary: "Reset a user's password", Tags: []string{"Users"},
		Description: "Sets a password, or generates one, as the helpdesk's Reset password does; protected and disabled " +
			"accounts are refused as on the page, and a password the directory refuses is a 422 on the password field.",
		Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable}},
		func(ctx context.Context, in *apiResetIn) (*apiActionOut, error) {
			pw := in.Body.Password
			switch {
			case pw != "" && in.Body.Generate:
				return nil, errs.FieldErrors(map[string]string{"password": "Give a password or set generate, not both."})
			case pw == "" && !in.Body.Generate:
				return nil, errs.FieldErrors(map[string]string{"password": "Enter the new password."})
			}
			if in.Body.Generate {
				min := 0
				if u, err := s.writeback.Lookup(ctx, in.Login); err == nil {
					if pol, err := s.writeback.Policy(ctx, u); err == nil {
						min = pol.MinLength
					}
				}
				var err error
				if pw, err = generatePassword(min); err != nil {
					return nil, err
				}
			}
			u, err := s.writeback.AdminReset(ctx, caller(ctx).actor, in.Login, pw, in.Body.MustChange)
			if errs.KindOf(err) == errs.Policy {
				return nil, &errs.Error{Kind: errs.Policy, Message: errs.MessageOf(err),
					Fields: map[string]string{"password": "The directory refused this password: " + errs.MessageOf(err)}}
			}
			if err != nil {
				return nil, err
			}
			out := &apiActionOut{}
			if out.Body.User, err = s.apiUserOf(ctx, u); err != nil {
				return nil, err
			}
			msg := "Password reset for " + out.Body.User.DisplayName + "."
			if in.Body.MustChange {
				msg += " They must change it at next sign-in."
			}
			out.Body.Message = msg + " Other devices may keep the old password for a while."
			if in.Body.Generate {
				out.Body.Password = pw
			}
			return out, nil
		})
	register(s, api, rolesHelpdesk, huma.Operation{OperationID: "unlock-user", Method: http.MethodPost,
		Path: "/users/{login}/unlock", Summary: "Unlock a user", Tags: []string{"Users"},
		Description: "Ends the lockout and keeps the current password, as the page's Unlock does.",
		Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusServiceUnavailable}},
		func(ctx context.Context, in *apiLoginIn) (*apiActionOut, error) {
			u, err := s.writeback.AdminUnlock(ctx, caller(ctx).actor, in.Login)
			if err != nil {
				return nil, err
			}
			out := &apiActionOut{}
			if out.Body.User, err = s.apiUserOf(ctx, u); err != nil {
				return nil, err
			}
			out.Body.Message = "Unlocked " + out.Body.User.DisplayName + ". The password was not changed."
			return out, nil
		})
}

// The audit log: the Audit logs page's filters, paginated, and its export.

// APIAuditFilter is the Audit logs page's filter as the API's query
// parameters. (Exported: huma reads the parameters of embedded structs
// only when their type is.)
type APIAuditFilter struct {
	Range       string `query:"range" doc:"24h, 7d (the default), 30d or custom (then since and until)."`
	Since       string `query:"since" doc:"With range=custom: the first day, like 2026-11-01 (UTC)."`
	Until       string `query:"until" doc:"With range=custom: the last day, like 2026-11-30 (UTC)."`
	Category    string `query:"category"`
	Activity    string `query:"activity"`
	Result      string `query:"result" doc:"success or failure."`
	Actor       string `query:"actor" doc:"Part of the actor's ID or name."`
	Target      string `query:"target" doc:"Part of the target's ID, DN or name."`
	Q           string `query:"q" doc:"Text anywhere in the event."`
	Correlation string `query:"correlation" doc:"One attempt's correlation ID."`
}

// filter is the page's filter of the same query.
func (f APIAuditFilter) filter(now time.Time) (store.AuditFilter, error) {
	q := url.Values{}
	for k, v := range map[string]string{"range": f.Range, "since": f.Since, "until": f.Until, "category": f.Category,
		"activity": f.Activity, "result": f.Result, "actor": f.Actor, "target": f.Target, "q": f.Q, "correlation": f.Correlation} {
		if v != "" {
			q.Set(k, v)
		}
	}
	sf, _, err := auditFilter(q, now)
	return sf, err
}

type apiAuditIn struct {
	APIAuditFilter
	Cursor string `query:"cursor" maxLength:"200" doc:"next_cursor of the previous page; empty for the first page."`
	Limit  int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"Events per page."`
}

type apiAuditOut struct {
	Body struct {
		Events     []audit.JSONEvent `json:"events" doc:"Newest first; every field of each event, as the JSON export writes them."`
		Total      int               `json:"total" doc:"How many events match."`
		Capped     bool              `json:"capped" doc:"Whether total stopped counting (there are more)."`
		NextCursor string            `json:"next_cursor,omitempty" doc:"Give it as cursor for the next page; absent on the last page."`
	}
}

type apiExportIn struct {
	APIAuditFilter
	Format string `query:"format" enum:"csv,jsonl" default:"csv" doc:"csv, or jsonl (one JSON object a line)."`
}

type apiExportOut struct {
	ContentType        string `header:"Content-Type"`
	ContentDisposition string `header:"Content-Disposition"`
	Body               func(huma.Context)
}

func (s *Server) apiAudit(api huma.API) {
	register(s, api, rolesRead, huma.Operation{OperationID: "query-audit", Method: http.MethodGet,
		Path: "/audit", Summary: "Query the audit log", Tags: []string{"Audit"},
		Description: "The Audit logs page's filters and paging.", Errors: []int{http.StatusUnprocessableEntity}},
		func(ctx context.Context, in *apiAuditIn) (*apiAuditOut, error) {
			f, err := in.filter(time.Now())
			if err != nil {
				return nil, err
			}
			var cur store.Cursor
			if in.Cursor != "" {
				if cur, err = store.ParseCursor(in.Cursor); err != nil {
					return nil, errs.E(errs.Invalid, "That page link is not valid. Start from the first page.", err)
				}
			}
			rows, next, err := s.audit.Query(ctx, f, cur, in.Limit)
			if err != nil {
				return nil, err
			}
			total, capped, err := s.audit.Count(ctx, f)
			if err != nil {
				return nil, err
			}
			out := &apiAuditOut{}
			out.Body.Events = make([]audit.JSONEvent, 0, len(rows))
			for _, e := range rows {
				out.Body.Events = append(out.Body.Events, audit.NewJSONEvent(e))
			}
			out.Body.Total, out.Body.Capped = total, capped
			if !next.IsZero() {
				out.Body.NextCursor = next.String()
			}
			return out, nil
		})
	register(s, api, rolesRead, huma.Operation{OperationID: "export-audit", Method: http.MethodGet,
		Path: "/audit/export", Summary: "Export the audit log", Tags: []string{"Audit"},
		Description: "Streams every matching event, as the page's Export: CSV or JSON Lines. The export is itself recorded in the audit log.",
		Errors:      []int{http.StatusUnprocessableEntity},
		Responses: map[string]*huma.Response{"200": {Description: "The matching events, as the page's export writes them.", Content: map[string]*huma.MediaType{
			"text/csv": {Schema: &huma.Schema{Type: "string"}}, "application/x-ndjson": {Schema: &huma.Schema{Type: "string"}}}}}},
		func(ctx context.Context, in *apiExportIn) (*apiExportOut, error) {
			f, err := in.filter(time.Now())
			if err != nil {
				return nil, err
			}
			format, ctype := audit.FormatCSV, "text/csv; charset=utf-8"
			if in.Format == audit.FormatJSONL {
				format, ctype = audit.FormatJSONL, "application/x-ndjson; charset=utf-8"
			}
			actor := caller(ctx).actor
			return &apiExportOut{ContentType: ctype,
				ContentDisposition: fmt.Sprintf(`attachment; filename="writeback-audit-%s.%s"`, time.Now().UTC().Format("20060102-150405"), format),
				Body: func(hc huma.Context) {
					hc.SetStatus(http.StatusOK)
					// Streamed: memory stays flat however many rows there are.
					if _, err := s.audit.Export(hc.Context(), hc.BodyWriter(), format, f, actor); err != nil {
						s.log.ErrorContext(hc.Context(), "audit export stopped", "err", err)
					}
				}}, nil
		})
}
