package handlers

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/writeback/writeback/services/banned"
	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/services/writeback"
)

// The settings of the pages under Password reset and Hybrid management, as
// the API reads and saves them: the same services, checks and audit events
// as the pages. Each is one document with a version: a PUT sends back what
// GET returned, changed, and is refused (409) when someone saved meanwhile.
// Secrets are write-only: GET says whether one is stored, never what it is.

// apiMeta is who saved a settings document last, and its version.
type apiMeta struct {
	Version   int64      `json:"version" doc:"The settings' version: send it back with a change. A change saved meanwhile refuses yours (409)."`
	UpdatedBy string     `json:"updated_by,omitempty" doc:"Who saved the settings last."`
	UpdatedAt *time.Time `json:"updated_at,omitempty" doc:"When the settings were saved last."`
}

func apiMetaOf(m settingsMeta) apiMeta {
	return apiMeta{Version: m.Version, UpdatedBy: m.UpdatedBy, UpdatedAt: apiTime(m.UpdatedAt)}
}

// APIVersion is the version a save sends back. (Exported, as APIConnection
// is: huma reads the fields of embedded structs of exported types only.)
type APIVersion struct {
	Version int64 `json:"version" minimum:"0" doc:"The version read with GET."`
}

type apiChanged struct {
	Changed bool `json:"changed" doc:"Whether the save changed anything."`
}

// The self-service password reset policy (Properties, Authentication
// methods, Registration, Notifications, Customization).

type apiPolicyOut struct {
	Body struct {
		selfservice.Policy
		apiMeta
		apiChanged
	}
}

type apiPolicyIn struct {
	Body struct {
		selfservice.Policy
		APIVersion
	}
}

func (s *Server) apiPolicyRead(ctx context.Context) (*apiPolicyOut, error) {
	p, meta, err := s.selfservice.Policy(ctx)
	if err != nil {
		return nil, err
	}
	out := &apiPolicyOut{}
	out.Body.Policy, out.Body.apiMeta = p, apiMetaOf(meta)
	if out.Body.Questions == nil {
		out.Body.Questions = []string{}
	}
	return out, nil
}

// The Mail server page's settings; the password is write-only.

type apiMail struct {
	Host        string       `json:"host" doc:"The SMTP server's host name; empty: no mail server."`
	Port        int          `json:"port" doc:"Usually 587 (STARTTLS) or 465 (TLS)."`
	TLS         mail.TLSMode `json:"tls" doc:"starttls, tls or none, as on the page."`
	From        string       `json:"from" doc:"The sender address."`
	Username    string       `json:"username" doc:"Empty: no authentication."`
	CAPEM       string       `json:"ca_pem" doc:"Trusted CA certificates (PEM) when the server's certificate is not publicly trusted."`
	HasPassword bool         `json:"password_set" readOnly:"true" doc:"Whether a password is stored (it is never returned)."`
}

type apiMailOut struct {
	Body struct {
		apiMail
		apiMeta
		apiChanged
	}
}

type apiMailIn struct {
	Body struct {
		Host          string       `json:"host"`
		Port          int          `json:"port"`
		TLS           mail.TLSMode `json:"tls"`
		From          string       `json:"from"`
		Username      string       `json:"username"`
		CAPEM         string       `json:"ca_pem"`
		Password      string       `json:"password,omitempty" writeOnly:"true" doc:"A new password; omitted or empty keeps the stored one for the same server and user."`
		ClearPassword bool         `json:"clear_password,omitempty" doc:"Remove the stored password."`
		APIVersion
	}
}

type apiMailTestIn struct {
	Body struct {
		To string `json:"to" doc:"Where to send the test mail."`
	}
}

type apiMessageOut struct {
	Body struct {
		Message string `json:"message"`
	}
}

func (s *Server) apiMailRead(ctx context.Context) (*apiMailOut, error) {
	m, meta, err := s.selfservice.MailSettings(ctx)
	if err != nil {
		return nil, err
	}
	out := &apiMailOut{}
	out.Body.apiMail = apiMail{Host: m.Host, Port: m.Port, TLS: m.TLS, From: m.From, Username: m.Username, CAPEM: m.CAPEM,
		HasPassword: m.PasswordSealed != ""}
	out.Body.apiMeta = apiMetaOf(meta)
	return out, nil
}

// The directory connection; the service account's password is write-only.

// APIConnection is the directory connection as the API reads and saves it.
type APIConnection struct {
	Mode                   string         `json:"mode" enum:"direct,agents" doc:"direct: the portal connects to the servers; agents: writeback agents inside the network do, and the portal holds no server, CA or service account."`
	Type                   directory.Type `json:"type" enum:"ad,openldap"`
	URLs                   []string       `json:"urls" doc:"The servers, tried in order (direct mode)."`
	Security               string         `json:"security" enum:"ldaps,starttls,none" doc:"The connection security; every URL must match it (ldaps:// or ldap://)."`
	CAPEM                  string         `json:"ca_pem" doc:"Trusted CA certificates (PEM)."`
	BindDN                 string         `json:"bind_dn" doc:"The service account."`
	BaseDNs                []string       `json:"base_dns"`
	UserFilter             string         `json:"user_filter"`
	LoginAttributes        []string       `json:"login_attributes"`
	RecoveryEmailAttribute string         `json:"recovery_email_attribute"`
	ExcludedGroups         []string       `json:"excluded_groups"`
	PasswordWriteback      bool           `json:"password_writeback" doc:"The connector-side switch: writeback happens only when it and the on-premises integration's are both on."`
}

type apiConnectionOut struct {
	Body struct {
		APIConnection
		HasPassword bool `json:"bind_password_set" readOnly:"true" doc:"Whether the service account's password is stored (it is never returned)."`
		apiMeta
		apiChanged
	}
}

type apiConnectionIn struct {
	Body struct {
		APIConnection
		BindPassword string `json:"bind_password,omitempty" writeOnly:"true" doc:"A new password; omitted or empty keeps the stored one for the same account."`
		APIVersion
	}
}

func (s *Server) apiConnectionRead(ctx context.Context) (*apiConnectionOut, error) {
	c, meta, err := s.writeback.Connection(ctx)
	if err != nil {
		return nil, err
	}
	in := writeback.InputOf(c)
	out := &apiConnectionOut{}
	out.Body.APIConnection = APIConnection{Mode: in.Mode, Type: in.Type, URLs: nonNil(in.URLs), Security: securityOf(in), CAPEM: in.CAPEM,
		BindDN: in.BindDN, BaseDNs: nonNil(in.BaseDNs), UserFilter: in.UserFilter, LoginAttributes: nonNil(in.LoginAttributes),
		RecoveryEmailAttribute: in.RecoveryEmailAttribute, ExcludedGroups: nonNil(in.ExcludedGroups), PasswordWriteback: in.PasswordWriteback}
	if out.Body.Mode == "" {
		out.Body.Mode = writeback.ModeDirect
	}
	out.Body.HasPassword, out.Body.apiMeta = c.HasPassword(), apiMetaOf(meta)
	return out, nil
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// The Password protection page's settings.

type apiProtectionOut struct {
	Body struct {
		banned.Settings
		apiMeta
		apiChanged
	}
}

type apiProtectionIn struct {
	Body struct {
		banned.Settings
		APIVersion
	}
}

func (s *Server) apiProtectionRead(ctx context.Context) (*apiProtectionOut, error) {
	if s.banned == nil {
		return nil, errNotFound
	}
	st, meta, err := s.banned.Settings(ctx)
	if err != nil {
		return nil, err
	}
	out := &apiProtectionOut{}
	out.Body.Settings, out.Body.apiMeta = st, apiMetaOf(meta)
	if out.Body.Custom == nil {
		out.Body.Custom = []string{}
	}
	return out, nil
}

// apiSaveRead answers a save: the settings as they are now, and whether the
// save changed them.
func apiSaveRead[O any](ctx context.Context, changed bool, read func(context.Context) (*O, error), set func(*O, bool)) (*O, error) {
	out, err := read(ctx)
	if err != nil {
		return nil, err
	}
	set(out, changed)
	return out, nil
}

func (s *Server) apiPortalSettings(api huma.API) {
	const tag = "Settings"
	saveErrors := []int{http.StatusUnprocessableEntity, http.StatusConflict}

	register(s, api, rolesRead, huma.Operation{OperationID: "get-self-service-policy", Method: http.MethodGet,
		Path: "/settings/self-service-policy", Summary: "Read the self-service password reset policy", Tags: []string{tag},
		Description: "What the Password reset pages Properties, Authentication methods, Registration, Notifications and Customization show."},
		func(ctx context.Context, _ *struct{}) (*apiPolicyOut, error) { return s.apiPolicyRead(ctx) })
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-self-service-policy", Method: http.MethodPut,
		Path: "/settings/self-service-policy", Summary: "Save the self-service password reset policy", Tags: []string{tag},
		Description: "Replaces the whole policy (send back what GET returned, changed) with the pages' checks (422 with the fields' messages), " +
			"a stale version refused (409). Audited as the pages' saves are.",
		Errors: saveErrors},
		func(ctx context.Context, in *apiPolicyIn) (*apiPolicyOut, error) {
			next := in.Body.Policy.Clone()
			changed, err := s.selfservice.SavePolicy(ctx, caller(ctx).actor, in.Body.Version, "API", func(p *selfservice.Policy) { *p = next })
			if err != nil {
				return nil, err
			}
			return apiSaveRead(ctx, changed, s.apiPolicyRead, func(o *apiPolicyOut, c bool) { o.Body.Changed = c })
		})

	register(s, api, rolesRead, huma.Operation{OperationID: "get-password-protection", Method: http.MethodGet,
		Path: "/settings/password-protection", Summary: "Read the password protection settings", Tags: []string{tag},
		Description: "What Password reset | Password protection shows: the built-in rules and the organisation's banned terms."},
		func(ctx context.Context, _ *struct{}) (*apiProtectionOut, error) { return s.apiProtectionRead(ctx) })
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-password-protection", Method: http.MethodPut,
		Path: "/settings/password-protection", Summary: "Save the password protection settings", Tags: []string{tag},
		Description: "Saves as the page does, with its checks (422), a stale version refused (409).", Errors: saveErrors},
		func(ctx context.Context, in *apiProtectionIn) (*apiProtectionOut, error) {
			if s.banned == nil {
				return nil, errNotFound
			}
			changed, err := s.banned.Save(ctx, caller(ctx).actor, in.Body.Version, in.Body.Settings)
			if err != nil {
				return nil, err
			}
			return apiSaveRead(ctx, changed, s.apiProtectionRead, func(o *apiProtectionOut, c bool) { o.Body.Changed = c })
		})

	register(s, api, rolesRead, huma.Operation{OperationID: "get-mail-server", Method: http.MethodGet,
		Path: "/settings/mail-server", Summary: "Read the mail server settings", Tags: []string{tag},
		Description: "What Password reset | Mail server shows; the password is never returned."},
		func(ctx context.Context, _ *struct{}) (*apiMailOut, error) { return s.apiMailRead(ctx) })
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-mail-server", Method: http.MethodPut,
		Path: "/settings/mail-server", Summary: "Save the mail server settings", Tags: []string{tag},
		Description: "Saves as the page does, with its checks (422), a stale version refused (409). The password is sealed at rest.",
		Errors:      saveErrors},
		func(ctx context.Context, in *apiMailIn) (*apiMailOut, error) {
			b := in.Body
			m := selfservice.MailInput{Host: b.Host, Port: b.Port, TLS: b.TLS, From: b.From, Username: b.Username,
				Password: b.Password, ClearPassword: b.ClearPassword, CAPEM: strings.TrimSpace(b.CAPEM)}
			changed, err := s.selfservice.SaveMail(ctx, caller(ctx).actor, b.Version, m)
			if err != nil {
				return nil, err
			}
			return apiSaveRead(ctx, changed, s.apiMailRead, func(o *apiMailOut, c bool) { o.Body.Changed = c })
		})
	register(s, api, rolesGlobal, huma.Operation{OperationID: "test-mail-server", Method: http.MethodPost,
		Path: "/settings/mail-server/test", Summary: "Send a test mail", Tags: []string{tag},
		Description: "Sends a test mail through the saved mail server, as Send test mail on the page does; the outcome is audited.",
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable}},
		func(ctx context.Context, in *apiMailTestIn) (*apiMessageOut, error) {
			to := strings.TrimSpace(in.Body.To)
			if err := s.selfservice.SendTestMail(ctx, caller(ctx).actor, to); err != nil {
				return nil, err
			}
			out := &apiMessageOut{}
			out.Body.Message = "Sent a test mail to " + to + "."
			return out, nil
		})

	register(s, api, rolesRead, huma.Operation{OperationID: "get-directory-connection", Method: http.MethodGet,
		Path: "/settings/directory-connection", Summary: "Read the directory connection", Tags: []string{tag},
		Description: "What Hybrid management | Directory connection shows; the service account's password is never returned."},
		func(ctx context.Context, _ *struct{}) (*apiConnectionOut, error) { return s.apiConnectionRead(ctx) })
	register(s, api, rolesGlobal, huma.Operation{OperationID: "put-directory-connection", Method: http.MethodPut,
		Path: "/settings/directory-connection", Summary: "Save the directory connection", Tags: []string{tag},
		Description: "Saves as the page does, with its checks (422: the security against the URLs, the service account's bind, the base DNs), " +
			"a stale version refused (409). The password is sealed at rest.",
		Errors: saveErrors},
		func(ctx context.Context, in *apiConnectionIn) (*apiConnectionOut, error) {
			c := in.Body.APIConnection
			wi := writeback.Input{Mode: c.Mode, Type: c.Type, URLs: c.URLs, CAPEM: c.CAPEM, BindDN: c.BindDN, BindPassword: in.Body.BindPassword,
				BaseDNs: c.BaseDNs, UserFilter: c.UserFilter, LoginAttributes: c.LoginAttributes,
				RecoveryEmailAttribute: c.RecoveryEmailAttribute, ExcludedGroups: c.ExcludedGroups, PasswordWriteback: c.PasswordWriteback}
			fields := map[string]string{}
			checkSecurity(&wi, c.Security, fields)
			if len(fields) > 0 {
				return nil, errs.FieldErrors(fields)
			}
			changed, err := s.writeback.SaveConnection(ctx, caller(ctx).actor, in.Body.Version, wi)
			if err != nil {
				if f := errs.FieldsOf(err); len(f) > 0 {
					return nil, errs.FieldErrors(formFields(f))
				}
				return nil, err
			}
			return apiSaveRead(ctx, changed, s.apiConnectionRead, func(o *apiConnectionOut, c bool) { o.Body.Changed = c })
		})
}
