package selfservice

import (
	"context"
	"errors"
	"fmt"

	"github.com/writeback/writeback/services/directory"
	"github.com/writeback/writeback/services/sms"
	"github.com/writeback/writeback/store"
)

// TextReminder texts u text (a password-expiry reminder) when text
// messages are an allowed method, a gateway is configured and u has a
// mobile number (registered, else the directory's); to is the number
// masked, "" when nothing was to be sent. It counts toward the portal's
// daily cap and the number's and account's limits like a code (a number or
// account over them is not texted: to is "" and err nil).
func (s *Service) TextReminder(ctx context.Context, u directory.User, text string) (to string, err error) {
	p, _, err := s.Policy(ctx)
	if err != nil || !p.Methods.SMS {
		return "", err
	}
	m, _, err := s.SMSSettings(ctx)
	if err != nil || !m.Configured() {
		return "", err
	}
	number, err := s.phoneOf(ctx, u, m)
	if err != nil || number == "" {
		return "", err
	}
	send := false
	if err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		send, err = s.reserveSMS(ctx, tx, m.Cap(), "reminder:"+u.ID, number, "", false)
		return err
	}); err != nil || !send {
		if errors.Is(err, errSMSCooldown) || errors.Is(err, ErrTooManyCodes) {
			return "", nil // a code just went to the account: the mail is enough
		}
		return "", err
	}
	snd, _, err := s.smsSender(ctx)
	if err == nil {
		err = snd.Send(ctx, sms.Message{To: number, Text: text})
	}
	s.noteSMS(ctx, err)
	if err != nil {
		return smsMask(number), fmt.Errorf("selfservice: text reminder: %w", err)
	}
	return smsMask(number), nil
}
