package watch_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/watch"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// Watchers of many orders each see their order's changes to the end, and
// once the watchers closed and the hub stopped, no goroutine of theirs or
// the hub's is left.
func TestHubFollowsOrdersAndLeavesNoGoroutines(t *testing.T) {
	st, _ := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Hour, time.Now)
	ctx := t.Context()
	const orders, perOrder = 40, 5
	ids := make([]int64, orders)
	for i := range ids {
		o, err := svc.Create(ctx, int64(i+1), []order.Item{{SKU: 1, Count: 1}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = o.ID
	}
	// The pool's own goroutines are not the hub's.
	leftBefore := goleak.IgnoreCurrent()

	hub := watch.NewHub(st, st, watch.Config{MaxWatchers: orders * perOrder}, slog.New(slog.DiscardHandler))
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(runCtx) }()

	var wg sync.WaitGroup
	got := make([][]order.Status, orders*perOrder)
	errs := make([]error, orders*perOrder)
	for j := range got {
		w, err := hub.Watch(ctx, ids[j/perOrder])
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer w.Close()
			for {
				s, err := w.Next(ctx)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						errs[j] = err
					}
					return
				}
				got[j] = append(got[j], s.Status)
			}
		})
	}
	if _, err := hub.Watch(ctx, ids[0]); !errors.Is(err, watch.ErrTooManyWatchers) {
		t.Fatalf("a watcher over the cap: %v, want ErrTooManyWatchers", err)
	}
	for i, id := range ids {
		var err error
		if i%2 == 0 {
			err = svc.Pay(ctx, id)
		} else {
			err = svc.Cancel(ctx, id)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	for j, statuses := range got {
		want := order.StatusPayed
		if (j/perOrder)%2 == 1 {
			want = order.StatusCancelled
		}
		if errs[j] != nil || len(statuses) != 2 || statuses[0] != order.StatusAwaitingPayment || statuses[1] != want {
			t.Fatalf("watcher %d of order %d saw %v (%v), want awaiting_payment then %v", j, ids[j/perOrder], statuses, errs[j], want)
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	goleak.VerifyNone(t, leftBefore)
}

// Once the hub stopped, a watcher's Next says so, and so does Watch; an
// unknown order is ErrNotFound.
func TestStoppedHub(t *testing.T) {
	t.Parallel()
	st, _ := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 10})
	svc := order.NewService(st, time.Hour, time.Now)
	o, err := svc.Create(t.Context(), 1, []order.Item{{SKU: 1, Count: 1}}, "")
	if err != nil {
		t.Fatal(err)
	}
	hub := watch.NewHub(st, st, watch.Config{}, slog.New(slog.DiscardHandler))
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(runCtx) }()
	if _, err := hub.Watch(t.Context(), 1<<40); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("Watch of an unknown order: %v, want ErrNotFound", err)
	}
	w, err := hub.Watch(t.Context(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if s, err := w.Next(t.Context()); err != nil || s.Status != order.StatusAwaitingPayment || s.ID != o.ID {
		t.Fatalf("first state %+v, %v", s, err)
	}
	stop()
	<-ran
	if _, err := w.Next(t.Context()); !errors.Is(err, watch.ErrStopped) {
		t.Fatalf("Next after the hub stopped: %v, want ErrStopped", err)
	}
	if _, err := hub.Watch(t.Context(), o.ID); !errors.Is(err, watch.ErrStopped) {
		t.Fatalf("Watch after the hub stopped: %v, want ErrStopped", err)
	}
}
