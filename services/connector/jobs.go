package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
)

// What the agent answers when its own guard refuses a job. People may see
// these (through the portal); the reason travels beside them for the audit.
var (
	msgLate          = i18n.Key("Your organisation's directory could not be reached. Nothing was changed.")
	msgNotSealed     = i18n.Key("The writeback agent refused the request because a password did not arrive encrypted. Nothing was changed.")
	msgWritebackOff  = i18n.Key("Password writeback is turned off on the writeback agent. Nothing was changed.")
	msgRateLimited   = i18n.Key("The writeback agent is handling too many password changes right now. Nothing was changed; please try again in a minute.")
	msgOutsideBase   = i18n.Key("This account is outside the part of the directory the writeback agent serves. Nothing was changed.")
	msgNotConfigured = i18n.Key("The writeback agent has no directory connection yet. Nothing was changed.")
	msgBadJob        = i18n.Key("The writeback agent could not read the request. Nothing was changed.")
	msgNotSigned     = i18n.Key("The writeback agent refused a request that did not come from this portal. Nothing was changed.")
	msgReplayed      = i18n.Key("The writeback agent refused a request it had received before. Nothing was changed.")
)

// sealedFields are the passwords each op needs.
var sealedFields = map[string][]string{
	agentwire.OpResetUser:         {agentwire.FieldPassword},
	agentwire.OpResetLogin:        {agentwire.FieldPassword},
	agentwire.OpChangeLogin:       {agentwire.FieldOldPassword, agentwire.FieldPassword},
	agentwire.OpAuthenticateLogin: {agentwire.FieldPassword},
}

// jobFields are the JSON fields of agentwire.Job; a job with any other is
// refused (a password outside Sealed is refused as not sealed).
var jobFields = map[string]bool{
	"op": true, "deadline": true, "login": true, "dn": true, "user": true, "group_dn": true,
	"query": true, "limit": true, "until": true, "reset": true, "sealed": true,
}

// refused is an error of the agent's own guard: kind and safe message, an
// OpError with a code for the portal's error mapping and audit, and the
// reason inside it.
func refused(op string, kind errs.Kind, code directory.Code, msg, reason, detail string) error {
	return &errs.Error{Kind: kind, Message: msg, Cause: &directory.OpError{Op: agentwire.DirectoryOp(op), Code: code, Server: "agent",
		Err: &agentwire.RefusedError{Reason: reason, Detail: detail}}}
}

// job runs one job after the guards and returns its result.
func (s *session) job(ctx context.Context, env agentwire.Envelope, arrived time.Time) agentwire.Result {
	res, err := s.runJob(ctx, env, arrived)
	res.Error = agentwire.EncodeError(err)
	return res
}

func (s *session) runJob(ctx context.Context, env agentwire.Envelope, arrived time.Time) (agentwire.Result, error) {
	var j agentwire.Job
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(env.Body, &raw); err != nil {
		return agentwire.Result{}, refused("", errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", err.Error())
	}
	for k := range raw {
		if !jobFields[k] {
			if strings.Contains(strings.ToLower(k), "pass") {
				return agentwire.Result{}, refused("", errs.Forbidden, directory.CodeInvalid, msgNotSealed, agentwire.RefusedNotSealed,
					fmt.Sprintf("the job carries a field %q outside the sealed fields", k))
			}
			return agentwire.Result{}, refused("", errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", fmt.Sprintf("unknown field %q", k))
		}
	}
	if err := agentwire.DecodeBody(env, &j); err != nil {
		return agentwire.Result{}, refused("", errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", err.Error())
	}
	op := j.Op
	if !agentwire.KnownOp(op) {
		return agentwire.Result{}, refused("", errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", fmt.Sprintf("unknown operation %q", op))
	}
	log := s.a.log.With("job", env.ID, "op", op)

	// The deadline is on the portal's clock; a job that arrives after it is
	// dropped, never applied late. The same holds for one that waited for a
	// free slot past it.
	if late := s.late(j.Deadline, arrived); late != "" {
		log.Warn("writeback agent: job refused", "reason", agentwire.RefusedLate, "detail", late)
		return agentwire.Result{}, refused(op, errs.Unavailable, directory.CodeUnavailable, msgLate, agentwire.RefusedLate, late)
	}
	select {
	case s.a.sem <- struct{}{}:
		defer func() { <-s.a.sem }()
	case <-ctx.Done():
		return agentwire.Result{}, refused(op, errs.Unavailable, directory.CodeUnavailable, msgLate, agentwire.RefusedLate, "the connection ended before the job started")
	}
	if late := s.late(j.Deadline, s.a.now()); late != "" {
		log.Warn("writeback agent: job refused", "reason", agentwire.RefusedLate, "detail", late)
		return agentwire.Result{}, refused(op, errs.Unavailable, directory.CodeUnavailable, msgLate, agentwire.RefusedLate, late)
	}
	local := time.UnixMilli(j.Deadline).Add(-s.offset)
	if max := s.a.now().Add(maxJob); local.After(max) {
		local = max
	}
	ctx, cancel := context.WithDeadline(ctx, local)
	defer cancel()

	pw := map[string]string{}
	for _, f := range sealedFields[op] {
		sealed, ok := j.Sealed[f]
		if !ok || len(sealed) == 0 {
			log.Warn("writeback agent: job refused", "reason", agentwire.RefusedNotSealed, "field", f)
			return agentwire.Result{}, refused(op, errs.Forbidden, directory.CodeInvalid, msgNotSealed, agentwire.RefusedNotSealed, "no sealed "+f)
		}
		pt, err := s.sess.Open(env.ID, f, sealed)
		if err != nil {
			log.Warn("writeback agent: job refused", "reason", agentwire.RefusedNotSealed, "field", f, "err", err)
			return agentwire.Result{}, refused(op, errs.Forbidden, directory.CodeInvalid, msgNotSealed, agentwire.RefusedNotSealed, "the sealed "+f+" does not open with this connection's key")
		}
		pw[f] = string(pt)
	}

	if agentwire.IsWrite(op) {
		// Read at each job, so that `writeback-agent set` takes effect
		// while `run` runs.
		if st := s.a.cfg.Status(ctx); !st.PasswordWriteback {
			log.Warn("writeback agent: job refused", "reason", agentwire.RefusedWritebackOff)
			return agentwire.Result{}, refused(op, errs.Forbidden, directory.CodeNotPermitted, msgWritebackOff, agentwire.RefusedWritebackOff, "password writeback is off on this agent")
		}
	}

	d, bases, err := s.a.cfg.Directory(ctx)
	if err != nil {
		if op == agentwire.OpTest {
			l := directory.Checklist{Items: []directory.Check{{Name: "Directory connection", Detail: "This agent has no directory connection: set one with `writeback-agent directory set`.", Diagnostic: err.Error()}}}
			return agentwire.Result{Checklist: &l}, nil
		}
		log.Warn("writeback agent: job refused", "reason", agentwire.RefusedNotConfigured, "err", err)
		return agentwire.Result{}, refused(op, errs.Unavailable, directory.CodeUnavailable, msgNotConfigured, agentwire.RefusedNotConfigured, err.Error())
	}

	if dn, ok := dnOf(j); ok && dn != "" {
		if why := outside(dn, bases); why != "" {
			log.Warn("writeback agent: job refused", "reason", agentwire.RefusedOutsideBase, "dn", dn)
			return agentwire.Result{}, refused(op, errs.Forbidden, directory.CodeNotPermitted, msgOutsideBase, agentwire.RefusedOutsideBase, why)
		}
	}

	// Last: the write is counted only once nothing else refused it.
	if agentwire.IsWrite(op) && !s.a.limit.take() {
		log.Warn("writeback agent: job refused", "reason", agentwire.RefusedRateLimit, "limit_per_minute", s.a.cfg.WritesPerMinute)
		return agentwire.Result{}, refused(op, errs.TooMany, directory.CodeUnavailable, msgRateLimited, agentwire.RefusedRateLimit,
			fmt.Sprintf("over %d writes per minute", s.a.cfg.WritesPerMinute))
	}

	res, err := s.do(ctx, d, env.ID, j, pw)
	if err != nil {
		err = markProtected(err)
		log.Info("writeback agent: job failed", "code", string(codeOf(err)), "err", err)
	} else {
		log.Debug("writeback agent: job done")
	}
	return res, err
}

// late says why a job whose deadline is on the portal's clock must not
// start at local time t; empty when it may.
func (s *session) late(deadline int64, t time.Time) string {
	portalNow := t.Add(s.offset)
	if deadline <= portalNow.UnixMilli() {
		return fmt.Sprintf("the deadline passed %s before the job could start", portalNow.Sub(time.UnixMilli(deadline)).Round(time.Millisecond))
	}
	return ""
}

// dnOf is the DN a DN-taking op acts on.
func dnOf(j agentwire.Job) (string, bool) {
	switch j.Op {
	case agentwire.OpGet:
		return j.DN, true
	case agentwire.OpMemberOf, agentwire.OpPolicy, agentwire.OpResetUser, agentwire.OpUnlock:
		if j.User == nil {
			return "", true
		}
		return j.User.DN, true
	}
	return "", false
}

// outside says why dn is not under one of bases (compared as parsed DNs,
// case-insensitively); empty when it is.
func outside(dn string, bases []string) string {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return "not a DN: " + dn
	}
	for _, b := range bases {
		if bd, err := ldap.ParseDN(b); err == nil && (bd.AncestorOfFold(parsed) || bd.EqualFold(parsed)) {
			return ""
		}
	}
	return dn + " is outside the agent's search bases"
}

// markProtected adds the agent's reason to its client's refusal of a
// protected account, so that the portal audits it as the agent's.
func markProtected(err error) error {
	var oe *directory.OpError
	var e *errs.Error
	if !errors.As(err, &oe) || oe.Code != directory.CodeProtected || !errors.As(err, &e) {
		return err
	}
	cp := *oe
	detail := oe.Rule
	if oe.Err != nil {
		detail = oe.Err.Error()
	}
	cp.Err = &agentwire.RefusedError{Reason: agentwire.RefusedProtected, Detail: detail}
	return &errs.Error{Kind: e.Kind, Message: e.Message, Fields: e.Fields, Cause: &cp}
}

func codeOf(err error) directory.Code {
	var oe *directory.OpError
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// errNoUser answers a job that needs an account and names none.
func errNoUser(op string) error {
	return refused(op, errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", "the job names no account")
}

// do runs the op on the agent's directory.
func (s *session) do(ctx context.Context, d directory.Directory, id string, j agentwire.Job, pw map[string]string) (agentwire.Result, error) {
	var res agentwire.Result
	one := func(u directory.User, r directory.Result, err error) (agentwire.Result, error) {
		if u.DN != "" || u.ID != "" {
			res.User = &u
		}
		res.Server = r.Server
		return res, err
	}
	cand := func(c directory.Candidate, r directory.Result, err error) (agentwire.Result, error) {
		wc := candidateToWire(c)
		res.Candidate, res.Server = &wc, r.Server
		return res, err
	}
	switch j.Op {
	case agentwire.OpFind:
		return one(d.Find(ctx, j.Login))
	case agentwire.OpGet:
		return one(d.Get(ctx, j.DN))
	case agentwire.OpSearch:
		users, err := d.Search(ctx, j.Query, j.Limit)
		res.Users = users
		return res, err
	case agentwire.OpExpiring:
		users, err := d.Expiring(ctx, j.GroupDN, time.UnixMilli(j.Until))
		res.Users = users
		return res, err
	case agentwire.OpInScope:
		// Only what the campaign needs, so that a few thousand accounts
		// fit in one message.
		err := d.InScope(ctx, j.GroupDN, func(u directory.User) error {
			res.Users = append(res.Users, directory.User{ID: u.ID, DN: u.DN, Login: u.Login, DisplayName: u.DisplayName, Email: u.Email})
			return nil
		})
		return res, err
	case agentwire.OpMemberOf:
		if j.User == nil {
			return res, errNoUser(j.Op)
		}
		m, err := d.MemberOf(ctx, *j.User, j.GroupDN)
		res.Member = m
		return res, err
	case agentwire.OpPolicy:
		var u directory.User
		if j.User != nil {
			u = *j.User
		}
		p, err := d.Policy(ctx, u)
		if err == nil {
			res.Policy = &p
		}
		return res, err
	case agentwire.OpResetUser:
		if j.User == nil {
			return res, errNoUser(j.Op)
		}
		return one(d.ResetUser(ctx, *j.User, pw[agentwire.FieldPassword], j.Reset))
	case agentwire.OpResetLogin:
		return one(d.ResetLogin(ctx, j.Login, pw[agentwire.FieldPassword], j.Reset))
	case agentwire.OpUnlock:
		if j.User == nil {
			return res, errNoUser(j.Op)
		}
		r, err := d.Unlock(ctx, *j.User)
		res.Server = r.Server
		return res, err
	case agentwire.OpUnlockLogin:
		return one(d.UnlockLogin(ctx, j.Login))
	case agentwire.OpChangeLogin:
		return cand(d.ChangeLogin(ctx, j.Login, pw[agentwire.FieldOldPassword], pw[agentwire.FieldPassword], s.admit(ctx, id)))
	case agentwire.OpAuthenticateLogin:
		return cand(d.AuthenticateLogin(ctx, j.Login, pw[agentwire.FieldPassword], s.admit(ctx, id)))
	case agentwire.OpTest:
		l := d.Test(ctx, j.Login)
		res.Checklist = &l
		return res, nil
	}
	return res, refused(j.Op, errs.Invalid, directory.CodeInvalid, msgBadJob, "bad_job", "unknown operation")
}

// admit is the directory.Admit of a change_login or authenticate_login
// job: it asks the portal, which counts the attempt, and waits for its
// answer; an error stops the job.
func (s *session) admit(ctx context.Context, id string) directory.Admit {
	asked := false
	return func(c directory.Candidate, notFound error) error {
		if asked {
			return errs.E(errs.Internal, "", errors.New("connector: admit called twice in one job"))
		}
		asked = true
		ch := s.admitResult(id)
		if err := s.send(ctx, agentwire.TypeAdmit, id, agentwire.Admit{Candidate: candidateToWire(c), NotFound: agentwire.EncodeError(notFound)}); err != nil {
			return errs.E(errs.Unavailable, msgLate, &directory.OpError{Op: "admit", Code: directory.CodeUnavailable, Err: err})
		}
		select {
		case env := <-ch:
			var ar agentwire.AdmitResult
			if err := agentwire.DecodeBody(env, &ar); err != nil {
				return errs.E(errs.Internal, "", err)
			}
			return ar.Error.Err()
		case <-ctx.Done():
			return errs.E(errs.Unavailable, msgLate, &directory.OpError{Op: "admit", Code: directory.CodeUnavailable,
				Err: fmt.Errorf("no answer from the portal to admit: %w", ctx.Err())})
		}
	}
}

func candidateToWire(c directory.Candidate) agentwire.Candidate {
	return agentwire.Candidate{User: c.User, Policy: c.Policy, PolicyErr: agentwire.EncodeError(c.PolicyErr), Failures: c.Failures}
}
