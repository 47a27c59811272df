// Package store keeps LOMS's orders, stock and outbox in Postgres. Every
// method is one transaction; sqlc rows never leave this package.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// RelayLockKey is the advisory lock that lets one outbox relay publish at a
// time ("outbox" in ASCII). A session holding it pauses every relay.
const RelayLockKey = 0x6f7574626f78

// Encoder turns an event into the bytes published for it.
type Encoder func(order.Event) ([]byte, error)

// Store is the Postgres implementation of order.Repository and
// outbox.Source.
type Store struct {
	pool *pgxpool.Pool
	// reads serves Available and ListByUser when set: a standby, whose
	// lag those reads can afford.
	reads  *pgxpool.Pool
	encode Encoder
	now    func() time.Time
}

// New returns a Store; now is the clock used for timestamps.
func New(pool *pgxpool.Pool, encode Encoder, now func() time.Time) *Store {
	return &Store{pool: pool, encode: encode, now: now}
}

var (
	_ order.Repository = (*Store)(nil)
	_ outbox.Source    = (*Store)(nil)
)

// beginTx opens each transaction, as the first statement of an explicit
// batch. READ COMMITTED is pinned, whatever the server's default: the
// locking (FOR UPDATE re-checks, SKIP LOCKED, waits on the idempotency
// index, the relay's view of new outbox rows) relies on each statement
// seeing what committed before it.
const beginTx = "BEGIN ISOLATION LEVEL READ COMMITTED"

// ReadFrom makes Available (Stocks) and ListByUser (ListOrders) read from
// replica, a standby that may lag the primary by a moment, and from the
// primary whenever the replica cannot be reached or cancels the read. No
// other method reads from it: what a write decides on is read on the
// primary, in its transaction.
func (s *Store) ReadFrom(replica *pgxpool.Pool) { s.reads = replica }

// readConn runs fn on a connection of the replica, if there is one, or of
// the primary, which also takes over a read the replica could not serve.
func (s *Store) readConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	if s.reads == nil {
		return s.withConn(ctx, fn)
	}
	err := withConnOn(ctx, s.reads, fn)
	if err != nil && ctx.Err() == nil && replicaUnusable(err) {
		return s.withConn(ctx, fn)
	}
	return err
}

// replicaUnusable tells whether a read failed for the replica's sake, not
// the query's: it could not be reached, dropped the connection before
// anything was sent, is starting up, or cancelled the read in a conflict
// with replaying the primary's changes.
func replicaUnusable(err error) bool {
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P03" || pgErr.Code == "40001"
	}
	return false
}

// withConn runs fn on one pooled connection. A transaction that fn leaves
// open, because it failed or found nothing to do, is rolled back before the
// connection goes back to the pool; if even that fails, the pool drops the
// connection.
func (s *Store) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	return withConnOn(ctx, s.pool, fn)
}

func withConnOn(ctx context.Context, pool *pgxpool.Pool, fn func(*pgx.Conn) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer c.Release()
	err = fn(c.Conn())
	if !c.Conn().IsClosed() && c.Conn().PgConn().TxStatus() != 'I' {
		// After a failure the error that matters is fn's. The rollback runs
		// even if ctx is done, but not forever.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = c.Exec(rctx, "ROLLBACK")
	}
	return err
}

// Available implements order.Repository.
func (s *Store) Available(ctx context.Context, sku uint32) ([]order.Availability, error) {
	var rows []db.ListAvailableStocksRow
	err := s.readConn(ctx, func(conn *pgx.Conn) error {
		var err error
		rows, err = db.New(conn).ListAvailableStocks(ctx, int64(sku))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list stocks: %w", err)
	}
	out := make([]order.Availability, len(rows))
	for i, r := range rows {
		out[i] = order.Availability{Warehouse: r.WarehouseID, Count: uint64(r.Available)}
	}
	return out, nil
}

// SeedStocks adds stock rows that do not exist yet and returns how many it
// added; existing rows keep their counts.
func (s *Store) SeedStocks(ctx context.Context, stocks []order.Stock) (int64, error) {
	p := db.SeedStocksParams{
		Skus: make([]int64, len(stocks)), WarehouseIds: make([]int64, len(stocks)), Totals: make([]int64, len(stocks)),
	}
	for i, st := range stocks {
		p.Skus[i], p.WarehouseIds[i], p.Totals[i] = int64(st.SKU), st.Warehouse, int64(st.Total)
	}
	n, err := db.New(s.pool).SeedStocks(ctx, p)
	if err != nil {
		return 0, fmt.Errorf("seed stocks: %w", err)
	}
	return n, nil
}

// Backlog implements outbox.BacklogReader.
func (s *Store) Backlog(ctx context.Context) (outbox.Backlog, error) {
	row, err := db.New(s.pool).OutboxBacklog(ctx)
	if err != nil {
		return outbox.Backlog{}, fmt.Errorf("count unsent outbox rows: %w", err)
	}
	return outbox.Backlog{Unsent: row.Unsent, OldestAge: time.Duration(row.OldestAgeSeconds * float64(time.Second))}, nil
}

// wrap names the failed step of err; nil stays nil.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
