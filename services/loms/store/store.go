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

// inTx runs fn in a transaction. READ COMMITTED is pinned, whatever the
// server's default: the locking (FOR UPDATE re-checks, SKIP LOCKED, waits on
// the idempotency index, the relay's view of new outbox rows) relies on each
// statement seeing what committed before it.
func (s *Store) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// A no-op once committed; after a failure the error that matters is fn's.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(db.New(tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Create implements order.Repository.
func (s *Store) Create(ctx context.Context, o *order.Order, key string,
	reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	var existing int64
	err := s.inTx(ctx, func(q *db.Queries) error {
		id, err := q.InsertOrder(ctx, db.InsertOrderParams{
			UserID:         o.User,
			Status:         dbStatus(o.Status),
			IdempotencyKey: pgtype.Text{String: key, Valid: key != ""},
			CreatedAt:      o.CreatedAt,
			PayBy:          o.PayBy,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			// The key was used before: that order is the answer.
			existing, err = q.GetOrderByIdempotencyKey(ctx, db.GetOrderByIdempotencyKeyParams{UserID: o.User, IdempotencyKey: key})
			if err != nil {
				return fmt.Errorf("find order by idempotency key: %w", err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("insert order: %w", err)
		}
		o.ID = id
		skus, counts := make([]int64, len(o.Items)), make([]int64, len(o.Items))
		for i, it := range o.Items {
			skus[i], counts[i] = int64(it.SKU), int64(it.Count)
		}
		if err := q.InsertOrderItems(ctx, db.InsertOrderItemsParams{OrderID: id, Skus: skus, Counts: counts}); err != nil {
			return fmt.Errorf("insert order items: %w", err)
		}
		rows, err := q.LockStocks(ctx, skus)
		if err != nil {
			return fmt.Errorf("lock stocks: %w", err)
		}
		stocks := make([]order.Stock, len(rows))
		for i, r := range rows {
			stocks[i] = order.Stock{SKU: uint32(r.Sku), Warehouse: r.WarehouseID, Total: uint64(r.Total), Reserved: uint64(r.Reserved)}
		}
		plan, err := reserve(stocks)
		if err != nil {
			return err
		}
		if err := s.reserve(ctx, q, id, plan); err != nil {
			return err
		}
		return s.saveChanges(ctx, q, o, o.CreatedAt)
	})
	if err != nil {
		return nil, err
	}
	if existing != 0 {
		return s.Get(ctx, existing)
	}
	return o, nil
}

func (s *Store) reserve(ctx context.Context, q *db.Queries, orderID int64, plan []order.Reservation) error {
	if len(plan) == 0 {
		return nil
	}
	skus, whs, counts := make([]int64, len(plan)), make([]int64, len(plan)), make([]int64, len(plan))
	for i, r := range plan {
		skus[i], whs[i], counts[i] = int64(r.SKU), r.Warehouse, int64(r.Count)
	}
	if err := q.ReserveStocks(ctx, db.ReserveStocksParams{Skus: skus, WarehouseIds: whs, Counts: counts}); err != nil {
		return fmt.Errorf("reserve stocks: %w", err)
	}
	if err := q.InsertReservations(ctx, db.InsertReservationsParams{OrderID: orderID, Skus: skus, WarehouseIds: whs, Counts: counts}); err != nil {
		return fmt.Errorf("insert reservations: %w", err)
	}
	return nil
}

// saveChanges stores the order's new status and one outbox event per change.
func (s *Store) saveChanges(ctx context.Context, q *db.Queries, o *order.Order, at time.Time) error {
	if len(o.Changes()) == 0 {
		return nil
	}
	if err := q.UpdateOrderStatus(ctx, db.UpdateOrderStatusParams{Status: dbStatus(o.Status), UpdatedAt: at, ID: o.ID}); err != nil {
		return fmt.Errorf("update order status: %w", err)
	}
	events := o.Events(at)
	p := db.InsertOutboxParams{
		EventIds:  make([]pgtype.UUID, len(events)),
		OrderIds:  make([]int64, len(events)),
		Payloads:  make([][]byte, len(events)),
		CreatedAt: at,
	}
	// The request's trace context travels with the events, so that their
	// consumers' spans link to the change that caused them.
	trace := propagation.MapCarrier{}
	telemetry.Propagator().Inject(ctx, trace)
	p.Traceparent = optionalText(trace.Get("traceparent"))
	p.Tracestate = optionalText(trace.Get("tracestate"))
	for i, e := range events {
		payload, err := s.encode(e)
		if err != nil {
			return err
		}
		p.EventIds[i] = pgtype.UUID{Bytes: e.ID, Valid: true}
		p.OrderIds[i] = e.OrderID
		p.Payloads[i] = payload
	}
	if err := q.InsertOutbox(ctx, p); err != nil {
		return fmt.Errorf("insert outbox events: %w", err)
	}
	return nil
}

// Get implements order.Repository.
func (s *Store) Get(ctx context.Context, id int64) (*order.Order, error) {
	q := db.New(s.pool)
	row, err := q.GetOrder(ctx, id)
	if err != nil {
		return nil, notFound("get order", err)
	}
	return s.load(ctx, q, db.GetOrderForUpdateRow(row))
}

func (s *Store) load(ctx context.Context, q *db.Queries, row db.GetOrderForUpdateRow) (*order.Order, error) {
	status, err := order.ParseStatus(string(row.Status))
	if err != nil {
		return nil, err
	}
	items, err := q.ListOrderItems(ctx, row.ID)
	if err != nil {
		return nil, fmt.Errorf("list order items: %w", err)
	}
	o := &order.Order{ID: row.ID, User: row.UserID, Status: status, CreatedAt: row.CreatedAt, PayBy: row.PayBy,
		Items: make([]order.Item, len(items))}
	for i, it := range items {
		o.Items[i] = order.Item{SKU: uint32(it.Sku), Count: uint32(it.Count)}
	}
	return o, nil
}

// Update implements order.Repository.
func (s *Store) Update(ctx context.Context, id int64, fn func(*order.Order) error) error {
	return s.inTx(ctx, func(q *db.Queries) error { return s.update(ctx, q, id, fn) })
}

func (s *Store) update(ctx context.Context, q *db.Queries, id int64, fn func(*order.Order) error) error {
	row, err := q.GetOrderForUpdate(ctx, id)
	if err != nil {
		return notFound("lock order", err)
	}
	o, err := s.load(ctx, q, row)
	if err != nil {
		return err
	}
	if err := fn(o); err != nil {
		return err
	}
	for _, c := range o.Changes() {
		if err := applyStockEffect(ctx, q, id, c.StockEffect()); err != nil {
			return err
		}
	}
	return s.saveChanges(ctx, q, o, s.now())
}

func applyStockEffect(ctx context.Context, q *db.Queries, orderID int64, effect order.StockEffect) error {
	if effect == order.KeepStock {
		return nil
	}
	// Lock the stock rows in the same global order as CreateOrder does, so
	// the two cannot deadlock.
	if _, err := q.LockReservedStocks(ctx, orderID); err != nil {
		return fmt.Errorf("lock reserved stocks: %w", err)
	}
	var err error
	if effect == order.ReleaseStock {
		err = q.ReleaseReservations(ctx, orderID)
	} else {
		err = q.WriteOffReservations(ctx, orderID)
	}
	if err != nil {
		return fmt.Errorf("apply reservations: %w", err)
	}
	return nil
}

// UpdateExpired implements order.Repository. Each order is updated in a
// transaction of its own: a transaction holding several orders' stock locks
// could deadlock with CreateOrder's globally ordered locking.
func (s *Store) UpdateExpired(ctx context.Context, now time.Time, max int, fn func(*order.Order) error) (int, error) {
	n := 0
	for n < max {
		found := false
		err := s.inTx(ctx, func(q *db.Queries) error {
			ids, err := q.LockExpiredOrders(ctx, db.LockExpiredOrdersParams{Now: now, MaxOrders: 1})
			if err != nil || len(ids) == 0 {
				return err
			}
			found = true
			return s.update(ctx, q, ids[0], fn)
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

// PublishBatch implements outbox.Source.
func (s *Store) PublishBatch(ctx context.Context, max int, publish func(context.Context, []outbox.Message) error) (int, error) {
	n := 0
	err := s.inTx(ctx, func(q *db.Queries) error {
		locked, err := q.TryLockRelay(ctx, relayLockKey)
		if err != nil || !locked {
			return err
		}
		rows, err := q.ListUnsentOutbox(ctx, int32(max))
		if err != nil || len(rows) == 0 {
			return err
		}
		msgs := make([]outbox.Message, len(rows))
		ids := make([]int64, len(rows))
		for i, r := range rows {
			msgs[i] = outbox.Message{ID: r.ID, OrderID: r.OrderID, Payload: r.Payload,
				TraceParent: r.Traceparent.String, TraceState: r.Tracestate.String}
			ids[i] = r.ID
		}
		if err := publish(ctx, msgs); err != nil {
			return err
		}
		if err := q.MarkOutboxSent(ctx, db.MarkOutboxSentParams{SentAt: s.now(), Ids: ids}); err != nil {
			return fmt.Errorf("mark outbox sent: %w", err)
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

// notFound maps pgx.ErrNoRows to the domain's ErrNotFound; what names the
// failed step otherwise.
func notFound(what string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return order.ErrNotFound
	}
	return fmt.Errorf("%s: %w", what, err)
}
