// Package static embeds the portal's stylesheets, scripts and images so the
// binary serves them itself: no CDN, works offline. Beside each asset are
// its gzip and brotli variants (NAME.gz, NAME.br), written by `go generate`
// (make generate) and committed; `make lint` checks they are fresh.
package static

import "embed"

//go:generate go run ./internal/compress

// FS holds every asset and its precompressed variants, served under
// /static/ (handlers/static.go).
//
//go:embed *.css *.js *.svg *.gz *.br
var FS embed.FS
