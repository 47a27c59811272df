// Package pgpool opens a service's Postgres connection pool.
package pgpool

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxConns sizes a pool unless its URL sets pool_max_conns: pgxpool's
// own default (the number of CPUs, at least 4) queues concurrent requests
// behind each other on small machines, and LOMS's relay holds one connection
// while Kafka acknowledges.
const DefaultMaxConns = 20

// New opens a pool on url; service names the database in errors.
func New(ctx context.Context, service, url string) (*pgxpool.Pool, error) {
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
