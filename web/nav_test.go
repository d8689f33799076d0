package web

import (
	"context"
	"strings"
	"testing"
)

// TestSideNavCached: the navigation served from its cache is the HTML the
// template renders for that viewer and current entry, for every role and
// entry, on the first and on later pages, under each path prefix.
func TestSideNavCached(t *testing.T) {
	for _, base := range []string{"", "/password"} {
		ctx := WithBase(context.Background(), base)
		testSideNavCached(t, ctx)
	}
}

func testSideNavCached(t *testing.T, ctx context.Context) {
	for _, role := range []string{"global-admin", "helpdesk-admin", "reports-reader"} {
		v := &Viewer{Name: "Ada", Role: role}
		for _, nav := range []string{"onprem", "users", "admins", "audit", "directory", "agents", ""} {
			var want strings.Builder
			if err := navEntries(v, nav).Render(ctx, &want); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				var got strings.Builder
				if err := sideNav(v, nav).Render(ctx, &got); err != nil {
					t.Fatal(err)
				}
				if got.String() != want.String() {
					t.Errorf("%s on %q under %q: cached navigation\n%s\nwant\n%s", role, nav, Base(ctx), got.String(), want.String())
				}
			}
			if !strings.Contains(want.String(), `href="`+Base(ctx)+"/admin/") {
				t.Errorf("%s on %q: links not under %q:\n%s", role, nav, Base(ctx), want.String())
			}
			if nav != "" && strings.Contains(want.String(), "/"+nav) && !strings.Contains(want.String(), `aria-current="page"`) {
				t.Errorf("%s on %q: no current entry", role, nav)
			}
		}
	}
	var none strings.Builder
	if err := sideNav(nil, "onprem").Render(context.Background(), &none); err != nil || none.Len() != 0 {
		t.Errorf("no viewer: %q %v", none.String(), err)
	}
}
