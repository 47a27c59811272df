package store_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
)

// BenchmarkRoundTrip is the baseline for BenchmarkCreateOrder: one trivial
// statement on the same pool and server.
func BenchmarkRoundTrip(b *testing.B) {
	_, pool := lomstest.NewStore(b, pg, time.Now)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := pool.Exec(b.Context(), "SELECT 1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreateOrder is CreateOrder's whole transaction: three skus over
// two warehouses each, reserved and recorded with two outbox events.
func BenchmarkCreateOrder(b *testing.B) {
	var stocks []order.Stock
	for sku := uint32(1); sku <= 300; sku++ {
		stocks = append(stocks, order.Stock{SKU: sku, Warehouse: 1, Total: 1 << 40},
			order.Stock{SKU: sku, Warehouse: 2, Total: 1 << 40})
	}
	st, _ := lomstest.NewStore(b, pg, time.Now, stocks...)
	svc := order.NewService(st, time.Minute, time.Now)
	var n atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Spread orders over the skus so that they rarely contend.
			first := n.Add(3) % 300
			items := []order.Item{{SKU: first + 1, Count: 2}, {SKU: (first+100)%300 + 1, Count: 1}, {SKU: (first+200)%300 + 1, Count: 3}}
			o, err := svc.Create(b.Context(), 1, items, "")
			if err != nil || o.Status != order.StatusAwaitingPayment {
				b.Errorf("create: %v %v", o, err)
				return
			}
		}
	})
}
