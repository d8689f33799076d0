package handlers

import (
	"net/http"

	"github.com/writeback/writeback/services/i18n"
)

// savedIn flashes msg (a catalogue key, marked with i18n.Key where it is
// written) in the reader's language, or "Nothing changed.", and goes back
// to path.
func (s *Server) savedIn(w http.ResponseWriter, r *http.Request, changed bool, msg, path string) {
	if !changed {
		msg = i18n.Key("Nothing changed.")
	}
	s.flash(w, r, i18n.T(r.Context(), msg))
	seeOther(w, r, path)
}
