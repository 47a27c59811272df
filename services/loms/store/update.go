package store

import (
	"context"
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

// Update implements order.Repository in two round trips: the order locked
// and read, then, once fn changed it, what changed and the commit.
func (s *Store) Update(ctx context.Context, id int64, fn func(*order.Order) error) error {
	return s.withConn(ctx, func(conn *pgx.Conn) error {
		var (
			rows  []db.GetOrderForUpdateRow
			items []db.OrderItem
		)
		b := &pgx.Batch{}
		b.Queue(beginTx)
		rowsIn(b, &rows, "lock order", db.GetOrderForUpdate, id)
		rowsIn(b, &items, "list order items", db.ListOrderItems, []int64{id})
		if err := send(ctx, conn, b); err != nil {
			return err
		}
		if len(rows) == 0 {
			return order.ErrNotFound
		}
		orders, err := toOrders([]db.GetOrderRow{db.GetOrderRow(rows[0])}, items)
		if err != nil {
			return err
		}
		if err := fn(orders[0]); err != nil {
			return err
		}
		return s.commitChanges(ctx, conn, orders, traceOf(ctx))
	})
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
		if err := s.commitChanges(ctx, conn, orders, traceOf(ctx)); err != nil {
			return err
		}
		n = len(orders)
		return nil
	})
	return n, err
}

// commitChanges sends the last round trip of an update: the stock effects
// of the orders' changes, their statuses and events, and the commit.
func (s *Store) commitChanges(ctx context.Context, conn *pgx.Conn, orders []*order.Order, tr trace) error {
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
	traces := make([]trace, len(orders))
	for i := range traces {
		traces[i] = tr
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
