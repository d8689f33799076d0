package handlers

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"

	"github.com/writeback/writeback/services/i18n"
)

// TestMain fails the package when any page, message or error shown during
// its tests was looked up in the catalogue without a translation: a text
// built at run time (a value concatenated in, a label from elsewhere) that
// TestCatalogueComplete cannot see in the code.
func TestMain(m *testing.M) {
	var (
		mu      sync.Mutex
		missing = map[string]bool{}
	)
	i18n.SetMissing(func(key string) {
		mu.Lock()
		missing[key] = true
		mu.Unlock()
	})
	code := m.Run()
	mu.Lock()
	keys := make([]string, 0, len(missing))
	for k := range missing {
		keys = append(keys, k)
	}
	mu.Unlock()
	if len(keys) > 0 {
		sort.Strings(keys)
		fmt.Fprintf(os.Stderr, "\n%d texts were shown that the catalogue (services/i18n/locales) does not translate:\n", len(keys))
		for _, k := range keys {
			fmt.Fprintf(os.Stderr, "  not in the catalogue: %q\n", k)
		}
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
