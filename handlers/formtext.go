package handlers

import (
	"context"
	"net/http"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// showProblemIn puts a form problem on p in the reader's language (ctx):
// next to the fields it names, else in the summary.
func showProblemIn(ctx context.Context, p *web.Page, err error) {
	if f := errs.FieldsIn(ctx, err); len(f) > 0 {
		p.Fields = f
	} else {
		p.Errors = []string{errs.MessageIn(ctx, err)}
	}
}

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
