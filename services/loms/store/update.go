package store

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// Get implements order.Repository in one round trip.
func (s *Store) Get(ctx context.Context, id int64) (*order.Order, error) {
	var (
		rows  []db.GetOrderRow
		items []db.OrderItem
	)
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		rowsIn(b, &rows, "get order", db.GetOrder, id)
		rowsIn(b, &items, "list order items", db.ListOrderItems, []int64{id})
		return send(ctx, conn, b)
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, order.ErrNotFound
	}
	orders, err := toOrders([]db.GetOrderRow{rows[0]}, items)
	if err != nil {
		return nil, err
	}
	return orders[0], nil
}

// change is an update of one order, waiting for its batch.
type change struct {
	id    int64
	fn    func(*order.Order) error
	trace trace
}

// Update implements order.Repository: a batch of one, in a transaction of
// its own.
func (s *Store) Update(ctx context.Context, id int64, fn func(*order.Order) error) error {
	errs, err := s.updateBatch(ctx, []*change{{id: id, fn: fn, trace: traceOf(ctx)}})
	if err != nil {
		var de *draftError
		if errors.As(err, &de) {
			return de.err
		}
		return err
	}
	return errs[0]
}

// updateBatch applies changes to their orders in one transaction of two
// round trips: the orders locked and read, then, once each change was
// applied in arrival order (a change sees what the changes before it did
// to its order), what changed and the commit. It returns each change's own
// error: ErrNotFound, or its fn's, which leaves the order as the changes
// before it left it. If an order's events cannot be encoded, a
// *draftError names the first change to that order.
func (s *Store) updateBatch(ctx context.Context, changes []*change) ([]error, error) {
	ids := make([]int64, len(changes))
	for i, c := range changes {
		ids[i] = c.id
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	errs := make([]error, len(changes))
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var (
			rows  []db.LockOrdersRow
			items []db.OrderItem
		)
		b := &pgx.Batch{}
		b.Queue(beginTx)
		rowsIn(b, &rows, "lock orders", db.LockOrders, ids)
		rowsIn(b, &items, "list order items", db.ListOrderItems, ids)
		if err := send(ctx, conn, b); err != nil {
			return err
		}
		loaded := make([]db.GetOrderRow, len(rows))
		for i, r := range rows {
			loaded[i] = db.GetOrderRow(r)
		}
		orders, err := toOrders(loaded, items)
		if err != nil {
			return err
		}
		byID := make(map[int64]*order.Order, len(orders))
		for _, o := range orders {
			byID[o.ID] = o
		}
		first := make(map[int64]int) // an order's first change that stuck
		for i, c := range changes {
			o := byID[c.id]
			if o == nil {
				errs[i] = order.ErrNotFound
				continue
			}
			next := o.Clone()
			if errs[i] = c.fn(next); errs[i] != nil {
				continue
			}
			byID[c.id] = next
			if _, ok := first[c.id]; !ok {
				first[c.id] = i
			}
		}
		var changed []*order.Order
		var traces []trace
		var by []int
		for _, id := range ids {
			if i, ok := first[id]; ok {
				changed = append(changed, byID[id])
				traces = append(traces, changes[i].trace)
				by = append(by, i)
			}
		}
		err = s.commitChanges(ctx, conn, changed, traces)
		var de *draftError
		if errors.As(err, &de) {
			de.index = by[de.index]
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// UpdateExpired implements order.Repository: the expired orders it claims
// are cancelled together, in one transaction of three round trips (claim,
// items, changes and commit), so that a sweep that releases many
// reservations of a hot sku locks its row once. Their stock rows are
// locked in the global order, as CreateOrder locks them, so the two cannot
// deadlock; claimed orders are skipped by other sweepers.
func (s *Store) UpdateExpired(ctx context.Context, now time.Time, max int, fn func(*order.Order) error) (int, error) {
	n := 0
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var claimed []db.LockExpiredOrdersRow
		b := &pgx.Batch{}
		b.Queue(beginTx)
		rowsIn(b, &claimed, "lock expired orders", db.LockExpiredOrders, now, int32(max))
		if err := send(ctx, conn, b); err != nil || len(claimed) == 0 {
			return err
		}
		ids := make([]int64, len(claimed))
		rows := make([]db.GetOrderRow, len(claimed))
		for i, c := range claimed {
			ids[i], rows[i] = c.ID, db.GetOrderRow(c)
		}
		var items []db.OrderItem
		b = &pgx.Batch{}
		rowsIn(b, &items, "list order items", db.ListOrderItems, ids)
		if err := send(ctx, conn, b); err != nil {
			return err
		}
		orders, err := toOrders(rows, items)
		if err != nil {
			return err
		}
		for _, o := range orders {
			if err := fn(o); err != nil {
				return err
			}
		}
		traces := make([]trace, len(orders))
		tr := traceOf(ctx)
		for i := range traces {
			traces[i] = tr
		}
		if err := s.commitChanges(ctx, conn, orders, traces); err != nil {
			return err
		}
		n = len(orders)
		return nil
	})
	return n, err
}

// commitChanges sends the last round trip of an update: the stock effects
// of the orders' changes, their statuses and events (each order's with its
// trace), and the commit.
func (s *Store) commitChanges(ctx context.Context, conn *pgx.Conn, orders []*order.Order, traces []trace) error {
	var release, writeOff, touched []int64
	for _, o := range orders {
		for _, c := range o.Changes() {
			switch c.StockEffect() {
			case order.ReleaseStock:
				release = append(release, o.ID)
			case order.WriteOffStock:
				writeOff = append(writeOff, o.ID)
			default:
				continue
			}
			touched = append(touched, o.ID)
		}
	}
	b := &pgx.Batch{}
	if len(touched) > 0 {
		// The stock rows are locked in the same global order as CreateOrder
		// locks them, so the two cannot deadlock.
		execIn(b, "lock reserved stocks", db.LockReservedStocks, touched)
	}
	if len(release) > 0 {
		execIn(b, "release reservations", db.ReleaseReservations, release)
	}
	if len(writeOff) > 0 {
		execIn(b, "write off reservations", db.WriteOffReservations, writeOff)
	}
	if err := s.queueChanges(b, orders, traces, s.now()); err != nil {
		return err
	}
	b.Queue("COMMIT")
	return send(ctx, conn, b)
}

// queueChanges queues the orders' new statuses and one outbox event per
// change, each order's events with its trace. An event that cannot be
// encoded fails with a *draftError naming its order's index.
func (s *Store) queueChanges(b *pgx.Batch, orders []*order.Order, traces []trace, at time.Time) error {
	var (
		ids                 []int64
		statuses            []string
		eventIDs            []pgtype.UUID
		eventOrders         []int64
		payloads            [][]byte
		parents, tracestate []string
	)
	for i, o := range orders {
		if len(o.Changes()) == 0 {
			continue
		}
		ids = append(ids, o.ID)
		statuses = append(statuses, o.Status.String())
		// A new order's events occurred when it was made; a change's now.
		when := at
		if o.Changes()[0].From == order.StatusUnspecified {
			when = o.CreatedAt
		}
		for _, e := range o.Events(when) {
			payload, err := s.encode(e)
			if err != nil {
				return &draftError{index: i, err: err}
			}
			eventIDs = append(eventIDs, pgtype.UUID{Bytes: e.ID, Valid: true})
			eventOrders = append(eventOrders, e.OrderID)
			payloads = append(payloads, payload)
			parents = append(parents, traces[i].parent)
			tracestate = append(tracestate, traces[i].state)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	execIn(b, "update order statuses", db.UpdateOrderStatuses, at, ids, statuses)
	execIn(b, "insert outbox events", db.InsertOutbox, at, eventIDs, eventOrders, payloads, parents, tracestate)
	return nil
}

// toOrders builds orders from their rows and their items (by order).
func toOrders(rows []db.GetOrderRow, items []db.OrderItem) ([]*order.Order, error) {
	orders := make([]*order.Order, len(rows))
	byID := make(map[int64]*order.Order, len(rows))
	for i, r := range rows {
		status, err := order.ParseStatus(string(r.Status))
		if err != nil {
			return nil, err
		}
		orders[i] = &order.Order{ID: r.ID, User: r.UserID, Status: status, CreatedAt: r.CreatedAt, PayBy: r.PayBy}
		byID[r.ID] = orders[i]
	}
	for _, it := range items {
		if o := byID[it.OrderID]; o != nil {
			o.Items = append(o.Items, order.Item{SKU: uint32(it.Sku), Count: uint32(it.Count)})
		}
	}
	return orders, nil
}
