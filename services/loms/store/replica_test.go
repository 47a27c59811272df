package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
)

// With a replica, Stocks and ListOrders read there and nothing else does:
// the "replica" here is another database holding other stock and no
// orders, so each answer shows where it was read.
func TestReadsGoToTheReplica(t *testing.T) {
	t.Parallel()
	st, _ := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 7, Warehouse: 1, Total: 10})
	_, replica := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 7, Warehouse: 2, Total: 99})
	st.ReadFrom(replica)
	svc := order.NewService(st, time.Hour, time.Now)
	ctx := t.Context()
	o, err := svc.Create(ctx, 5, []order.Item{{SKU: 7, Count: 3}}, "")
	if err != nil || o.Status != order.StatusAwaitingPayment {
		t.Fatalf("Create on the primary: %+v, %v", o, err)
	}
	av, err := svc.Stocks(ctx, 7)
	if err != nil || len(av) != 1 || av[0].Warehouse != 2 || av[0].Count != 99 {
		t.Fatalf("Stocks: %+v, %v; want the replica's warehouse 2 with 99", av, err)
	}
	page, err := svc.ListOrders(ctx, 5, 0, "")
	if err != nil || len(page.Orders) != 0 {
		t.Fatalf("ListOrders: %+v, %v; want the replica's (none)", page, err)
	}
	if got, err := svc.Get(ctx, o.ID); err != nil || got.Status != order.StatusAwaitingPayment {
		t.Fatalf("ListOrder reads the primary: %+v, %v", got, err)
	}
}

// A replica that cannot be reached leaves the reads to the primary.
func TestReadsFallBackToThePrimary(t *testing.T) {
	t.Parallel()
	st, _ := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 7, Warehouse: 1, Total: 10})
	// Nothing listens on port 1.
	down, err := pgxpool.New(t.Context(), "postgres://postgres@127.0.0.1:1/loms?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	st.ReadFrom(down)
	svc := order.NewService(st, time.Hour, time.Now)
	ctx := t.Context()
	if _, err := svc.Create(ctx, 5, []order.Item{{SKU: 7, Count: 3}}, ""); err != nil {
		t.Fatal(err)
	}
	av, err := svc.Stocks(ctx, 7)
	if err != nil || len(av) != 1 || av[0].Count != 7 {
		t.Fatalf("Stocks: %+v, %v; want the primary's 7 left", av, err)
	}
	page, err := svc.ListOrders(ctx, 5, 0, "")
	if err != nil || len(page.Orders) != 1 {
		t.Fatalf("ListOrders: %+v, %v; want the primary's one order", page, err)
	}
}
