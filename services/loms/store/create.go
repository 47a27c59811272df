package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"

	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// draft is a new order waiting to be stored.
type draft struct {
	order *order.Order
	// initial is the order as it came, for a retry of its batch: a failed
	// attempt leaves order planned.
	initial *order.Order
	key     string
	reserve func([]order.Stock) ([]order.Reservation, error)
	trace   trace
}

// trace is the W3C trace context of the request that made a change, passed
// on with its events so that their consumers' spans link to it.
type trace struct{ parent, state string }

func traceOf(ctx context.Context) trace {
	c := propagation.MapCarrier{}
	telemetry.Propagator().Inject(ctx, c)
	return trace{parent: c.Get("traceparent"), state: c.Get("tracestate")}
}

func newDraft(ctx context.Context, o *order.Order, key string, reserve func([]order.Stock) ([]order.Reservation, error)) *draft {
	// Postgres keeps microseconds: the order holds what will be stored.
	o.CreatedAt = o.CreatedAt.Truncate(time.Microsecond)
	o.PayBy = o.PayBy.Truncate(time.Microsecond)
	return &draft{order: o, initial: o.Clone(), key: key, reserve: reserve, trace: traceOf(ctx)}
}

// outcome is what became of one draft: its order, new or the earlier one
// with its idempotency key, or its own error.
type outcome struct {
	order *order.Order
	err   error
}

// draftError is the failure of one draft of a batch on its own (its
// planning, or the encoding of its events): the others can be stored
// without it.
type draftError struct {
	index int
	err   error
}

func (e *draftError) Error() string { return fmt.Sprintf("order %d of the batch: %v", e.index, e.err) }
func (e *draftError) Unwrap() error { return e.err }

// Create implements order.Repository: a batch of one, in a transaction of
// its own.
func (s *Store) Create(ctx context.Context, o *order.Order, key string,
	reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	outs, err := s.createBatch(ctx, []*draft{newDraft(ctx, o, key, reserve)})
	if err != nil {
		var de *draftError
		if errors.As(err, &de) {
			return nil, de.err
		}
		return nil, err
	}
	return outs[0].order, outs[0].err
}

// userKey is an idempotency key, which is unique per user.
type userKey struct {
	user int64
	key  string
}

// createBatch stores new orders in one transaction of two round trips:
//  1. the orders' rows, and the stock rows of all their skus, locked once
//     in the global (sku, warehouse) order;
//  2. after every order was planned in turn against the locked rows (first
//     come, first served), the items, the stock rows' reserved counts, the
//     reservations, the statuses, the events and the commit.
//
// A draft that repeats an idempotency key, of an earlier order or of an
// earlier draft in the batch, stores nothing: its outcome is that order,
// read after the commit. If one draft's planning or events fail, the whole
// transaction is rolled back and a *draftError names that draft, so that
// the caller can retry the rest without it.
func (s *Store) createBatch(ctx context.Context, drafts []*draft) ([]outcome, error) {
	outs := make([]outcome, len(drafts))
	// repeats[i] is the earlier draft with i's key, or -1.
	repeats := make([]int, len(drafts))
	firstWithKey := make(map[userKey]int)
	var fresh []int
	for i, d := range drafts {
		// The reserve function holds d.order: reset it in place.
		*d.order = *d.initial.Clone()
		repeats[i] = -1
		if d.key != "" {
			k := userKey{d.order.User, d.key}
			if j, ok := firstWithKey[k]; ok {
				repeats[i] = j
				continue
			}
			firstWithKey[k] = i
		}
		fresh = append(fresh, i)
	}
	var used []int // drafts whose key an earlier order holds
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		ids, stocks, err := insertAndLock(ctx, conn, drafts, fresh)
		if err != nil {
			return err
		}
		var created []int
		for _, i := range fresh {
			if ids[i] == 0 {
				used = append(used, i)
				continue
			}
			drafts[i].order.ID = ids[i]
			created = append(created, i)
		}
		if len(created) == 0 {
			return nil // withConn rolls back the empty transaction
		}
		return s.reserveAndCommit(ctx, conn, drafts, created, newLedger(stocks))
	})
	if err != nil {
		return nil, err
	}
	for _, i := range fresh {
		outs[i].order = drafts[i].order
	}
	for _, i := range used {
		outs[i].order, outs[i].err = s.byKey(ctx, drafts[i].order.User, drafts[i].key)
	}
	for i, j := range repeats {
		if j >= 0 {
			outs[i] = outs[j]
		}
	}
	return outs, nil
}

// insertAndLock is the first round trip of createBatch: it opens the
// transaction, inserts the fresh drafts' orders and locks the stock rows of
// their skus. It returns each inserted draft's order id by draft index (0
// for a draft whose key an earlier order holds) and the locked rows.
func insertAndLock(ctx context.Context, conn *pgx.Conn, drafts []*draft, fresh []int) (map[int]int64, []db.Stock, error) {
	// Sorted by (user, key): two batches wait for each other's keys in one
	// order, so they cannot deadlock on the idempotency index.
	byKey := slices.Clone(fresh)
	slices.SortStableFunc(byKey, func(a, b int) int {
		return cmp.Or(cmp.Compare(drafts[a].order.User, drafts[b].order.User), cmp.Compare(drafts[a].key, drafts[b].key))
	})
	n := len(byKey)
	users, keys := make([]int64, n), make([]string, n)
	createdAts, payBys := make([]time.Time, n), make([]time.Time, n)
	var skus []int64
	for j, i := range byKey {
		o := drafts[i].order
		users[j], keys[j], createdAts[j], payBys[j] = o.User, drafts[i].key, o.CreatedAt, o.PayBy
		for _, it := range o.Items {
			skus = append(skus, int64(it.SKU))
		}
	}
	slices.Sort(skus)
	skus = slices.Compact(skus)

	var (
		inserted []db.InsertOrdersRow
		stocks   []db.Stock
	)
	b := &pgx.Batch{}
	b.Queue(beginTx)
	rowsIn(b, &inserted, "insert orders", db.InsertOrders, users, keys, createdAts, payBys)
	rowsIn(b, &stocks, "lock stocks", db.LockStocks, skus)
	if err := send(ctx, conn, b); err != nil {
		return nil, nil, err
	}

	// The returned rows name their drafts: a key by its user and key; keyless
	// orders of one user by their times (drafts alike in all three are alike
	// in every column stored so far, so either may take either id).
	type keyless struct{ user, created, payBy int64 }
	withKey := make(map[userKey]int, n)
	without := make(map[keyless][]int)
	for _, i := range byKey {
		o := drafts[i].order
		if drafts[i].key != "" {
			withKey[userKey{o.User, drafts[i].key}] = i
			continue
		}
		k := keyless{o.User, o.CreatedAt.UnixMicro(), o.PayBy.UnixMicro()}
		without[k] = append(without[k], i)
	}
	ids := make(map[int]int64, len(inserted))
	for _, r := range inserted {
		if r.IdempotencyKey != "" {
			ids[withKey[userKey{r.UserID, r.IdempotencyKey}]] = r.ID
			continue
		}
		k := keyless{r.UserID, r.CreatedAt.UnixMicro(), r.PayBy.UnixMicro()}
		if len(without[k]) == 0 {
			return nil, nil, fmt.Errorf("insert orders: returned order %d matches no request", r.ID)
		}
		ids[without[k][0]] = r.ID
		without[k] = without[k][1:]
	}
	return ids, stocks, nil
}

// reserveAndCommit plans the created drafts' reservations in arrival order
// against the locked stock rows and sends the second round trip of
// createBatch: everything the orders hold, and the commit.
func (s *Store) reserveAndCommit(ctx context.Context, conn *pgx.Conn, drafts []*draft, created []int, l *ledger) error {
	var items, res struct{ orders, skus, warehouses, counts []int64 }
	orders := make([]*order.Order, len(created))
	traces := make([]trace, len(created))
	for j, i := range created {
		d := drafts[i]
		plan, err := d.reserve(l.rowsOf(d.order.Items))
		if err != nil {
			return &draftError{index: i, err: err}
		}
		l.take(plan)
		for _, it := range d.order.Items {
			items.orders = append(items.orders, d.order.ID)
			items.skus = append(items.skus, int64(it.SKU))
			items.counts = append(items.counts, int64(it.Count))
		}
		for _, r := range plan {
			res.orders = append(res.orders, d.order.ID)
			res.skus = append(res.skus, int64(r.SKU))
			res.warehouses = append(res.warehouses, r.Warehouse)
			res.counts = append(res.counts, int64(r.Count))
		}
		orders[j], traces[j] = d.order, d.trace
	}

	b := &pgx.Batch{}
	execIn(b, "insert order items", db.InsertOrderItems, items.orders, items.skus, items.counts)
	if len(res.orders) > 0 {
		skus, warehouses, counts := l.reservedSinceLocked()
		execIn(b, "reserve stocks", db.ReserveStocks, skus, warehouses, counts)
		execIn(b, "insert reservations", db.InsertReservations, res.orders, res.skus, res.warehouses, res.counts)
	}
	if err := s.queueChanges(b, orders, traces, s.now()); err != nil {
		var de *draftError
		if errors.As(err, &de) {
			de.index = created[de.index]
		}
		return err
	}
	b.Queue("COMMIT")
	return send(ctx, conn, b)
}

// byKey returns the order that user made with idempotency key.
func (s *Store) byKey(ctx context.Context, user int64, key string) (*order.Order, error) {
	id, err := db.New(s.pool).GetOrderByIdempotencyKey(ctx, db.GetOrderByIdempotencyKeyParams{UserID: user, IdempotencyKey: key})
	if err != nil {
		return nil, wrap("find order by idempotency key", err)
	}
	return s.Get(ctx, id)
}

// ledger is the stock rows a batch locked, as the orders planned so far
// leave them.
type ledger struct {
	rows   []order.Stock // by sku and warehouse, as locked
	locked []uint64      // each row's reserved units when locked
}

func newLedger(stocks []db.Stock) *ledger {
	l := &ledger{rows: make([]order.Stock, len(stocks)), locked: make([]uint64, len(stocks))}
	for i, r := range stocks {
		l.rows[i] = order.Stock{SKU: uint32(r.Sku), Warehouse: r.WarehouseID, Total: uint64(r.Total), Reserved: uint64(r.Reserved)}
		l.locked[i] = uint64(r.Reserved)
	}
	return l
}

// span is where sku's rows are.
func (l *ledger) span(sku uint32) (int, int) {
	lo, _ := slices.BinarySearchFunc(l.rows, sku, func(s order.Stock, sku uint32) int { return cmp.Compare(s.SKU, sku) })
	hi := lo
	for hi < len(l.rows) && l.rows[hi].SKU == sku {
		hi++
	}
	return lo, hi
}

// rowsOf copies the rows of the items' skus.
func (l *ledger) rowsOf(items []order.Item) []order.Stock {
	var out []order.Stock
	for _, it := range items {
		lo, hi := l.span(it.SKU)
		out = append(out, l.rows[lo:hi]...)
	}
	return out
}

// take counts a plan's units as reserved. A plan that names no locked row
// or takes more than a row holds is left for the database to refuse (its
// CHECK on reserved <= total is the last line of defence).
func (l *ledger) take(plan []order.Reservation) {
	for _, r := range plan {
		lo, hi := l.span(r.SKU)
		for i := lo; i < hi; i++ {
			if l.rows[i].Warehouse == r.Warehouse {
				l.rows[i].Reserved += r.Count
			}
		}
	}
}

// reservedSinceLocked lists the rows whose reserved units grew, and by how
// much: one element per row, as ReserveStocks needs.
func (l *ledger) reservedSinceLocked() (skus, warehouses, counts []int64) {
	for i, r := range l.rows {
		if d := r.Reserved - l.locked[i]; d > 0 {
			skus = append(skus, int64(r.SKU))
			warehouses = append(warehouses, r.Warehouse)
			counts = append(counts, int64(d))
		}
	}
	return skus, warehouses, counts
}
