// Package migrations embeds paygate's SQL schema migrations.
//
// Files are named NNNN_<domain>_<what>.sql and applied in numeric order,
// each exactly once, each in its own transaction. They are forward-only:
// a file, once released, is never edited (the runner refuses a checksum
// change) and a correction is a new file. Each domain owns the files that
// create its tables.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
