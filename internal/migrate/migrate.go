// Package migrate applies a service's embedded goose migrations at start-up.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	minizonsql "github.com/minizon/minizon/sql"
)

// Up brings the schema of database url up to date with the service's
// migrations. A Postgres session advisory lock makes it safe for several
// replicas starting at once: one migrates, the others wait and find nothing
// left to do.
func Up(ctx context.Context, url, service string) error {
	fsys, err := minizonsql.Migrations(service)
	if err != nil {
		return fmt.Errorf("migrations of %s: %w", service, err)
	}
	return up(ctx, url, fsys)
}

func up(ctx context.Context, url string, fsys fs.FS) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return closeDB(db)
}

func closeDB(db *sql.DB) error {
	if err := db.Close(); err != nil {
		return fmt.Errorf("close migration connection: %w", err)
	}
	return nil
}
