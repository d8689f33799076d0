package handlers_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"

	"github.com/writeback/writeback/services/i18n"
	"github.com/writeback/writeback/services/selfservice"
	"github.com/writeback/writeback/testbed"
)

// dataBlock is the page's JSON block of script texts, which holds the
// English words as its keys.
var dataBlock = regexp.MustCompile(`(?s)<script[^>]*type="application/json"[^>]*>.*?</script>`)

// formValue is a form control's value: data the form sends back (a
// security question as stored), not text shown.
var formValue = regexp.MustCompile(`value="[^"]*"`)

// leftOnEmployeePage lists the catalogue's English texts (without values, of
// some length, translated into tag as something else) that body shows as
// they are: what a page in tag must not hold.
func leftOnEmployeePage(tag language.Tag, body string) []string {
	main := formValue.ReplaceAllString(dataBlock.ReplaceAllString(between(body, "<main", "</main>"), ""), "")
	var out []string
	for _, k := range i18n.Keys(tag) {
		e, _ := i18n.Translation(tag, k)
		if strings.Contains(k, "%") || len(k) < 14 || e.Text == k {
			continue
		}
		if strings.Contains(main, html.EscapeString(k)) {
			out = append(out, k)
		}
	}
	return out
}

// TestSelfServiceSpeaksTheBrowsersLanguage walks the employee pages — the
// start page, a reset (who, the choice of a method, the code, a wrong code,
// the password step and its rules, a refused password, done), /unlock,
// /change and /register — with a browser that asks for German, French or
// Spanish: every page, message and error, and the code mail and the reset
// notice, come in that language, with no English left on the pages.
func TestSelfServiceSpeaksTheBrowsersLanguage(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true})
	for _, tc := range []struct {
		accept string
		tag    language.Tag
		// Texts each page must show, in the language.
		start, who, choose, code, wrongCode, password, shortPw, done, unlock, change, wrongCurrent, register, registered string
		codeSubject, codeBody, resetSubject, resetBody                                                                   string
	}{
		{
			accept: "de-DE,de;q=0.9,en;q=0.5", tag: i18n.German,
			start: "Ich habe mein Kennwort vergessen", who: "Wer sind Sie? Geben Sie Ihren Benutzernamen",
			choose: "Wie möchten Sie Ihre Identität bestätigen?", code: "Code aus der E-Mail",
			wrongCode: "Dieser Code ist nicht richtig. Sie haben damit noch 4 Versuche.",
			password:  "Mindestens 7 Zeichen", shortPw: "Das neue Kennwort ist zu kurz: mindestens 7 Zeichen.",
			done: "Ihr Kennwort wurde zurückgesetzt", unlock: "Entsperren Sie Ihr Konto", change: "Aktuelles Kennwort",
			wrongCurrent: "Benutzername und aktuelles Kennwort passen nicht zusammen",
			register:     "Melden Sie sich mit Ihrem Verzeichniskennwort an", registered: "Ihre Überprüfungsmethoden",
			codeSubject: "Ihr Bestätigungscode für Example Corp", codeBody: "Er gilt einmal und für 10 Minuten.",
			resetSubject: "Ihr Example Corp-Kennwort wurde zurückgesetzt", resetBody: "über das Kennwortportal zurückgesetzt",
		},
		{
			accept: "fr-FR,fr;q=0.9", tag: i18n.French,
			start: "J&#39;ai oublié mon mot de passe", who: "Qui êtes-vous ? Saisissez votre nom d&#39;utilisateur",
			choose: "Comment voulez-vous prouver votre identité ?", code: "Code reçu par e-mail",
			wrongCode: "Ce code est incorrect. Il vous reste 4 essais avec ce code.",
			password:  "Au moins 7 caractères", shortPw: "Le nouveau mot de passe est trop court : au moins 7 caractères.",
			done: "Votre mot de passe a été réinitialisé", unlock: "Déverrouillez votre compte", change: "Mot de passe actuel",
			wrongCurrent: "Ce nom d&#39;utilisateur et ce mot de passe actuel ne correspondent pas",
			register:     "Connectez-vous avec le mot de passe de votre annuaire", registered: "Vos méthodes de vérification",
			codeSubject: "Votre code de vérification pour Example Corp", codeBody: "Il ne fonctionne qu'une fois, pendant 10 minutes.",
			resetSubject: "Votre mot de passe Example Corp a été réinitialisé", resetBody: "via le portail de mots de passe",
		},
		{
			accept: "es-MX,es;q=0.9", tag: i18n.Spanish,
			start: "He olvidado mi contraseña", who: "¿Quién es usted? Escriba su nombre de usuario",
			choose: "¿Cómo quiere demostrar que es usted?", code: "Código del correo electrónico",
			wrongCode: "Ese código no es correcto. Le quedan 4 intentos con él.",
			password:  "Al menos 7 caracteres", shortPw: "La contraseña nueva es demasiado corta: al menos 7 caracteres.",
			done: "Su contraseña se ha restablecido", unlock: "Desbloquee su cuenta", change: "Contraseña actual",
			wrongCurrent: "El nombre de usuario y la contraseña actual no coinciden",
			register:     "Inicie sesión con la contraseña de su directorio", registered: "Sus métodos de verificación",
			codeSubject: "Su código de verificación para Example Corp", codeBody: "Funciona una sola vez y durante 10 minutos.",
			resetSubject: "Se ha restablecido su contraseña de Example Corp", resetBody: "a través del portal de contraseñas",
		},
	} {
		t.Run(i18n.Code(tc.tag), func(t *testing.T) {
			user := d.newUser(t, testbed.UserOptions{})
			c := s.client().speaking(tc.accept)
			show := func(what string, p page, wants ...string) {
				t.Helper()
				main := between(p.Body, "<main", "</main>")
				for _, w := range wants {
					if !strings.Contains(main, w) {
						t.Errorf("%s: %q missing:\n%s", what, w, main)
					}
				}
				if left := leftOnEmployeePage(tc.tag, p.Body); len(left) > 0 {
					t.Errorf("%s: English left on the page: %q", what, left)
				}
				if !strings.Contains(p.Body, `lang="`+i18n.Code(tc.tag)+`"`) {
					t.Errorf("%s: the page does not say it is in %s", what, i18n.Code(tc.tag))
				}
			}
			show("start", c.get("/"), tc.start)
			show("who", c.get("/reset"), tc.who)
			flow := c.begin("reset", user.Login)
			show("choose", c.get(flow), tc.choose)
			if p := c.step(flow, "method", url.Values{"method": {"email"}}); p.Status != http.StatusSeeOther {
				t.Fatalf("choose email: %d", p.Status)
			}
			show("code", c.get(flow), tc.code)
			m := s.sink.WaitFor(t, user.Mail, 10*time.Second)
			if m.Subject != tc.codeSubject || !strings.Contains(m.Text, tc.codeBody) || !strings.Contains(m.HTML, html.EscapeString(tc.codeBody)) ||
				!strings.Contains(m.HTML, `lang="`+i18n.Code(tc.tag)+`"`) {
				t.Errorf("code mail not in %s: %q\n%s", i18n.Code(tc.tag), m.Subject, m.Text)
			}
			code := codeRE.FindStringSubmatch(m.Text)
			if code == nil {
				t.Fatalf("no code in %q", m.Text)
			}
			wrong := "00000000"
			if code[1] == wrong {
				wrong = "11111111"
			}
			p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {wrong}})
			if p.Status != http.StatusUnauthorized {
				t.Errorf("wrong code: %d", p.Status)
			}
			show("wrong code", p, tc.wrongCode)
			if p := c.step(flow, "verify", url.Values{"method": {"email"}, "code": {code[1]}}); p.Status != http.StatusSeeOther {
				t.Fatalf("verify: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			show("password", c.get(flow), tc.password)
			p = c.step(flow, "password", url.Values{"password": {"Ab1!"}, "confirm": {"Ab1!"}})
			if p.Status != http.StatusUnprocessableEntity {
				t.Errorf("short password: %d", p.Status)
			}
			show("short password", p, tc.shortPw)
			newPw := "Rst-" + testbed.RandomPassword()
			if p := c.step(flow, "password", url.Values{"password": {newPw}, "confirm": {newPw}}); p.Status != http.StatusSeeOther {
				t.Fatalf("set password: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			show("done", c.get(flow), tc.done)
			n := s.sink.WaitFor(t, user.Mail, 10*time.Second)
			if n.Subject != tc.resetSubject || !strings.Contains(n.Text, tc.resetBody) || !strings.Contains(n.HTML, html.EscapeString(tc.resetBody)) {
				t.Errorf("reset notice not in %s: %q\n%s", i18n.Code(tc.tag), n.Subject, n.Text)
			}

			show("unlock", c.get("/unlock"), tc.unlock)
			show("change", c.get("/change"), tc.change)
			p = c.post("/change", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "current": {"Wrong-Passw0rd"},
				"password": {newPw + "x"}, "confirm": {newPw + "x"}})
			if p.Status != http.StatusUnprocessableEntity {
				t.Errorf("wrong current password: %d", p.Status)
			}
			show("wrong current password", p, tc.wrongCurrent)
			show("register", c.get("/register"), tc.register)
			p = c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {newPw}})
			if p.Status != http.StatusSeeOther {
				t.Fatalf("register sign-in: %d\n%s", p.Status, between(p.Body, "<main", "</main>"))
			}
			show("register methods", c.get(p.Location), tc.registered)
			s.ss.Wait()
		})
	}
}

// TestRegisterAndOtherStepsInGerman covers what the walk above does not
// meet: the register page with an authenticator app being set up and
// security questions (the portal's own questions in German, a refused
// choice in German), and the app and questions steps of a reset and the
// flash after registering.
func TestRegisterAndOtherStepsInGerman(t *testing.T) {
	env := testbed.Load(t)
	d := directories(env)[0]
	s := newSSPR(t, env, d, selfservice.Methods{Email: true, App: true, Questions: true})
	user := d.newUser(t, testbed.UserOptions{})
	c := s.client().speaking("de")
	show := func(what string, p page, wants ...string) {
		t.Helper()
		main := between(p.Body, "<main", "</main>")
		for _, w := range wants {
			if !strings.Contains(main, w) {
				t.Errorf("%s: %q missing:\n%s", what, w, main)
			}
		}
		if left := leftOnEmployeePage(i18n.German, p.Body); len(left) > 0 {
			t.Errorf("%s: English left on the page: %q", what, left)
		}
	}
	p := c.post("/register", url.Values{"csrf_token": {c.csrf("/")}, "login": {user.Login}, "password": {user.Password}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("sign in to register: %d", p.Status)
	}
	reg := p.Location
	show("register", c.get(reg), "Authentifikator-App", "Sicherheitsfragen", "Frage 1", "In welcher Stadt wurden Sie geboren?")
	c.post(reg+"/app", url.Values{"csrf_token": {c.csrf("/")}})
	show("app set-up", c.get(reg), "Scannen Sie diesen Code", "Von der App angezeigter Code")
	qs := selfservice.DefaultPolicy().Questions[:3]
	p = c.post(reg+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": {qs[0], qs[0], qs[1]}, "answer": {"Paris", "Paris", "Rex"}})
	if p.Status != http.StatusUnprocessableEntity {
		t.Errorf("the same question twice: %d", p.Status)
	}
	show("questions refused", p, "Wählen Sie unterschiedliche Fragen.")
	if p := c.post(reg+"/questions", url.Values{"csrf_token": {c.csrf("/")}, "question": qs, "answer": {"Paris", "Rex", "Volvo"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("register questions: %d", p.Status)
	}
	show("registered", c.get(reg), "Ihre Sicherheitsfragen sind registriert.", "Ihre Antworten sind registriert.")

	flow := c.begin("reset", user.Login)
	show("choose", c.get(flow), "Code per E-Mail", "Sicherheitsfragen")
	if p := c.step(flow, "method", url.Values{"method": {"questions"}}); p.Status != http.StatusSeeOther {
		t.Fatalf("choose questions: %d", p.Status)
	}
	p = c.get(flow)
	show("questions step", p, "Beantworten Sie Ihre Sicherheitsfragen")
	for _, q := range qs {
		if strings.Contains(p.Body, html.EscapeString(q)) {
			t.Errorf("question %q shown in English", q)
		}
	}
	p = c.step(flow, "verify", url.Values{"method": {"questions"}, "answer": {"x", "y", "z"}})
	show("wrong answers", p, "Diese Antworten sind nicht richtig.")
	s.ss.Wait()
}
