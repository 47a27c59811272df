package store

import (
	"context"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// ListByUser implements order.Repository in one round trip: the page's
// orders and their items, read in one REPEATABLE READ transaction so that
// both statements see the same orders (an order committed between them
// would otherwise shift the items' page by one).
func (s *Store) ListByUser(ctx context.Context, user, before int64, max int) ([]*order.Order, error) {
	if max <= 0 || max > math.MaxInt32 {
		return nil, fmt.Errorf("list orders of user %d: page of %d orders", user, max)
	}
	var (
		rows  []db.ListUserOrdersRow
		items []db.OrderItem
	)
	err := s.readConn(ctx, func(conn *pgx.Conn) error {
		b := &pgx.Batch{}
		b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		rowsIn(b, &rows, "list user orders", db.ListUserOrders, user, before, int32(max))
		rowsIn(b, &items, "list user order items", db.ListUserOrderItems, user, before, int32(max))
		b.Queue("COMMIT")
		return send(ctx, conn, b)
	})
	if err != nil {
		return nil, err
	}
	loaded := make([]db.GetOrderRow, len(rows))
	for i, r := range rows {
		loaded[i] = db.GetOrderRow(r)
	}
	return toOrders(loaded, items)
}

// Receive implements order.Repository in one statement, so one
// transaction and one round trip (see the ReceiveStocks query for the
// locking order and the idempotency key).
func (s *Store) Receive(ctx context.Context, r order.Receipt) error {
	p := db.ReceiveStocksParams{
		WarehouseID:    r.Warehouse,
		Skus:           make([]int64, len(r.Items)),
		Counts:         make([]int64, len(r.Items)),
		IdempotencyKey: r.Key,
		ReceivedAt:     s.now(),
	}
	for i, it := range r.Items {
		p.Skus[i], p.Counts[i] = int64(it.SKU), int64(it.Count)
	}
	if _, err := db.New(s.pool).ReceiveStocks(ctx, p); err != nil {
		return fmt.Errorf("receive stocks: %w", err)
	}
	return nil
}
