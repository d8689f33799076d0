// Package migrations embeds the numbered, forward-only SQL migrations that
// build the portal's SQLite database.
package migrations

import "embed"

// FS holds every NNNN_name.sql file; they are applied in name order.
//
//go:embed *.sql
var FS embed.FS
