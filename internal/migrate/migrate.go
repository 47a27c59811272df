// Package migrate applies a service's embedded goose migrations at start-up.
package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	minizonsql "github.com/minizon/minizon/sql"
)

// Up brings the schema of database url up to date with the service's
// migrations. A Postgres session advisory lock makes it safe for several
// replicas starting at once: one migrates, the others wait and find nothing
// left to do. Its connections are closed when it returns, so the database
// can serve as a template right after.
func Up(ctx context.Context, url, service string) error {
	fsys, err := minizonsql.Migrations(service)
	if err != nil {
		return fmt.Errorf("migrations of %s: %w", service, err)
	}
	// pgxpool's parser accepts (and strips) pool settings such as
	// pool_max_conns that the URL may carry for the service's pool.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg.ConnConfig)
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
	return nil
}
