package handlers

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/writeback/writeback/services/audit"
	"github.com/writeback/writeback/services/directory"
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
		v.Methods = append(v.Methods, web.UserMethod{Method: m.Method, Label: m.Label, Detail: m.Detail, Registered: m.Registered})
	}
	v.BlockedUntil = until
	return nil
}

// userRemoveMethods removes one registered method ("method"), or all of
// them (empty), and tells the person.
func (s *Server) userRemoveMethods(w http.ResponseWriter, r *http.Request) error {
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
	n, err := s.helpdesk.RemoveMethods(r.Context(), s.actor(r), u, r.PostFormValue("method"))
	if err != nil {
		return s.userActionFailed(w, r, login, err, nil)
	}
	msg := "Removed 1 method of " + displayNameOf(u) + "; they were told by e-mail."
	if n != 1 {
		msg = "Removed " + strconv.Itoa(n) + " methods of " + displayNameOf(u) + "; they were told by e-mail."
	}
	s.flash(w, r, msg)
	seeOther(w, r, web.UserPath(login))
	return nil
}

// userLiftBlock ends the person's block from self-service.
func (s *Server) userLiftBlock(w http.ResponseWriter, r *http.Request) error {
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
	lifted, err := s.helpdesk.LiftBlock(r.Context(), s.actor(r), u)
	if err != nil {
		return err
	}
	msg := displayNameOf(u) + " was not blocked (any more)."
	if lifted {
		msg = "Lifted the block: " + displayNameOf(u) + " can use self-service again."
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
