package handlers

import (
	"context"
	"net/http"
	"strconv"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/web"
)

// saved ends a settings page's successful save: a banner naming it (what,
// in the reader's language; or saying nothing changed) and POST → 303 → GET back to the page at path.
func (s *Server) saved(w http.ResponseWriter, r *http.Request, changed bool, what, path string) {
	msg := i18n.T(r.Context(), "Saved %s.", what)
	if !changed {
		msg = i18n.T(r.Context(), "Nothing changed.")
	}
	s.flash(w, r, msg)
	seeOther(w, r, path)
}

// formProblem tells whether err is one a form shows on itself (invalid
// input, a stale version); other errors go to the error page.
func formProblem(err error) bool {
	k := errs.KindOf(err)
	return k == errs.Invalid || k == errs.Conflict
}

// showProblem puts a form problem on p: next to the fields it names, else
// in the summary. It is showProblemIn in English, for pages not yet
// through the catalogue.
func showProblem(p *web.Page, err error) {
	showProblemIn(context.Background(), p, err)
}

// showProblemIn is showProblem in the reader's language (ctx).
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
