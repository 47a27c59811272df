package loms_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/order"
)

// BenchmarkCreateOrderHandler measures the CreateOrder handler without a
// database or a transport: converting the request, validating it, reserving
// in memory and building the response, or, for bad input, the error path
// down to the Connect code. It is the CPU a LOMS replica spends per order on
// top of its transaction.
func BenchmarkCreateOrderHandler(b *testing.B) {
	repo := &memRepo{stocks: []order.Stock{
		{SKU: 1001, Warehouse: 1, Total: 100}, {SKU: 1001, Warehouse: 2, Total: 50},
		{SKU: 2002, Warehouse: 1, Total: 100}, {SKU: 2002, Warehouse: 3, Total: 80, Reserved: 10},
		{SKU: 3003, Warehouse: 2, Total: 100},
	}}
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	srv := loms.NewServer(order.NewService(repo, 10*time.Minute, func() time.Time { return now }), nil, slog.New(slog.DiscardHandler))

	b.Run("3_items", func(b *testing.B) {
		req := &lomsv1.CreateOrderRequest{User: 7, IdempotencyKey: "bench-3-items", Items: []*lomsv1.OrderItem{
			{Sku: 1001, Count: 2}, {Sku: 2002, Count: 1}, {Sku: 3003, Count: 5},
		}}
		res, err := srv.CreateOrder(b.Context(), req)
		if err != nil || res.GetOrderId() <= 0 || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
			b.Fatalf("CreateOrder = %v, %v; want an order awaiting payment", res, err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := srv.CreateOrder(b.Context(), req); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("invalid_count_0", func(b *testing.B) {
		req := &lomsv1.CreateOrderRequest{User: 7, Items: []*lomsv1.OrderItem{
			{Sku: 1001, Count: 2}, {Sku: 2002, Count: 0}, {Sku: 3003, Count: 5},
		}}
		if _, err := srv.CreateOrder(b.Context(), req); connect.CodeOf(err) != connect.CodeInvalidArgument {
			b.Fatalf("CreateOrder error = %v, want InvalidArgument", err)
		}
		b.ReportAllocs()
		for b.Loop() {
			_, _ = srv.CreateOrder(b.Context(), req)
		}
	})
}

// memRepo is an order.Repository that only creates orders, from fixed stock
// rows: what the handler does around the store, without the store.
type memRepo struct {
	stocks []order.Stock
	lastID int64
}

var errNotInMemRepo = errors.New("not supported by the in-memory repository")

func (r *memRepo) Create(_ context.Context, o *order.Order, _ string, reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	if _, err := reserve(r.stocks); err != nil {
		return nil, err
	}
	r.lastID++
	o.ID = r.lastID
	return o, nil
}

func (r *memRepo) Get(context.Context, int64) (*order.Order, error) { return nil, errNotInMemRepo }

func (r *memRepo) Update(context.Context, int64, func(*order.Order) error) error {
	return errNotInMemRepo
}

func (r *memRepo) UpdateExpired(context.Context, time.Time, int, func(*order.Order) error) (int, error) {
	return 0, errNotInMemRepo
}

func (r *memRepo) Available(context.Context, uint32) ([]order.Availability, error) {
	return nil, errNotInMemRepo
}

func (r *memRepo) ListByUser(context.Context, int64, int64, int) ([]*order.Order, error) {
	return nil, errNotInMemRepo
}

func (r *memRepo) Receive(context.Context, order.Receipt) error { return errNotInMemRepo }
