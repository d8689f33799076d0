package selfservice

import (
	"context"
	"errors"

	"github.com/writeback/writeback/services/errs"
	"github.com/writeback/writeback/services/mail"
)

// Recorder is what self-service tells the portal's metrics: each
// verification attempt with its method (MethodEmail, MethodApp,
// MethodQuestions, MethodPasskey) and result (VerifySuccess, VerifyWrong, VerifyBlocked),
// and each e-mail handed to the mail server or not. The default records
// nothing.
type Recorder interface {
	Verification(method, result string)
	MailSent(err error)
}

// Results of a verification attempt, for Recorder.
const (
	VerifySuccess = "success"
	VerifyWrong   = "wrong"
	VerifyBlocked = "blocked" // refused unevaluated: the account is blocked
)

type noRecorder struct{}

func (noRecorder) Verification(string, string) {}
func (noRecorder) MailSent(error)              {}

// UseRecorder makes the service report to r. Call it before the service
// is used.
func (s *Service) UseRecorder(r Recorder) { s.rec = r }

// recordVerification reports the outcome of Verify: evaluated says the
// guess was checked, ok whether it was right; err is Verify's error.
func (s *Service) recordVerification(method string, evaluated, ok bool, err error) {
	switch method {
	case MethodEmail, MethodApp, MethodQuestions, MethodPasskey:
	default:
		return // not a method: nothing was tried (and the label stays bounded)
	}
	switch {
	case evaluated && ok:
		s.rec.Verification(method, VerifySuccess)
	case evaluated:
		s.rec.Verification(method, VerifyWrong)
	case errors.Is(err, errBlocked):
		s.rec.Verification(method, VerifyBlocked)
	}
}

// send hands one message to snd and reports it.
func (s *Service) send(ctx context.Context, snd *mail.Sender, m mail.Message) error {
	err := snd.Send(ctx, m)
	s.rec.MailSent(err)
	return err
}

// SendMail sends m through the configured mail server (the portal's own
// notices, such as alerts to administrators), reporting it and recording
// the outcome on the Mail server page as every send does.
func (s *Service) SendMail(ctx context.Context, m mail.Message) error {
	snd, err := s.sender(ctx)
	if err != nil {
		s.rec.MailSent(err)
	} else {
		err = s.send(ctx, snd, m)
	}
	if errs.KindOf(err) != errs.Invalid {
		s.noteMail(ctx, err)
	}
	return err
}
