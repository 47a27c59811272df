package store_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
)

// stockRows is every stock row as "sku/warehouse:total/reserved".
func stockRows(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT sku, warehouse_id, total, reserved FROM stocks ORDER BY sku, warehouse_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sku, wh, total, reserved int64
		if err := rows.Scan(&sku, &wh, &total, &reserved); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d/%d:%d/%d", sku, wh, total, reserved))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

// TestReceiveStockAddsToRowsAndCreatesNewOnes: units add to the total of
// the warehouse's existing rows (reservations untouched), new skus get
// rows, other warehouses keep theirs, and repeated skus are merged.
func TestReceiveStockAddsToRowsAndCreatesNewOnes(t *testing.T) {
	t.Parallel()
	svc, pool, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 5}, order.Stock{SKU: 1, Warehouse: 2, Total: 5})
	ctx := t.Context()
	if o, err := svc.Create(ctx, 1, []order.Item{{SKU: 1, Count: 7}}, ""); err != nil || o.Status != order.StatusAwaitingPayment {
		t.Fatalf("create: %v %v", o, err)
	}
	if err := svc.ReceiveStock(ctx, 1, []order.Item{{SKU: 9, Count: 4}, {SKU: 1, Count: 3}, {SKU: 9, Count: 6}}, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := stockRows(t, pool), "1/1:8/5 1/2:5/2 9/1:10/0"; got != want {
		t.Fatalf("stocks %s, want %s", got, want)
	}
	if err := svc.ReceiveStock(ctx, 3, []order.Item{{SKU: 9, Count: 65535}}, ""); err != nil {
		t.Fatal(err)
	}
	if got, want := stockRows(t, pool), "1/1:8/5 1/2:5/2 9/1:10/0 9/3:65535/0"; got != want {
		t.Fatalf("stocks %s, want %s", got, want)
	}
	if got := available(t, svc, 9); got[1] != 10 || got[3] != 65535 {
		t.Fatalf("Stocks(9) = %v", got)
	}
}

// TestReceiveStockWithARepeatedKeyAddsOnce, also when the repeats race.
func TestReceiveStockWithARepeatedKeyAddsOnce(t *testing.T) {
	t.Parallel()
	svc, pool, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 5})
	ctx := t.Context()
	for range 2 {
		if err := svc.ReceiveStock(ctx, 1, []order.Item{{SKU: 1, Count: 10}, {SKU: 2, Count: 1}}, "delivery-1"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := svc.ReceiveStock(ctx, 1, []order.Item{{SKU: 1, Count: 100}}, "delivery-2"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A key counts once whatever the warehouse; no key never dedupes.
	if err := svc.ReceiveStock(ctx, 2, []order.Item{{SKU: 1, Count: 1000}}, "delivery-1"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := svc.ReceiveStock(ctx, 1, []order.Item{{SKU: 2, Count: 1}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := stockRows(t, pool), "1/1:115/0 2/1:3/0"; got != want {
		t.Fatalf("stocks %s, want %s", got, want)
	}
	var receipts int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM stock_receipts").Scan(&receipts); err != nil || receipts != 2 {
		t.Fatalf("%d receipts recorded (%v), want 2", receipts, err)
	}
}

// TestReceiveStockValidationWritesNothing: a rejected delivery touches no
// row and records no key, so that its corrected retry counts.
func TestReceiveStockValidationWritesNothing(t *testing.T) {
	t.Parallel()
	svc, pool, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 5})
	ctx := t.Context()
	before := stockRows(t, pool)
	for _, tc := range []struct {
		warehouse int64
		items     []order.Item
		field     string
	}{
		{0, []order.Item{{SKU: 1, Count: 1}}, "warehouse_id"},
		{1, nil, "items"},
		{1, []order.Item{{SKU: 1, Count: 1}, {SKU: 0, Count: 1}}, "items[1].sku"},
		{1, []order.Item{{SKU: 1, Count: 65535}, {SKU: 1, Count: 1}}, "items[1].count"},
	} {
		err := svc.ReceiveStock(ctx, tc.warehouse, tc.items, "k")
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+": ") {
			t.Fatalf("receipt %v: error %v, want one on %s", tc, err, tc.field)
		}
	}
	if got := stockRows(t, pool); got != before {
		t.Fatalf("stocks %s, want %s", got, before)
	}
	if err := svc.ReceiveStock(ctx, 1, []order.Item{{SKU: 1, Count: 1}}, "k"); err != nil {
		t.Fatal(err)
	}
	if got := stockRows(t, pool); got != "1/1:6/0" {
		t.Fatalf("the corrected receipt left %s", got)
	}
}

// TestShortOrderSucceedsAfterReceivingStock: an order that failed for want
// of stock goes through when tried again after a delivery.
func TestShortOrderSucceedsAfterReceivingStock(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 2})
	ctx := t.Context()
	items := []order.Item{{SKU: 1, Count: 3}, {SKU: 2, Count: 1}}
	o, err := svc.Create(ctx, 1, items, "cart-1-v1")
	if err != nil || o.Status != order.StatusFailed {
		t.Fatalf("first attempt: %v %v, want FAILED", o, err)
	}
	if err := svc.ReceiveStock(ctx, 2, []order.Item{{SKU: 1, Count: 1}, {SKU: 2, Count: 1}}, "truck-1"); err != nil {
		t.Fatal(err)
	}
	again, err := svc.Create(ctx, 1, items, "cart-1-v2")
	if err != nil || again.Status != order.StatusAwaitingPayment {
		t.Fatalf("after the delivery: %v %v, want AWAITING_PAYMENT", again, err)
	}
	if got := available(t, svc, 1); len(got) != 0 {
		t.Fatalf("sku 1 left: %v, want none", got)
	}
}

// TestReceiveStockAndOrdersDoNotDeadlock runs deliveries of several skus
// (listed in every order) against orders over the same skus, batched and
// not: rows are locked in one global order, so Postgres never has to
// break a deadlock (it would fail one transaction with 40P01), and stock
// adds up.
func TestReceiveStockAndOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	for _, max := range batchModes {
		t.Run(fmt.Sprintf("batch_max=%d", max), func(t *testing.T) {
			t.Parallel()
			receiveAndOrder(t, max)
		})
	}
}

func receiveAndOrder(t *testing.T, max int) {
	ctx := t.Context()
	var stocks []order.Stock
	for sku := uint32(1); sku <= 4; sku++ {
		for wh := int64(1); wh <= 3; wh++ {
			stocks = append(stocks, order.Stock{SKU: sku, Warehouse: wh, Total: 10})
		}
	}
	svc, pool, _ := newBatchedService(t, max, stocks...)
	var received, paid atomic.Int64
	var wg sync.WaitGroup
	for i := range 160 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 2))
			var items []order.Item
			var units int64
			for _, s := range r.Perm(5)[:2+r.IntN(4)] {
				c := uint32(1 + r.IntN(5))
				items = append(items, order.Item{SKU: uint32(s + 1), Count: c})
				units += int64(c)
			}
			if i%2 == 0 {
				// sku 5 is new: the first delivery creates its row. Each
				// delivery is sent twice, as after a lost answer.
				wh := int64(1 + r.IntN(3))
				for range 2 {
					if err := svc.ReceiveStock(ctx, wh, items, fmt.Sprintf("d-%d", i)); err != nil {
						t.Errorf("receive: %v", err)
					}
				}
				received.Add(units)
				return
			}
			o, err := svc.Create(ctx, int64(i+1), items, "")
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			if o.Status == order.StatusAwaitingPayment && i%4 == 1 {
				if err := svc.Pay(ctx, o.ID); err != nil {
					t.Errorf("pay %d: %v", o.ID, err)
				}
				paid.Add(units)
			}
		})
	}
	wg.Wait()
	total, reserved, open := lomstest.Totals(t, pool)
	if want := 4*3*10 + received.Load() - paid.Load(); total != want || reserved != open {
		t.Fatalf("total %d (want %d), reserved %d, in reservations %d", total, want, reserved, open)
	}
}
