// Package pgpool opens a service's Postgres database: its schema migrated,
// a connection pool sized for the service.
package pgpool

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/migrate"
)

// DefaultMaxConns sizes a pool unless its URL sets pool_max_conns: pgxpool's
// own default (the number of CPUs, at least 4) queues concurrent requests
// behind each other on small machines, and LOMS's relay holds one connection
// while Kafka acknowledges.
const DefaultMaxConns = 20

// Open brings the service's schema up to date (safe with replicas starting
// at once) and opens a pool on url. service names the migrations and the
// database in errors.
func Open(ctx context.Context, service, url string) (*pgxpool.Pool, error) {
	if err := migrate.Up(ctx, url, service); err != nil {
		return nil, fmt.Errorf("%s database: %w", service, err)
	}
	return open(ctx, service, url)
}

// OpenReplica opens a pool on url, a read-only standby of the service's
// database, whose schema the primary's migrations bring.
func OpenReplica(ctx context.Context, service, url string) (*pgxpool.Pool, error) {
	return open(ctx, service+" read replica", url)
}

func open(ctx context.Context, service, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s database URL: %w", service, err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s database: %w", service, err)
	}
	return pool, nil
}
