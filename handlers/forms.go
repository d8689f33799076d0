package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// saved flashes msg (a catalogue key, marked with i18n.Key where it is
// written) in the reader's language, or "Nothing changed.", and goes back
// to path.
func (s *Server) saved(w http.ResponseWriter, r *http.Request, changed bool, msg, path string) {
	if !changed {
		msg = i18n.Key("Nothing changed.")
	}
	s.flash(w, r, i18n.T(r.Context(), msg))
	seeOther(w, r, path)
}

// formProblem tells whether err is one a form shows on itself (invalid
// input, a stale version); other errors go to the error page.
func formProblem(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Invalid || k == errs.Conflict
}

// showProblemIn puts a form problem on p in the reader's language (ctx):
// next to the fields it names, else in the summary.
func showProblemIn(ctx context.Context, p *web.Page, err error) {
	if f := errs.FieldsIn(ctx, err); len(f) > 0 {
		p.Fields = f
	} else {
		p.Errors = []string{errs.MessageIn(ctx, err)}
	}
}

// formVersion reads the settings version a form was rendered with.
func formVersion(r *http.Request) (int64, error) {
	v, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil {
		return 0, errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	return v, nil
}
