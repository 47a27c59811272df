// Package sql holds every service's schema migrations (goose files, also
// sqlc's schema) and queries, and embeds the migrations into the binary.
package sql

import (
	"embed"
	"io/fs"
)

//go:embed */migrations/*.sql
var migrations embed.FS

// Migrations returns the goose migrations of a service ("loms", ...).
func Migrations(service string) (fs.FS, error) {
	return fs.Sub(migrations, service+"/migrations")
}
