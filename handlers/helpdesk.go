package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/web"
)

// HelpdeskTools is what a user's page needs of services/selfservice for
// the person's self-service: what they registered and their block.
type HelpdeskTools interface {
	UserMethods(ctx context.Context, u directory.User) ([]selfservice.RegisteredMethod, time.Time, error)
	RemoveMethods(ctx context.Context, actor audit.Actor, u directory.User, method string) (int, error)
	LiftBlock(ctx context.Context, actor audit.Actor, u directory.User) (bool, error)
}

// fillSelfService adds what u registered and their block to a user page.
func (s *Server) fillSelfService(ctx context.Context, v *web.UserView, u directory.User) error {
	if s.helpdesk == nil || u.ID == "" {
		return nil
	}
	ms, until, err := s.helpdesk.UserMethods(ctx, u)
	if err != nil {
		return err
	}
	for _, m := range ms {
		v.Methods = append(v.Methods, web.UserMethod{Method: m.Method, Label: i18n.T(ctx, m.Label), Detail: m.Detail, Registered: m.Registered})
	}
	v.BlockedUntil = until
	return nil
}

// userRemoveMethods removes one registered method ("method"), or all of
// them (empty), and tells the person.
func (s *Server) userRemoveMethods(w http.ResponseWriter, r *http.Request) error {
	return s.helpdeskAction(w, r, func(u directory.User) (string, error) {
		n, err := s.helpdesk.RemoveMethods(r.Context(), s.actor(r), u, r.PostFormValue("method"))
		return i18n.T(r.Context(), "Removed %d methods of %s; they were told by e-mail.", n, displayNameOf(u)), err
	})
}

// userLiftBlock ends the person's block from self-service.
func (s *Server) userLiftBlock(w http.ResponseWriter, r *http.Request) error {
	return s.helpdeskAction(w, r, func(u directory.User) (string, error) {
		lifted, err := s.helpdesk.LiftBlock(r.Context(), s.actor(r), u)
		if !lifted {
			return i18n.T(r.Context(), "%s was not blocked (any more).", displayNameOf(u)), err
		}
		return i18n.T(r.Context(), "Lifted the block: %s can use self-service again.", displayNameOf(u)), err
	})
}

// helpdeskAction runs act on the user of the address and goes back to their
// page with its message; a refusal shows the page with the reason.
func (s *Server) helpdeskAction(w http.ResponseWriter, r *http.Request, act func(directory.User) (string, error)) error {
	if s.helpdesk == nil {
		return errNotFound
	}
	login, err := loginParam(r)
	if err != nil {
		return err
	}
	u, err := s.writeback.Lookup(r.Context(), login)
	if err != nil {
		return err
	}
	msg, err := act(u)
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return err
		}
		return s.userActionFailed(w, r, login, err, nil)
	}
	s.flash(w, r, msg)
	seeOther(w, r, web.UserPath(login))
	return nil
}

func displayNameOf(u directory.User) string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Login
}
