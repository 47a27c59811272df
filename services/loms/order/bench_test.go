package order_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
)

// benchItems returns n items of count 1; sku i%distinct+1000, so with
// distinct < n the first skus repeat and ValidateItems merges them.
func benchItems(n, distinct int) []order.Item {
	items := make([]order.Item, n)
	for i := range items {
		items[i] = order.Item{SKU: uint32(1000 + i%distinct), Count: 1}
	}
	return items
}

// benchStocks returns, for every item's sku, one row in each of warehouses
// 1..warehouses, listed by warehouse; warehouse w has avail+w units
// available (and some reserved already), so Plan must reorder them.
func benchStocks(items []order.Item, warehouses int, avail uint64) []order.Stock {
	stocks := make([]order.Stock, 0, len(items)*warehouses)
	for _, it := range items {
		for w := range warehouses {
			stocks = append(stocks, order.Stock{SKU: it.SKU, Warehouse: int64(w + 1), Total: avail + uint64(w) + 3, Reserved: 3})
		}
	}
	return stocks
}

// BenchmarkValidateItems measures the check and merge of a CreateOrder
// request's items, which every order pays before touching the database. The
// invalid case matters as much: callers do send bad input, and it fails late
// (item 40 of 50) after most of the work.
func BenchmarkValidateItems(b *testing.B) {
	invalid := benchItems(50, 50)
	invalid[39].Count = 0
	cases := []struct {
		name      string
		items     []order.Item
		wantLen   int    // merged items when valid
		wantField string // offending field when invalid
	}{
		{name: "3_items", items: benchItems(3, 3), wantLen: 3},
		{name: "50_items_40_skus", items: benchItems(50, 40), wantLen: 40},
		{name: "invalid_count_at_item_40_of_50", items: invalid, wantField: "items[39].count"},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			merged, err := order.ValidateItems(bc.items)
			if bc.wantField != "" {
				var ve *validate.Error
				if !errors.As(err, &ve) || ve.Field != bc.wantField {
					b.Fatalf("error = %v, want a validate.Error on %s", err, bc.wantField)
				}
			} else if err != nil || len(merged) != bc.wantLen {
				b.Fatalf("got %d merged items, %v; want %d", len(merged), err, bc.wantLen)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = order.ValidateItems(bc.items)
			}
		})
	}
}

// BenchmarkPlan measures spreading an order over the warehouses' stock rows,
// which runs inside the CreateOrder transaction while those rows are locked:
// its time is time other orders of the same skus wait.
func BenchmarkPlan(b *testing.B) {
	items3 := benchItems(3, 3)
	items50 := benchItems(50, 50)
	// Sku 1001 needs 8 units: 5 from warehouse 2, which has the most, and
	// 3 from warehouse 1, the lower id of the two with 4.
	split := []order.Item{{SKU: 1000, Count: 2}, {SKU: 1001, Count: 8}, {SKU: 1002, Count: 1}}
	var splitStocks []order.Stock
	for _, it := range split {
		splitStocks = append(splitStocks,
			order.Stock{SKU: it.SKU, Warehouse: 1, Total: 4},
			order.Stock{SKU: it.SKU, Warehouse: 2, Total: 6, Reserved: 1},
			order.Stock{SKU: it.SKU, Warehouse: 3, Total: 4})
	}
	splitPlan := []order.Reservation{
		{SKU: 1000, Warehouse: 2, Count: 2},
		{SKU: 1001, Warehouse: 2, Count: 5}, {SKU: 1001, Warehouse: 1, Count: 3},
		{SKU: 1002, Warehouse: 2, Count: 1},
	}
	// benchStocks gives warehouse 3 the most units, enough for each item.
	fromWarehouse3 := func(items []order.Item) []order.Reservation {
		plan := make([]order.Reservation, len(items))
		for i, it := range items {
			plan[i] = order.Reservation{SKU: it.SKU, Warehouse: 3, Count: uint64(it.Count)}
		}
		return plan
	}
	cases := []struct {
		name   string
		items  []order.Item
		stocks []order.Stock
		want   []order.Reservation
	}{
		{"3_items_3_warehouses", items3, benchStocks(items3, 3, 10), fromWarehouse3(items3)},
		{"50_items_3_warehouses", items50, benchStocks(items50, 3, 10), fromWarehouse3(items50)},
		{"3_items_one_split_over_2_warehouses", split, splitStocks, splitPlan},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			if plan, ok := order.Plan(bc.items, bc.stocks); !ok || !slices.Equal(plan, bc.want) {
				b.Fatalf("plan = %v, %v; want %v", plan, ok, bc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = order.Plan(bc.items, bc.stocks)
			}
		})
	}
}

// BenchmarkReserve measures what CreateOrder does in memory for a 3-item
// order once the stock rows are locked: start the order, plan and record
// the reservation, and turn the status changes into outbox events.
func BenchmarkReserve(b *testing.B) {
	items := benchItems(3, 3)
	stocks := benchStocks(items, 3, 10)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := order.New(7, items, now, 10*time.Minute)
	plan, err := o.Reserve(stocks)
	events := o.Events(now)
	if err != nil || o.Status != order.StatusAwaitingPayment || len(plan) != 3 || len(events) != 2 {
		b.Fatalf("status %s, %d reservations, %d events, %v; want awaiting_payment, 3, 2",
			o.Status, len(plan), len(events), err)
	}
	b.ReportAllocs()
	for b.Loop() {
		o := order.New(7, items, now, 10*time.Minute)
		if _, err := o.Reserve(stocks); err != nil {
			b.Fatal(err)
		}
		o.Events(now)
	}
}
