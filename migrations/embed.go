// Package migrations embeds the numbered, forward-only SQL migrations that
// build the portal's database, one folder per engine: sqlite/ for the file
// in the data folder, postgres/ for a shared PostgreSQL database. Both hold
// the same names (NNNN_name.sql) with the same meaning; a database records
// the names it has applied, so a name is never changed once released.
package migrations

import "embed"

// FS holds sqlite/NNNN_name.sql and postgres/NNNN_name.sql; each engine's
// are applied in name order.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
