package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/settings"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/web"
)

var onPremLead = i18n.Key("Choose whether passwords reset or changed in Writeback are written back to your on-premises directory, and whether people may unlock their account without resetting their password.")

// The errors of a switch that cannot be Yes yet.
var (
	noDirectory       = i18n.Key("There is no directory connection yet, so there is nothing to write to. Set up the directory connection first, then switch this on.")
	noDirectoryUnlock = i18n.Key("Unlocking writes to the directory too: set up the directory connection first.")
)

func (s *Server) onPremView(w http.ResponseWriter, r *http.Request) (web.OnPremView, error) {
	o, meta, err := s.settings.OnPrem(r.Context())
	if err != nil {
		return web.OnPremView{}, err
	}
	st, err := s.settings.Status(r.Context())
	if err != nil {
		return web.OnPremView{}, err
	}
	wst, err := s.writeback.State(r.Context())
	if err != nil {
		return web.OnPremView{}, err
	}
	setup, err := s.setupChecklist(r.Context(), o, st, wst)
	if err != nil {
		return web.OnPremView{}, err
	}
	p := s.page(w, r, "onprem", i18n.T(r.Context(), "Password reset"), i18n.T(r.Context(), "On-premises integration"), i18n.T(r.Context(), onPremLead))
	return web.OnPremView{Page: p, Writeback: o.Writeback, Unlock: o.Unlock, Version: meta.Version,
		UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt, Setup: setup, Agents: agentsState(wst),
		Status: web.ServiceStatus{State: string(st.State), Message: web.AuditLabel(r.Context(), st.Message), CheckedAt: st.CheckedAt, Details: st.Details}}, nil
}

// agentsState is the writeback agents' line of the writeback panel; nil in
// direct mode.
func agentsState(st writeback.State) *web.AgentsState {
	if !st.Agents {
		return nil
	}
	// Said whatever the portal switch: it is the agents' own state.
	return &web.AgentsState{Connected: st.AgentsConnected, Writeback: st.AgentsWriteback,
		Unavailable: writeback.AgentsReason(st.AgentsConnected, st.AgentsWriteback)}
}

// setupChecklist says what is still missing before an employee's reset can
// work, in the order an administrator sets it up: directory connection,
// Properties, Authentication methods, Mail server, and writeback itself
// (wst: in agents mode, whether an agent can write).
func (s *Server) setupChecklist(ctx context.Context, o settings.OnPrem, st settings.ServiceStatus, wst writeback.State) ([]web.SetupItem, error) {
	conn, _, err := s.writeback.Connection(ctx)
	if err != nil {
		return nil, err
	}
	pol, _, err := s.selfservice.Policy(ctx)
	if err != nil {
		return nil, err
	}
	ms, msMeta, err := s.selfservice.MailSettings(ctx)
	if err != nil {
		return nil, err
	}
	mst, err := s.mailStatus(ctx, msMeta)
	if err != nil {
		return nil, err
	}
	const (
		dirHref     = "/admin/directory"
		propsHref   = "/admin/password-reset/properties"
		methodsHref = "/admin/password-reset/authentication-methods"
		mailHref    = "/admin/password-reset/mail-server"
		agentsHref  = "/admin/agents"
	)
	dir := web.SetupItem{Key: "directory", Title: i18n.T(ctx, "Directory connection"), Href: dirHref, LinkText: i18n.T(ctx, "Directory connection")}
	switch {
	case !conn.Configured():
		dir.State, dir.Text = web.SetupMissing, i18n.T(ctx, "No directory is connected yet.")
	case conn.Agents() && wst.AgentsConnected == 0:
		dir.State, dir.Text, dir.Href, dir.LinkText = web.SetupFailed, i18n.T(ctx, "Through writeback agents, and no agent is connected."), agentsHref, i18n.T(ctx, "Writeback agents")
	case conn.Agents() && st.State == settings.StateConnected:
		dir.State, dir.Text = web.SetupDone, i18n.T(ctx, "Through writeback agents (%d agents connected); the last connection test passed.", wst.AgentsConnected)
	case st.State == settings.StateConnected:
		dir.State, dir.Text = web.SetupDone, i18n.T(ctx, "Connected to %s; the last connection test passed.", strings.Join(conn.URLs, ", "))
	case st.State == settings.StateError:
		dir.State, dir.Text = web.SetupFailed, i18n.T(ctx, "The last connection test failed: %s", web.AuditLabel(ctx, st.Message))
	default:
		dir.State, dir.Text = web.SetupMissing, i18n.T(ctx, "Saved but not tested yet: run Test connection.")
	}

	props := web.SetupItem{Key: "properties", Title: i18n.T(ctx, "Properties"), Href: propsHref, LinkText: i18n.T(ctx, "Properties")}
	switch pol.Enabled {
	case selfservice.EnabledAll:
		props.State, props.Text = web.SetupDone, i18n.T(ctx, "Self-service password reset is enabled for everyone.")
	case selfservice.EnabledGroup:
		props.State, props.Text = web.SetupDone, i18n.T(ctx, "Self-service password reset is enabled for members of %s.", pol.Group)
	default:
		props.State, props.Text = web.SetupMissing, i18n.T(ctx, "Self-service password reset is enabled for nobody yet.")
	}

	var labels []string
	for _, m := range pol.Methods.List() {
		labels = append(labels, i18n.T(ctx, selfservice.MethodLabel(m)))
	}
	methods := web.SetupItem{Key: "methods", Title: i18n.T(ctx, "Authentication methods"), Href: methodsHref, LinkText: i18n.T(ctx, "Authentication methods"),
		State: web.SetupDone, Text: i18n.T(ctx, "People prove who they are with %[2]s; %[1]d methods are required.", pol.Required, strings.Join(labels, ", "))}
	if len(labels) == 0 {
		methods.State, methods.Text = web.SetupMissing, i18n.T(ctx, "No method is allowed.")
	}

	mailItem := web.SetupItem{Key: "mail", Title: i18n.T(ctx, "Mail server"), Href: mailHref, LinkText: i18n.T(ctx, "Mail server")}
	switch {
	case ms.Configured() && !mst.At.IsZero() && !mst.OK:
		mailItem.State, mailItem.Text = web.SetupFailed, i18n.T(ctx, "The last mail could not be sent (%s): %s", i18n.DateTime(ctx, mst.At), mst.Message)
	case ms.Configured():
		mailItem.State, mailItem.Text = web.SetupDone, i18n.T(ctx, "Mail goes through %s; use Send test mail to check it.", ms.Host+":"+strconv.Itoa(ms.Port))
	case pol.Methods.Email:
		mailItem.State, mailItem.Text = web.SetupMissing, i18n.T(ctx, "E-mail codes are a method, but no mail server is set, so no code can be sent.")
	default:
		mailItem.State, mailItem.Text = web.SetupDone, i18n.T(ctx, "Not needed while e-mail codes are not a method (notification mails are not sent without one).")
	}

	wb := web.SetupItem{Key: "writeback", Title: i18n.T(ctx, "Password writeback")}
	switch {
	case !conn.Configured():
		wb.State, wb.Text, wb.Href, wb.LinkText = web.SetupMissing, i18n.T(ctx, "Can be switched on once a directory is connected."), dirHref, i18n.T(ctx, "Directory connection")
	case !o.Writeback:
		wb.State, wb.Text, wb.Href, wb.LinkText = web.SetupMissing, i18n.T(ctx, "\"Write back passwords to your on-premises directory\" is No."), "#writeback", i18n.T(ctx, "Change it below")
	case conn.Agents() && !wst.Writeback:
		// No agent connected, or none with its switch on: the agents page
		// shows which and what they say.
		wb.State, wb.Text, wb.Href, wb.LinkText = web.SetupMissing, i18n.T(ctx, wst.Reason), agentsHref, i18n.T(ctx, "Writeback agents")
	case conn.Agents():
		wb.State, wb.Text = web.SetupDone, i18n.T(ctx, "Passwords and unlocks are written to your on-premises directory through %d writeback agents.", wst.AgentsWriteback)
	case !conn.PasswordWriteback:
		wb.State, wb.Text, wb.Href, wb.LinkText = web.SetupMissing, i18n.T(ctx, "Password writeback is off in the directory connection (Optional features)."), dirHref, i18n.T(ctx, "Directory connection")
	default:
		wb.State, wb.Text = web.SetupDone, i18n.T(ctx, "Passwords and unlocks are written to your on-premises directory.")
	}
	items := []web.SetupItem{dir, props, methods, mailItem}
	if smsItem, ok, err := s.smsSetupItem(ctx, pol); err != nil {
		return nil, err
	} else if ok {
		items = append(items, smsItem)
	}
	return append(items, wb), nil
}

// smsSetupItem is the checklist's line for the text message gateway, shown
// while text message codes are a method or a gateway is set.
func (s *Server) smsSetupItem(ctx context.Context, pol selfservice.Policy) (web.SetupItem, bool, error) {
	if s.sms == nil {
		return web.SetupItem{}, false, nil
	}
	m, meta, err := s.sms.SMSSettings(ctx)
	if err != nil || (!pol.Methods.SMS && !m.Configured()) {
		return web.SetupItem{}, false, err
	}
	st, err := s.sms.SMSStatus(ctx)
	if err != nil {
		return web.SetupItem{}, false, err
	}
	it := web.SetupItem{Key: "sms", Title: i18n.T(ctx, "Text messages"), Href: "/admin" + smsPath, LinkText: i18n.T(ctx, "Text messages")}
	switch {
	case m.Configured() && !st.OK && !st.At.IsZero() && !st.At.Before(meta.UpdatedAt):
		it.State, it.Text = web.SetupFailed, i18n.T(ctx, "The last text message could not be sent (%s): %s", i18n.DateTime(ctx, st.At), st.Message)
	case m.Configured():
		it.State, it.Text = web.SetupDone, i18n.T(ctx, "Text messages go through %s; use Send test message to check it.", m.ServerID())
	default:
		it.State, it.Text = web.SetupMissing, i18n.T(ctx, "Text message codes are a method, but no SMS gateway is set, so no code can be sent.")
	}
	return it, true, nil
}

func (s *Server) onPremForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.onPremView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.OnPremPage(v))
	return nil
}

func (s *Server) onPremSave(w http.ResponseWriter, r *http.Request) error {
	fields, unanswered := map[string]string{}, map[string]bool{}
	// A disabled radio group is not submitted, so a missing unlock means No;
	// writeback is always on the form and must be answered.
	yes := func(name string, required bool) bool {
		switch v := r.PostFormValue(name); {
		case v == "yes":
			return true
		case v == "no" || (v == "" && !required):
			return false
		}
		fields[name], unanswered[name] = i18n.Key("Choose Yes or No."), true
		return false
	}
	next := settings.OnPrem{Writeback: yes("writeback", true), Unlock: yes("unlock", false)}
	version, verr := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if verr != nil || version < 0 {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	// Writeback (and unlock, which writes too) cannot be switched on while
	// there is nothing to write to: saying Yes would change nothing.
	noDir, err := s.onPremNoDirectory(r.Context(), next, fields)
	if err != nil {
		return err
	}
	if len(fields) > 0 {
		v, err := s.onPremView(w, r)
		if err != nil {
			return err
		}
		v.Fields, v.NoDirectory = errs.FieldsIn(r.Context(), errs.FieldErrors(fields)), noDir
		// Keep what was chosen, where it was a choice.
		if !unanswered["writeback"] {
			v.Writeback = next.Writeback
		}
		if !unanswered["unlock"] {
			v.Unlock = next.Normalize().Unlock
		}
		s.render(w, r, http.StatusUnprocessableEntity, web.OnPremPage(v))
		return nil
	}
	changed, _, err := s.settings.SaveOnPrem(r.Context(), s.actor(r), version, next)
	if errs.KindOf(err) == errs.Conflict {
		v, verr := s.onPremView(w, r)
		if verr != nil {
			return verr
		}
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, http.StatusConflict, web.OnPremPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	msg := i18n.T(r.Context(), "Saved. Nothing changed.")
	if changed {
		next = next.Normalize()
		msg = i18n.T(r.Context(), "Saved. Write back passwords: %s. Unlock without resetting the password: %s.",
			i18n.T(r.Context(), yesNo(next.Writeback)), i18n.T(r.Context(), yesNo(next.Unlock)))
	}
	s.flash(w, r, msg)
	seeOther(w, r, "/admin/password-reset/on-premises-integration")
	return nil
}

// onPremNoDirectory refuses writeback (and unlock, which writes too)
// switched on while there is nothing to write to: saying Yes would change
// nothing. It adds the fields' messages to fields and says whether it did.
func (s *Server) onPremNoDirectory(ctx context.Context, next settings.OnPrem, fields map[string]string) (bool, error) {
	if !next.Writeback {
		return false, nil
	}
	conn, _, err := s.writeback.Connection(ctx)
	if err != nil {
		return false, err
	}
	if conn.Configured() {
		return false, nil
	}
	fields["writeback"] = noDirectory
	if next.Unlock {
		fields["unlock"] = noDirectoryUnlock
	}
	return true, nil
}

func yesNo(b bool) string {
	if b {
		return i18n.Key("Yes")
	}
	return i18n.Key("No")
}
