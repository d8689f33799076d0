package handlers

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/writeback/writeback/services/errs"
)

// Error pages carry a heading in plain words for every status people meet,
// never the bare HTTP reason phrase ("Unprocessable Entity").
func TestErrorPageHeadings(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tests := []struct {
		kind    errs.Kind
		status  int
		heading string
	}{
		{errs.Invalid, http.StatusUnprocessableEntity, "Check what was typed"},
		{errs.NotFound, http.StatusNotFound, "Page not found"},
		{errs.Forbidden, http.StatusForbidden, "Not allowed"},
		{errs.TooMany, http.StatusTooManyRequests, "Too many attempts"},
		{errs.Unavailable, http.StatusServiceUnavailable, "Not available right now"},
		{errs.Internal, http.StatusInternalServerError, "Something went wrong"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		// A message of the catalogue, so that the page has no untranslated text.
		s.renderError(rec, httptest.NewRequest(http.MethodGet, "/x", nil), errs.E(tt.kind, errs.MsgFieldsInvalid, nil))
		body := rec.Body.String()
		if rec.Code != tt.status || !strings.Contains(body, ">"+tt.heading+"<") || strings.Contains(body, ">"+http.StatusText(tt.status)+"<") {
			t.Errorf("%v: status %d, want %d with the heading %q:\n%s", tt.kind, rec.Code, tt.status, tt.heading, body)
		}
	}
}
