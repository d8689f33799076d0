// Package static embeds the portal's stylesheets, scripts and images so the
// binary serves them itself: no CDN, works offline.
package static

import "embed"

// FS holds every asset, served under /static/.
//
//go:embed *.css *.js *.svg
var FS embed.FS
