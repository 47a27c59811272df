// Package store keeps LOMS's orders, stock and outbox in Postgres. Every
// method is one transaction; sqlc rows never leave this package.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"

	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// relayLockKey is the advisory lock that lets one outbox relay publish at a
// time ("outbox" in ASCII).
const relayLockKey = 0x6f7574626f78

// Encoder turns an event into the bytes published for it.
type Encoder func(order.Event) ([]byte, error)

// Store is the Postgres implementation of order.Repository and
// outbox.Source.
type Store struct {
	pool   *pgxpool.Pool
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

// beginTx opens a transaction in a pipeline. READ COMMITTED is pinned,
// whatever the server's default: the locking (FOR UPDATE re-checks, SKIP
// LOCKED, waits on the idempotency index, the relay's view of new outbox
// rows) relies on each statement seeing what committed before it.
const beginTx = "BEGIN ISOLATION LEVEL READ COMMITTED"

// withConn runs fn on one pooled connection. A transaction that fn leaves
// open, because it failed or found nothing to do, is rolled back before the
// connection goes back to the pool; if even that fails, the pool drops the
// connection.
func (s *Store) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := s.pool.Acquire(ctx)
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

// Create implements order.Repository in two round trips: the order's row
// and the stock locks first, then, once reserve has planned from the locked
// rows, everything else with the commit. A retry with a used idempotency key
// takes the stock locks too, for one more round trip before it rolls back:
// the price of not spending a round trip on every first attempt.
func (s *Store) Create(ctx context.Context, o *order.Order, key string,
	reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	skus, counts := make([]int64, len(o.Items)), make([]int64, len(o.Items))
	for i, it := range o.Items {
		skus[i], counts[i] = int64(it.SKU), int64(it.Count)
	}
	var existing int64
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var (
			first    pipeline
			id       int64
			conflict bool
			rows     []db.Stock
		)
		first.exec(beginTx)
		first.add(func(q *db.Queries) (err error) {
			id, err = q.InsertOrder(ctx, db.InsertOrderParams{
				UserID:         o.User,
				Status:         dbStatus(o.Status),
				IdempotencyKey: pgtype.Text{String: key, Valid: key != ""},
				CreatedAt:      o.CreatedAt,
				PayBy:          o.PayBy,
			})
			if errors.Is(err, pgx.ErrNoRows) {
				// The key was used before: that order is the answer.
				conflict = true
				return nil
			}
			return wrap("insert order", err)
		})
		first.add(func(q *db.Queries) (err error) {
			rows, err = q.LockStocks(ctx, skus)
			return wrap("lock stocks", err)
		})
		if err := first.send(ctx, conn); err != nil {
			return err
		}
		if conflict {
			var err error
			existing, err = db.New(conn).GetOrderByIdempotencyKey(ctx,
				db.GetOrderByIdempotencyKeyParams{UserID: o.User, IdempotencyKey: key})
			return wrap("find order by idempotency key", err)
		}
		o.ID = id
		stocks := make([]order.Stock, len(rows))
		for i, r := range rows {
			stocks[i] = order.Stock{SKU: uint32(r.Sku), Warehouse: r.WarehouseID, Total: uint64(r.Total), Reserved: uint64(r.Reserved)}
		}
		plan, err := reserve(stocks)
		if err != nil {
			return err
		}
		var rest pipeline
		rest.add(func(q *db.Queries) error {
			return wrap("insert order items", q.InsertOrderItems(ctx, db.InsertOrderItemsParams{OrderID: id, Skus: skus, Counts: counts}))
		})
		queueReservations(ctx, &rest, id, plan)
		if err := s.queueChanges(ctx, &rest, o, o.CreatedAt); err != nil {
			return err
		}
		rest.exec("COMMIT")
		return rest.send(ctx, conn)
	})
	if err != nil {
		return nil, err
	}
	if existing != 0 {
		return s.Get(ctx, existing)
	}
	return o, nil
}

func queueReservations(ctx context.Context, p *pipeline, orderID int64, plan []order.Reservation) {
	if len(plan) == 0 {
		return
	}
	skus, whs, counts := make([]int64, len(plan)), make([]int64, len(plan)), make([]int64, len(plan))
	for i, r := range plan {
		skus[i], whs[i], counts[i] = int64(r.SKU), r.Warehouse, int64(r.Count)
	}
	p.add(func(q *db.Queries) error {
		return wrap("reserve stocks", q.ReserveStocks(ctx, db.ReserveStocksParams{Skus: skus, WarehouseIds: whs, Counts: counts}))
	})
	p.add(func(q *db.Queries) error {
		return wrap("insert reservations", q.InsertReservations(ctx,
			db.InsertReservationsParams{OrderID: orderID, Skus: skus, WarehouseIds: whs, Counts: counts}))
	})
}

// queueChanges queues the order's new status and one outbox event per
// change.
func (s *Store) queueChanges(ctx context.Context, p *pipeline, o *order.Order, at time.Time) error {
	if len(o.Changes()) == 0 {
		return nil
	}
	status := db.UpdateOrderStatusParams{Status: dbStatus(o.Status), UpdatedAt: at, ID: o.ID}
	p.add(func(q *db.Queries) error { return wrap("update order status", q.UpdateOrderStatus(ctx, status)) })
	events := o.Events(at)
	outboxRows := db.InsertOutboxParams{
		EventIds:  make([]pgtype.UUID, len(events)),
		OrderIds:  make([]int64, len(events)),
		Payloads:  make([][]byte, len(events)),
		CreatedAt: at,
	}
	// The request's trace context travels with the events, so that their
	// consumers' spans link to the change that caused them.
	trace := propagation.MapCarrier{}
	telemetry.Propagator().Inject(ctx, trace)
	outboxRows.Traceparent = optionalText(trace.Get("traceparent"))
	outboxRows.Tracestate = optionalText(trace.Get("tracestate"))
	for i, e := range events {
		payload, err := s.encode(e)
		if err != nil {
			return err
		}
		outboxRows.EventIds[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
		outboxRows.OrderIds[i] = e.OrderID
		outboxRows.Payloads[i] = payload
	}
	p.add(func(q *db.Queries) error { return wrap("insert outbox events", q.InsertOutbox(ctx, outboxRows)) })
	return nil
}

// Get implements order.Repository in one round trip.
func (s *Store) Get(ctx context.Context, id int64) (*order.Order, error) {
	var o *order.Order
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var p pipeline
		s.queueLoad(ctx, &p, id, false, &o)
		return p.send(ctx, conn)
	})
	if err != nil {
		return nil, err
	}
	return o, nil
}

// queueLoad queues the reads of order id, locked for update if forUpdate,
// into *o. ErrNotFound for an unknown id.
func (s *Store) queueLoad(ctx context.Context, p *pipeline, id int64, forUpdate bool, o **order.Order) {
	var row db.GetOrderForUpdateRow
	p.add(func(q *db.Queries) (err error) {
		if forUpdate {
			row, err = q.GetOrderForUpdate(ctx, id)
			return notFound("lock order", err)
		}
		var r db.GetOrderRow
		r, err = q.GetOrder(ctx, id)
		row = db.GetOrderForUpdateRow(r)
		return notFound("get order", err)
	})
	p.add(func(q *db.Queries) error {
		items, err := q.ListOrderItems(ctx, id)
		if err != nil {
			return fmt.Errorf("list order items: %w", err)
		}
		status, err := order.ParseStatus(string(row.Status))
		if err != nil {
			return err
		}
		*o = &order.Order{ID: row.ID, User: row.UserID, Status: status, CreatedAt: row.CreatedAt, PayBy: row.PayBy,
			Items: make([]order.Item, len(items))}
		for i, it := range items {
			(*o).Items[i] = order.Item{SKU: uint32(it.Sku), Count: uint32(it.Count)}
		}
		return nil
	})
}

// Update implements order.Repository in two round trips: the order locked
// and read, then its changes stored with the commit.
func (s *Store) Update(ctx context.Context, id int64, fn func(*order.Order) error) error {
	return s.withConn(ctx, func(conn *pgx.Conn) error {
		var p pipeline
		p.exec(beginTx)
		return s.update(ctx, conn, &p, id, fn)
	})
}

// update adds the locking read of order id to p, an open transaction's
// pending statements, sends it, applies fn and commits what it changed.
func (s *Store) update(ctx context.Context, conn *pgx.Conn, p *pipeline, id int64, fn func(*order.Order) error) error {
	var o *order.Order
	s.queueLoad(ctx, p, id, true, &o)
	if err := p.send(ctx, conn); err != nil {
		return err
	}
	if err := fn(o); err != nil {
		return err
	}
	var rest pipeline
	for _, c := range o.Changes() {
		queueStockEffect(ctx, &rest, id, c.StockEffect())
	}
	if err := s.queueChanges(ctx, &rest, o, s.now()); err != nil {
		return err
	}
	rest.exec("COMMIT")
	return rest.send(ctx, conn)
}

func queueStockEffect(ctx context.Context, p *pipeline, orderID int64, effect order.StockEffect) {
	if effect == order.KeepStock {
		return
	}
	// Lock the stock rows in the same global order as CreateOrder does, so
	// the two cannot deadlock.
	p.add(func(q *db.Queries) error {
		_, err := q.LockReservedStocks(ctx, orderID)
		return wrap("lock reserved stocks", err)
	})
	p.add(func(q *db.Queries) error {
		if effect == order.ReleaseStock {
			return wrap("release reservations", q.ReleaseReservations(ctx, orderID))
		}
		return wrap("write off reservations", q.WriteOffReservations(ctx, orderID))
	})
}

// UpdateExpired implements order.Repository. Each order is updated in a
// transaction of its own: a transaction holding several orders' stock locks
// could deadlock with CreateOrder's globally ordered locking.
func (s *Store) UpdateExpired(ctx context.Context, now time.Time, max int, fn func(*order.Order) error) (int, error) {
	n := 0
	for n < max {
		found := false
		err := s.withConn(ctx, func(conn *pgx.Conn) error {
			var (
				claim pipeline
				ids   []int64
			)
			claim.exec(beginTx)
			claim.add(func(q *db.Queries) (err error) {
				ids, err = q.LockExpiredOrders(ctx, db.LockExpiredOrdersParams{Now: now, MaxOrders: 1})
				return wrap("lock expired orders", err)
			})
			if err := claim.send(ctx, conn); err != nil || len(ids) == 0 {
				return err
			}
			found = true
			// The order is locked already; reading it FOR UPDATE again costs
			// a round trip but shares Update's path. The sweeper is not on
			// any caller's path.
			var p pipeline
			return s.update(ctx, conn, &p, ids[0], fn)
		})
		if err != nil {
			return n, err
		}
		if !found {
			break
		}
		n++
	}
	return n, nil
}

// Available implements order.Repository.
func (s *Store) Available(ctx context.Context, sku uint32) ([]order.Availability, error) {
	rows, err := db.New(s.pool).ListAvailableStocks(ctx, int64(sku))
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

// PublishBatch implements outbox.Source in two round trips around the
// publishing: the lock and the reads, then the marking and the commit.
func (s *Store) PublishBatch(ctx context.Context, max int,
	publish func(context.Context, outbox.Batch) (outbox.Published, error)) (int, error) {
	n := 0
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var (
			read       pipeline
			locked     bool
			rows       []db.ListUnsentOutboxRow
			partitions []db.OutboxPartition
		)
		read.exec(beginTx)
		read.add(func(q *db.Queries) (err error) {
			locked, err = q.TryLockRelay(ctx, relayLockKey)
			return wrap("lock relay", err)
		})
		// Read in the same round trip; the rows are ignored when another
		// relay holds the lock.
		read.add(func(q *db.Queries) (err error) {
			rows, err = q.ListUnsentOutbox(ctx, int32(max))
			return wrap("list unsent outbox rows", err)
		})
		read.add(func(q *db.Queries) (err error) {
			partitions, err = q.ListOutboxPartitions(ctx)
			return wrap("list outbox partitions", err)
		})
		if err := read.send(ctx, conn); err != nil || !locked || len(rows) == 0 {
			return err
		}
		// The first batch ever (or after upgrading) only stores where the
		// topic ends, in a commit of its own before anything is produced:
		// a relay dying during the next batch then leaves offsets that the
		// one after can reconcile against.
		if len(partitions) == 0 {
			rows = nil
		}
		batch := outbox.Batch{Messages: make([]outbox.Message, len(rows)), Next: make(map[int32]int64, len(partitions))}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			batch.Messages[i] = outbox.Message{ID: r.ID, EventID: r.EventID.Bytes, OrderID: r.OrderID, Payload: r.Payload,
				TraceParent: r.Traceparent.String, TraceState: r.Tracestate.String}
			ids[i] = r.ID
		}
		for _, p := range partitions {
			batch.Next[p.Partition] = p.NextOffset
		}
		published, err := publish(ctx, batch)
		if err != nil {
			return err
		}
		now := s.now()
		var mark pipeline
		mark.add(func(q *db.Queries) error {
			return wrap("mark outbox sent", q.MarkOutboxSent(ctx, db.MarkOutboxSentParams{SentAt: now, Ids: ids}))
		})
		if len(published.Found) > 0 {
			found := make([]pgtype.UUID, len(published.Found))
			for i, id := range published.Found {
				found[i] = pgtype.UUID{Bytes: id, Valid: true}
			}
			mark.add(func(q *db.Queries) error {
				return wrap("mark found events sent", q.MarkOutboxEventsSent(ctx,
					db.MarkOutboxEventsSentParams{SentAt: now, EventIds: found}))
			})
		}
		progress := db.SaveOutboxPartitionsParams{
			Partitions:  make([]int32, 0, len(published.Next)),
			NextOffsets: make([]int64, 0, len(published.Next)),
		}
		for p, next := range published.Next {
			progress.Partitions = append(progress.Partitions, p)
			progress.NextOffsets = append(progress.NextOffsets, next)
		}
		mark.add(func(q *db.Queries) error {
			return wrap("save outbox partitions", q.SaveOutboxPartitions(ctx, progress))
		})
		mark.exec("COMMIT")
		if err := mark.send(ctx, conn); err != nil {
			return err
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("publish outbox batch: %w", err)
	}
	return n, nil
}

// DeleteSent implements outbox.Source.
func (s *Store) DeleteSent(ctx context.Context, before time.Time) (int64, error) {
	n, err := db.New(s.pool).DeleteSentOutbox(ctx, before)
	if err != nil {
		return 0, fmt.Errorf("delete sent outbox rows: %w", err)
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

func optionalText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }

func dbStatus(st order.Status) db.OrderStatus { return db.OrderStatus(st.String()) }

// wrap names the failed step of err; nil stays nil.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// notFound maps pgx.ErrNoRows to the domain's ErrNotFound; what names the
// failed step otherwise. nil stays nil.
func notFound(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return order.ErrNotFound
	}
	return fmt.Errorf("%s: %w", what, err)
}
