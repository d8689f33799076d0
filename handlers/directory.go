package handlers

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/writeback"
	"github.com/writeback/writeback/web"
)

var directoryLead = i18n.Key("Connect Writeback to your on-premises directory: directly (the servers, the service account it writes with, which users it serves, and whether password writeback is on) or through writeback agents inside your network.")

func (s *Server) directoryView(w http.ResponseWriter, r *http.Request) (web.DirectoryView, error) {
	c, meta, err := s.writeback.Connection(r.Context())
	if err != nil {
		return web.DirectoryView{}, err
	}
	p := s.page(w, r, "directory", i18n.T(r.Context(), "Hybrid management"), i18n.T(r.Context(), "Directory connection"), i18n.T(r.Context(), directoryLead))
	v := web.DirectoryView{Page: p, Version: meta.Version, UpdatedBy: meta.UpdatedBy, UpdatedAt: meta.UpdatedAt}
	if !c.Configured() && meta.Version == 0 {
		d := directory.Defaults(directory.TypeAD, "DC=example,DC=com")
		c = writeback.Connection{Type: d.Type, LoginAttributes: d.LoginAttributes, RecoveryEmailAttribute: d.RecoveryEmailAttribute,
			UserFilter: d.UserFilter}
	}
	fillConnection(&v, writeback.InputOf(c))
	v.HasPassword = c.HasPassword()
	return v, nil
}

func fillConnection(v *web.DirectoryView, in writeback.Input) {
	v.Mode = in.Mode
	if v.Mode == "" {
		v.Mode = writeback.ModeDirect
	}
	v.Type = string(in.Type)
	v.URLs = strings.Join(in.URLs, "\n")
	v.Security = securityOf(in)
	v.CAPEM = in.CAPEM
	v.BindDN = in.BindDN
	v.BaseDNs = strings.Join(in.BaseDNs, "\n")
	v.UserFilter = in.UserFilter
	v.LoginAttributes = strings.Join(in.LoginAttributes, ", ")
	v.RecoveryEmailAttribute = in.RecoveryEmailAttribute
	v.MobileAttribute = in.MobileAttribute
	v.ExcludedGroups = strings.Join(in.ExcludedGroups, "\n")
	v.PasswordWriteback = in.PasswordWriteback
}

func securityOf(in writeback.Input) string {
	if len(in.URLs) > 0 && strings.HasPrefix(strings.ToLower(in.URLs[0]), "ldaps://") {
		return "ldaps"
	}
	if in.StartTLS {
		return "starttls"
	}
	if len(in.URLs) == 0 {
		return "ldaps"
	}
	return "none"
}

func (s *Server) directoryForm(w http.ResponseWriter, r *http.Request) error {
	v, err := s.directoryView(w, r)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, web.DirectoryPage(v))
	return nil
}

func lines(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
}

// connectionInput reads the form, checking the mode and, in direct mode,
// that the chosen security matches the URL schemes (in agents mode the
// servers are ignored: saving clears them).
func connectionInput(r *http.Request) (writeback.Input, map[string]string, error) {
	if err := r.ParseMultipartForm(256 << 10); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		return writeback.Input{}, nil, errs.E(errs.Invalid, "The form could not be read. Reload the page and try again.", err)
	}
	fields := map[string]string{}
	in := writeback.Input{
		Mode:                   r.PostFormValue("mode"),
		Type:                   directory.Type(r.PostFormValue("type")),
		URLs:                   lines(r.PostFormValue("urls")),
		CAPEM:                  r.PostFormValue("ca_pem"),
		BindDN:                 r.PostFormValue("bind_dn"),
		BindPassword:           r.PostFormValue("bind_password"),
		BaseDNs:                lines(r.PostFormValue("base_dns")),
		UserFilter:             r.PostFormValue("user_filter"),
		LoginAttributes:        writeback.SplitList(r.PostFormValue("login_attributes")),
		RecoveryEmailAttribute: r.PostFormValue("recovery_email_attribute"),
		MobileAttribute:        r.PostFormValue("mobile_attribute"),
		ExcludedGroups:         lines(r.PostFormValue("excluded_groups")),
		PasswordWriteback:      r.PostFormValue("password_writeback") == "yes",
	}
	if f, _, err := r.FormFile("ca_file"); err == nil {
		b, err := io.ReadAll(io.LimitReader(f, 128<<10))
		f.Close()
		if err != nil {
			return in, nil, errs.E(errs.Invalid, "The uploaded file could not be read.", err)
		}
		if len(strings.TrimSpace(string(b))) > 0 {
			in.CAPEM = string(b)
		}
	}
	checkSecurity(&in, r.PostFormValue("security"), fields)
	return in, fields, nil
}

// checkSecurity checks the mode and, in direct mode, that the chosen
// connection security (ldaps, starttls or none) matches the URL schemes; it
// sets StartTLS from it. The page and the API share it.
func checkSecurity(in *writeback.Input, security string, fields map[string]string) {
	switch in.Mode {
	case writeback.ModeAgents:
		return
	case writeback.ModeDirect, "":
		// A form from before there were modes is direct.
		in.Mode = writeback.ModeDirect
	default:
		fields["mode"] = i18n.Key("Choose Direct or Through writeback agents.")
	}
	want := ""
	switch security {
	case "ldaps":
		want = "ldaps://"
	case "starttls":
		want, in.StartTLS = "ldap://", true
	case "none":
		want = "ldap://"
	default:
		fields["security"] = i18n.Key("Choose LDAPS, StartTLS or None.")
	}
	if want != "" {
		for _, u := range in.URLs {
			if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(u)), want) {
				fields["urls"] = i18n.Key("With the chosen connection security every URL must start with ldap://.")
				if want == "ldaps://" {
					fields["urls"] = i18n.Key("With the chosen connection security every URL must start with ldaps://.")
				}
				break
			}
		}
	}
}

func (s *Server) directorySave(w http.ResponseWriter, r *http.Request) error {
	in, fields, err := connectionInput(r)
	if err != nil {
		return err
	}
	v, err := s.directoryView(w, r)
	if err != nil {
		return err
	}
	if r.PostFormValue("action") == "detect" {
		fillConnection(&v, in)
		if len(in.URLs) == 0 {
			v.Fields = map[string]string{"urls": i18n.T(r.Context(), "Enter at least one server URL to detect the directory type.")}
			s.render(w, r, http.StatusUnprocessableEntity, web.DirectoryPage(v))
			return nil
		}
		t, err := s.writeback.Detect(r.Context(), in.URLs[0], in.StartTLS, in.CAPEM)
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			v.Errors = []string{i18n.T(r.Context(), "Could not detect the directory type: %s", errs.MessageIn(r.Context(), err))}
			s.render(w, r, http.StatusUnprocessableEntity, web.DirectoryPage(v))
			return nil
		}
		from := in.Type
		in.Type = t
		fillConnection(&v, writeback.WithTypeDefaults(in, from))
		v.Detected = i18n.T(r.Context(), "Detected: %s. Defaults for it were filled in where fields were empty or held the other type's defaults; review and press Save.", typeLabel(t))
		s.render(w, r, http.StatusOK, web.DirectoryPage(v))
		return nil
	}
	version, verr := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if verr != nil {
		return errs.Invalidf("This form is missing its version. Reload the page and save again.")
	}
	if len(fields) == 0 {
		_, err = s.writeback.SaveConnection(r.Context(), s.actor(r), version, in)
	}
	if len(fields) > 0 || errs.KindOf(err) == errs.Invalid || errs.KindOf(err) == errs.Conflict {
		fillConnection(&v, in)
		if len(fields) > 0 {
			v.Fields = errs.FieldsIn(r.Context(), errs.FieldErrors(fields))
		}
		if err != nil {
			if f := errs.FieldsIn(r.Context(), err); len(f) > 0 {
				v.Fields = formFields(f)
			} else {
				v.Errors = []string{errs.MessageIn(r.Context(), err)}
			}
		}
		status := http.StatusUnprocessableEntity
		if errs.KindOf(err) == errs.Conflict {
			status = http.StatusConflict
		}
		s.render(w, r, status, web.DirectoryPage(v))
		return nil
	}
	if err != nil {
		return err
	}
	msg := i18n.T(r.Context(), "Saved the directory connection. Use Test connection to check it.")
	if in.Mode == writeback.ModeAgents {
		msg = i18n.T(r.Context(), "Saved: the directory is reached through writeback agents, and the portal holds no server URL, CA certificate or service account. Use Test connection to check it through an agent.")
	}
	s.flash(w, r, msg)
	seeOther(w, r, "/admin/directory")
	return nil
}

// formFields names the connection's field errors as the form does: the
// trusted CAs are "ca" to the directory package and ca_pem on the page.
func formFields(f map[string]string) map[string]string {
	out := make(map[string]string, len(f))
	for k, m := range f {
		if k == "ca" {
			k = "ca_pem"
		}
		out[k] = m
	}
	return out
}

func typeLabel(t directory.Type) string {
	if t == directory.TypeOpenLDAP {
		return "OpenLDAP"
	}
	return "Active Directory"
}

func (s *Server) directoryTest(w http.ResponseWriter, r *http.Request) error {
	login := strings.TrimSpace(r.PostFormValue("login"))
	list, err := s.writeback.Test(r.Context(), s.actor(r), login)
	v, verr := s.directoryView(w, r)
	if verr != nil {
		return verr
	}
	v.TestLogin = login
	if err != nil {
		if errs.KindOf(err) == errs.Internal {
			return err
		}
		v.Errors = []string{errs.MessageIn(r.Context(), err)}
		s.render(w, r, http.StatusOK, web.DirectoryPage(v))
		return nil
	}
	c := &web.Checklist{OK: list.OK}
	for _, it := range list.Items {
		c.Items = append(c.Items, web.CheckItem{Name: it.NameIn(r.Context()), Detail: it.DetailIn(r.Context()), OK: it.OK})
	}
	v.Checklist = c
	s.render(w, r, http.StatusOK, web.DirectoryPage(v))
	return nil
}
