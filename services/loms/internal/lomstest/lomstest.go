// Package lomstest sets up LOMS's real dependencies for tests: a migrated
// database per test and a store with stock in it.
package lomstest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/wire"
)

// newPool returns a pool on a fresh, migrated LOMS database, large enough
// for concurrency tests.
func newPool(t testing.TB, c *pgtest.Cluster) *pgxpool.Pool {
	t.Helper()
	url := c.NewDatabase(t, "loms", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "loms")
	})
	pool, err := pgxpool.New(t.Context(), url+"&pool_max_conns=40")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewStore returns a store on a fresh database holding the given stock.
func NewStore(t testing.TB, c *pgtest.Cluster, now func() time.Time, stocks ...order.Stock) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := newPool(t, c)
	st := store.New(pool, wire.EncodeEvent, now)
	if len(stocks) > 0 {
		if _, err := st.SeedStocks(t.Context(), stocks); err != nil {
			t.Fatal(err)
		}
	}
	return st, pool
}

// Clock is a settable clock for tests, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Totals sums stock over all rows: units held and units reserved, and the
// units in open reservations, for invariant checks.
func Totals(t testing.TB, pool *pgxpool.Pool) (total, reserved, inReservations int64) {
	t.Helper()
	err := pool.QueryRow(t.Context(), `SELECT
		(SELECT COALESCE(sum(total), 0) FROM stocks)::bigint,
		(SELECT COALESCE(sum(reserved), 0) FROM stocks)::bigint,
		(SELECT COALESCE(sum(count), 0) FROM reservations)::bigint`).Scan(&total, &reserved, &inReservations)
	if err != nil {
		t.Fatal(err)
	}
	return total, reserved, inReservations
}
