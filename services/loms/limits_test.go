package loms_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/wire"
)

// order.MaxItems at the boundary, through the real handler over every
// protocol: an order of exactly that many distinct skus is placed and
// reserves every one; one sku more is invalid_argument naming items and the
// limit, and writes nothing. (TestBadInputIsRejectedWithoutWrites sends 1001
// items of one sku; these are distinct, as a real cart's would be.)
func TestOrderItemLimit(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	ctx := context.Background()
	const firstSKU = 100_000
	seeded := make([]order.Stock, order.MaxItems+1)
	items := make([]*lomsv1.OrderItem, order.MaxItems+1)
	for i := range seeded {
		seeded[i] = order.Stock{SKU: firstSKU + uint32(i), Warehouse: 1, Total: 3}
		items[i] = &lomsv1.OrderItem{Sku: firstSKU + uint32(i), Count: 1}
	}
	if _, err := store.New(e.pool, wire.EncodeEvent, time.Now).SeedStocks(ctx, seeded); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			_, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 1, Items: items})
			wantCode(t, err, connect.CodeInvalidArgument, "items")
			wantCode(t, err, connect.CodeInvalidArgument, "at most 1000")

			res, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 1, Items: items[:order.MaxItems]})
			if err != nil {
				t.Fatalf("an order of %d items: %v", order.MaxItems, err)
			}
			if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("an order of %d items is %v, want AWAITING_PAYMENT", order.MaxItems, res.GetStatus())
			}
			got, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(got.GetItems()); n != order.MaxItems {
				t.Fatalf("the order holds %d items, want %d", n, order.MaxItems)
			}
		})
	}
	// Each protocol's order reserved one unit of each of the first
	// MaxItems skus; the refused orders reserved nothing, not even of the
	// sku only they held.
	c := clients(t, e.base)["grpc"]
	if got := stocks(t, c, firstSKU); got[1] != 0 {
		t.Fatalf("sku %d: %v left, want all 3 reserved", firstSKU, got)
	}
	if got := stocks(t, c, firstSKU+order.MaxItems); got[1] != 3 {
		t.Fatalf("sku %d, only in the refused orders: %v left, want 3", firstSKU+order.MaxItems, got)
	}
}
