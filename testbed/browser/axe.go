package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core 4.14.1 (npm axe-core, MPL-2.0, axe/LICENSE), the
// accessibility checker: part of the tests, never of the product.
//
//go:embed axe/axe.min.js
var axeSource string

// axeRun checks the document against WCAG 2.1 A and AA and returns what
// fails, as JSON (the page's Content-Security-Policy does not apply to
// DevTools' evaluation, so the page needs no change for it).
const axeRun = `(async () => {
	const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']});
	return JSON.stringify({url: location.pathname + location.search, violations: r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}))});
})()`

type axeResult struct {
	URL        string `json:"url"`
	Violations []struct {
		ID, Impact, Help string
		Nodes            []struct{ Target, Summary string }
	} `json:"violations"`
}

// Accessible checks the page the browser shows now with axe-core and fails
// the test on any violation of WCAG 2.1 AA, naming the rule and the
// elements. Step calls it on every page and state a test visits (where a
// step ends); a test may call it for a state in between.
func Accessible(t testing.TB, ctx context.Context) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	kind, err := chromedp.Run(sctx, chromedp.Evaluate[string](`document.contentType + ' ' + location.protocol`))
	if err != nil {
		t.Errorf("accessibility check: %v", err)
		return
	}
	if !strings.HasPrefix(kind, "text/html ") || strings.HasSuffix(kind, " about:") {
		return // a blank tab, an image, a download
	}
	// A step may end while the page it started is still loading, and a
	// new document has no axe: wait for it, and try again once the page
	// has settled.
	var out string
	for attempt := 1; ; attempt++ {
		out, err = axeOn(sctx)
		if err == nil {
			break
		}
		if attempt == 3 || sctx.Err() != nil {
			t.Errorf("accessibility check: %v", err)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	var r axeResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Errorf("accessibility check: %v", err)
		return
	}
	for _, v := range r.Violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprintf("%s (%s)", n.Target, strings.ReplaceAll(n.Summary, "\n", " ")))
		}
		t.Errorf("accessibility: %s: %s [%s, %s]: %s", r.URL, v.Help, v.ID, v.Impact, strings.Join(where, "; "))
	}
}

// axeOn loads axe into the page when it is not there yet, once the
// document has loaded, and runs it.
func axeOn(ctx context.Context) (string, error) {
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === 'complete' && typeof axe !== 'undefined'`))
	if err == nil && !loaded {
		if err = chromedp.Do(ctx, chromedp.WaitReady("body")); err == nil {
			_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](axeSource+"\n;true"))
		}
	}
	if err != nil {
		return "", err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise))
}
