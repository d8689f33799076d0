package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/writeback/writeback/services/agentwire"
	"github.com/writeback/writeback/services/errs"
)

// AgentEnroller is what the enrolment endpoint needs of services/agents.
type AgentEnroller interface {
	Enroll(ctx context.Context, req agentwire.EnrollRequest, remoteAddr string) (agentwire.EnrollResponse, error)
}

// maxEnrollBody bounds an enrolment request: a token, two keys, a
// signature, a host name and a version are well under 4 KiB.
const maxEnrollBody = 16 << 10

// enrollAgent is POST agentwire.PathEnroll: `writeback-agent enroll` sends
// its token, its public keys and its proof, and gets its identity. It
// carries no cookie (the token is the credential), so it sits outside the
// session and CSRF middleware; it answers JSON only.
func (s *Server) enrollAgent(w http.ResponseWriter, r *http.Request) {
	if s.agentEnroll == nil {
		writeEnrollError(w, http.StatusNotFound, "This portal does not accept writeback agents.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEnrollBody)
	var req agentwire.EnrollRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeEnrollError(w, http.StatusRequestEntityTooLarge, "The enrolment request is too large.")
			return
		}
		writeEnrollError(w, http.StatusBadRequest, "The enrolment request is not valid JSON.")
		return
	}
	resp, err := s.agentEnroll.Enroll(r.Context(), req, s.clientIP(r))
	if err != nil {
		status := http.StatusBadRequest
		switch errs.KindOf(err) {
		case errs.Unauthorized:
			status = http.StatusUnauthorized
		case errs.Conflict:
			status = http.StatusConflict
		case errs.Invalid:
		default:
			s.log.ErrorContext(r.Context(), "agent enrolment failed", "err", err, "request_id", middleware.GetReqID(r.Context()))
			writeEnrollError(w, http.StatusInternalServerError, "Something went wrong on the portal's side. Try again; if it keeps happening, tell its administrator (reference "+middleware.GetReqID(r.Context())+").")
			return
		}
		writeEnrollError(w, status, errs.MessageOf(err))
		return
	}
	writeEnrollJSON(w, http.StatusOK, resp)
}

// enrollTooMany answers an address over the enrolment rate limit.
func enrollTooMany(w http.ResponseWriter, r *http.Request) {
	writeEnrollError(w, http.StatusTooManyRequests, "Too many enrolment attempts from this address. Wait a minute and try again.")
}

func writeEnrollError(w http.ResponseWriter, status int, msg string) {
	writeEnrollJSON(w, status, agentwire.EnrollError{Error: msg})
}

func writeEnrollJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
