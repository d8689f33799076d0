package selfservice

import (
	"context"

	"github.com/writeback/writeback/services/settings"
)

// Language is the organisation's default language code (Customization),
// "" for English or when the policy cannot be read. Every page asks for it
// when the reader's browser names no language the portal speaks, so it
// reads the shared policy without copying it.
func (s *Service) Language(ctx context.Context) string {
	var code string
	if _, err := settings.Peek(ctx, s.db, policyName, DefaultPolicy(), func(p *Policy) { code = p.Language }); err != nil {
		return ""
	}
	return code
}
