package sweeper_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/sweeper"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// Expired orders are cancelled in batches, the next batch at once after a
// full one: 250 expired orders are all cancelled long before the next tick
// (an hour away), and the orders still in their window are left alone.
func TestSweeperCancelsEveryExpiredOrderBatchAfterBatch(t *testing.T) {
	t.Parallel()
	clock := lomstest.NewClock(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	st, pool := lomstest.NewStore(t, pg, clock.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, 10*time.Minute, clock.Now)
	ctx := t.Context()
	const expired = 2*sweeper.Batch + 50
	for i := range expired {
		if _, err := svc.Create(ctx, int64(i+1), []order.Item{{SKU: 1, Count: 1}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(11 * time.Minute)
	fresh, err := svc.Create(ctx, 9999, []order.Item{{SKU: 1, Count: 1}}, "")
	if err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sweeper.New(svc, time.Hour, slog.New(slog.DiscardHandler)).Run(runCtx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		var cancelled int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE status = 'cancelled'").Scan(&cancelled); err != nil {
			t.Fatal(err)
		}
		if cancelled == expired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d expired orders cancelled", cancelled, expired)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if o, err := svc.Get(ctx, fresh.ID); err != nil || o.Status != order.StatusAwaitingPayment {
		t.Fatalf("the order in its window: %+v, %v", o, err)
	}
}
