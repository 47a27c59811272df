package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newService(t *testing.T, stocks ...order.Stock) (*order.Service, *pgxpool.Pool, *lomstest.Clock) {
	t.Helper()
	return newBatchedService(t, 1, stocks...)
}

// newBatchedService is newService with CreateOrder batched, at most max
// orders a batch (1: each its own transaction).
func newBatchedService(t *testing.T, max int, stocks ...order.Stock) (*order.Service, *pgxpool.Pool, *lomstest.Clock) {
	t.Helper()
	clock := lomstest.NewClock(t0)
	st, pool := lomstest.NewStore(t, pg, clock.Now, stocks...)
	return order.NewService(store.NewBatcher(st, max, 1), 10*time.Minute, clock.Now), pool, clock
}

// batchModes are the batch bounds the concurrency tests run with: batching
// off, and on.
var batchModes = []int{1, 64}

// events returns the decoded outbox events of an order, in outbox order.
func events(t *testing.T, pool *pgxpool.Pool, orderID int64) []*lomsv1.OrderEvent {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT payload FROM outbox WHERE order_id = $1 ORDER BY id", orderID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []*lomsv1.OrderEvent
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		e := &lomsv1.OrderEvent{}
		if err := proto.Unmarshal(b, e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func statuses(evs []*lomsv1.OrderEvent) []lomsv1.OrderStatus {
	out := make([]lomsv1.OrderStatus, len(evs))
	for i, e := range evs {
		out[i] = e.GetStatus()
	}
	return out
}

func available(t *testing.T, svc *order.Service, sku uint32) map[int64]uint64 {
	t.Helper()
	av, err := svc.Stocks(t.Context(), sku)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int64]uint64{}
	for _, a := range av {
		m[a.Warehouse] = a.Count
	}
	return m
}

func TestCreateReservesAcrossWarehousesAndRecordsEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, _ := newService(t,
		order.Stock{SKU: 10, Warehouse: 1, Total: 3}, order.Stock{SKU: 10, Warehouse: 2, Total: 4},
		order.Stock{SKU: 20, Warehouse: 1, Total: 1})

	o, err := svc.Create(ctx, 5, []order.Item{{SKU: 10, Count: 2}, {SKU: 20, Count: 1}, {SKU: 10, Count: 4}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusAwaitingPayment {
		t.Fatalf("status %s", o.Status)
	}
	if got := available(t, svc, 10); len(got) != 1 || got[1] != 1 {
		t.Fatalf("sku 10 available %v, want only warehouse 1 with 1", got)
	}
	if got := available(t, svc, 20); len(got) != 0 {
		t.Fatalf("sku 20 available %v, want none", got)
	}
	got, err := svc.Get(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != 5 || len(got.Items) != 2 || got.Items[0] != (order.Item{SKU: 10, Count: 6}) {
		t.Fatalf("stored order %+v", got)
	}
	evs := events(t, pool, o.ID)
	want := []lomsv1.OrderStatus{lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT}
	if fmt.Sprint(statuses(evs)) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", statuses(evs), want)
	}
	if evs[1].GetPreviousStatus() != lomsv1.OrderStatus_ORDER_STATUS_NEW || evs[0].GetUser() != 5 ||
		len(evs[0].GetItems()) != 2 || evs[0].GetEventId() == evs[1].GetEventId() {
		t.Fatalf("event contents %v", evs)
	}
}

func TestShortOrderFailsWithoutReserving(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, _ := newService(t, order.Stock{SKU: 10, Warehouse: 1, Total: 3}, order.Stock{SKU: 20, Warehouse: 1, Total: 1})
	o, err := svc.Create(ctx, 5, []order.Item{{SKU: 10, Count: 3}, {SKU: 20, Count: 2}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusFailed {
		t.Fatalf("status %s, want failed", o.Status)
	}
	if _, reserved, open := lomstest.Totals(t, pool); reserved != 0 || open != 0 {
		t.Fatalf("reserved %d, open reservations %d after a failed order", reserved, open)
	}
	if got := statuses(events(t, pool, o.ID)); len(got) != 2 || got[1] != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("events %v", got)
	}
	if err := svc.Pay(ctx, o.ID); !isTransition(err) {
		t.Fatalf("pay failed order: %v", err)
	}
	if err := svc.Cancel(ctx, o.ID); !isTransition(err) {
		t.Fatalf("cancel failed order: %v", err)
	}
}

func TestPayWritesOffAndCancelReleases(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, _ := newService(t, order.Stock{SKU: 10, Warehouse: 1, Total: 10})
	paid, _ := svc.Create(ctx, 1, []order.Item{{SKU: 10, Count: 3}}, "")
	cancelled, _ := svc.Create(ctx, 1, []order.Item{{SKU: 10, Count: 4}}, "")

	if err := svc.Pay(ctx, paid.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.Pay(ctx, paid.ID); err != nil {
		t.Fatalf("paying twice must be a no-op: %v", err)
	}
	if err := svc.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.Cancel(ctx, cancelled.ID); err != nil {
		t.Fatalf("cancelling twice must be a no-op: %v", err)
	}
	total, reserved, open := lomstest.Totals(t, pool)
	if total != 7 || reserved != 0 || open != 0 {
		t.Fatalf("total %d reserved %d open %d, want 7 0 0", total, reserved, open)
	}
	if got := statuses(events(t, pool, paid.ID)); len(got) != 3 || got[2] != lomsv1.OrderStatus_ORDER_STATUS_PAYED {
		t.Fatalf("paid order events %v: want exactly one per transition", got)
	}
	if got := statuses(events(t, pool, cancelled.ID)); len(got) != 3 || got[2] != lomsv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("cancelled order events %v", got)
	}
	if err := svc.Cancel(ctx, paid.ID); !isTransition(err) {
		t.Fatalf("cancel paid: %v", err)
	}
	if err := svc.Pay(ctx, cancelled.ID); !isTransition(err) {
		t.Fatalf("pay cancelled: %v", err)
	}
	if _, err := svc.Get(ctx, 999999); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
	if err := svc.Pay(ctx, 999999); !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("pay unknown order: %v", err)
	}
}

func TestPayAfterWindowCancels(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, clock := newService(t, order.Stock{SKU: 10, Warehouse: 1, Total: 10})
	o, _ := svc.Create(ctx, 1, []order.Item{{SKU: 10, Count: 3}}, "")
	clock.Advance(10*time.Minute + time.Second)
	if err := svc.Pay(ctx, o.ID); !errors.Is(err, order.ErrPaymentExpired) {
		t.Fatalf("late payment: %v, want ErrPaymentExpired", err)
	}
	got, _ := svc.Get(ctx, o.ID)
	if got.Status != order.StatusCancelled {
		t.Fatalf("status %s after late payment, want cancelled", got.Status)
	}
	if total, reserved, _ := lomstest.Totals(t, pool); total != 10 || reserved != 0 {
		t.Fatalf("total %d reserved %d", total, reserved)
	}
}

func TestIdempotencyKeyReturnsFirstOrder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, _ := newService(t, order.Stock{SKU: 10, Warehouse: 1, Total: 100})
	const n = 20
	ids := make([]int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := svc.Create(ctx, 3, []order.Item{{SKU: 10, Count: 2}}, "cart-3-v1")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("ids %v: a repeated key must return the first order", ids)
		}
	}
	if _, reserved, _ := lomstest.Totals(t, pool); reserved != 2 {
		t.Fatalf("reserved %d, want 2: retries must reserve nothing", reserved)
	}
	other, err := svc.Create(ctx, 4, []order.Item{{SKU: 10, Count: 1}}, "cart-3-v1")
	if err != nil || other.ID == ids[0] {
		t.Fatalf("another user's key is another order: %v %v", other, err)
	}
}

// TestConcurrentOrdersNeverOversell is the core promise: 200 concurrent
// orders for a sku with 50 units in 2 warehouses reserve exactly 50.
func TestConcurrentOrdersNeverOversell(t *testing.T) {
	t.Parallel()
	for _, max := range batchModes {
		t.Run(fmt.Sprintf("batch_max=%d", max), func(t *testing.T) {
			t.Parallel()
			concurrentOrdersNeverOversell(t, max)
		})
	}
}

func concurrentOrdersNeverOversell(t *testing.T, max int) {
	ctx := t.Context()
	svc, pool, _ := newBatchedService(t, max,
		order.Stock{SKU: 77, Warehouse: 1, Total: 30}, order.Stock{SKU: 77, Warehouse: 2, Total: 20})
	const n = 200
	var awaiting, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := svc.Create(ctx, int64(i+1), []order.Item{{SKU: 77, Count: 1}}, "")
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			switch o.Status {
			case order.StatusAwaitingPayment:
				awaiting.Add(1)
			case order.StatusFailed:
				failed.Add(1)
			default:
				t.Errorf("order %d: status %s", i, o.Status)
			}
		})
	}
	wg.Wait()
	if awaiting.Load() != 50 || failed.Load() != 150 {
		t.Fatalf("awaiting %d failed %d, want 50 and 150", awaiting.Load(), failed.Load())
	}
	total, reserved, open := lomstest.Totals(t, pool)
	if total != 50 || reserved != 50 || open != 50 {
		t.Fatalf("total %d reserved %d open %d, want 50 each", total, reserved, open)
	}
	t.Logf("%d concurrent orders: %d reserved, %d failed, no errors", n, awaiting.Load(), failed.Load())
}

// TestOverlappingOrdersDoNotDeadlock sends orders over the same skus in
// every order of items, with pays and cancels mixed in.
func TestOverlappingOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	for _, max := range batchModes {
		t.Run(fmt.Sprintf("batch_max=%d", max), func(t *testing.T) {
			t.Parallel()
			overlappingOrdersDoNotDeadlock(t, max)
		})
	}
}

func overlappingOrdersDoNotDeadlock(t *testing.T, max int) {
	ctx := t.Context()
	var stocks []order.Stock
	for sku := uint32(1); sku <= 4; sku++ {
		for wh := int64(1); wh <= 3; wh++ {
			stocks = append(stocks, order.Stock{SKU: sku, Warehouse: wh, Total: 40})
		}
	}
	svc, pool, _ := newBatchedService(t, max, stocks...)
	var wg sync.WaitGroup
	var paidUnits atomic.Int64
	for i := range 120 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			skus := r.Perm(4)[:2+r.IntN(3)]
			var items []order.Item
			var units int64
			for _, s := range skus {
				c := uint32(1 + r.IntN(5))
				items = append(items, order.Item{SKU: uint32(s + 1), Count: c})
				units += int64(c)
			}
			o, err := svc.Create(ctx, int64(i+1), items, "")
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			if o.Status != order.StatusAwaitingPayment {
				return
			}
			if i%2 == 0 {
				err = svc.Pay(ctx, o.ID)
				paidUnits.Add(units)
			} else {
				err = svc.Cancel(ctx, o.ID)
			}
			if err != nil {
				t.Errorf("order %d: %v", o.ID, err)
			}
		})
	}
	wg.Wait()
	total, reserved, open := lomstest.Totals(t, pool)
	if total != 4*3*40-paidUnits.Load() || reserved != 0 || open != 0 {
		t.Fatalf("total %d (want %d) reserved %d open %d", total, 4*3*40-paidUnits.Load(), reserved, open)
	}
}

// TestPayRacesSweeper runs a payment against the sweeper at the moment the
// window closes: exactly one of them decides the order, and stock agrees.
// In even rounds the payer still sees the window open; in odd rounds both
// see it closed, so both try to cancel.
func TestPayRacesSweeper(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := lomstest.NewClock(t0)
	st, pool := lomstest.NewStore(t, pg, clock.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	onTime := order.NewService(st, time.Minute, clock.Now)
	// The sweeper's clock is already past every window.
	late := order.NewService(st, time.Minute, func() time.Time { return clock.Now().Add(time.Hour) })

	outcomes := map[string]int{}
	for round := range 60 {
		payer := onTime
		if round%2 == 1 {
			payer = late
		}
		o, err := onTime.Create(ctx, 1, []order.Item{{SKU: 1, Count: 2}}, "")
		if err != nil {
			t.Fatal(err)
		}
		var payErr, sweepErr error
		var swept int
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; payErr = payer.Pay(ctx, o.ID) })
		wg.Go(func() { <-start; swept, sweepErr = late.CancelExpired(ctx, 10) })
		close(start)
		wg.Wait()
		if sweepErr != nil {
			t.Fatal(sweepErr)
		}
		got, _ := onTime.Get(ctx, o.ID)
		switch {
		case payErr == nil && got.Status == order.StatusPayed && swept == 0:
			outcomes["paid"]++
		case isTransition(payErr) && got.Status == order.StatusCancelled && swept == 1:
			outcomes["swept"]++
		case errors.Is(payErr, order.ErrPaymentExpired) && got.Status == order.StatusCancelled && swept == 0:
			outcomes["expired at payment"]++
		default:
			t.Fatalf("round %d: pay: %v, swept %d, status %s: not exactly one outcome", round, payErr, swept, got.Status)
		}
		if n := len(events(t, pool, o.ID)); n != 3 {
			t.Fatalf("order %d has %d events, want 3", o.ID, n)
		}
	}
	total, reserved, open := lomstest.Totals(t, pool)
	if total != 1000-2*int64(outcomes["paid"]) || reserved != 0 || open != 0 {
		t.Fatalf("total %d reserved %d open %d after all races (%v)", total, reserved, open, outcomes)
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestPayRacesCancel: exactly one of a payment and a cancellation succeeds.
func TestPayRacesCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, pool, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	var paid int64
	for range 40 {
		o, err := svc.Create(ctx, 1, []order.Item{{SKU: 1, Count: 3}}, "")
		if err != nil {
			t.Fatal(err)
		}
		var payErr, cancelErr error
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; payErr = svc.Pay(ctx, o.ID) })
		wg.Go(func() { <-start; cancelErr = svc.Cancel(ctx, o.ID) })
		close(start)
		wg.Wait()
		got, _ := svc.Get(ctx, o.ID)
		switch {
		case payErr == nil && isTransition(cancelErr) && got.Status == order.StatusPayed:
			paid += 3
		case cancelErr == nil && isTransition(payErr) && got.Status == order.StatusCancelled:
		default:
			t.Fatalf("pay: %v, cancel: %v, status %s: not exactly one outcome", payErr, cancelErr, got.Status)
		}
	}
	total, reserved, open := lomstest.Totals(t, pool)
	if total != 1000-paid || reserved != 0 || open != 0 {
		t.Fatalf("total %d (want %d) reserved %d open %d", total, 1000-paid, reserved, open)
	}
}

func TestSweepersInParallelCancelEachOrderOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clock := lomstest.NewClock(t0)
	st, pool := lomstest.NewStore(t, pg, clock.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Minute, clock.Now)
	for i := range 30 {
		if _, err := svc.Create(ctx, int64(i+1), []order.Item{{SKU: 1, Count: 1}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Minute)
	var cancelled atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			n, err := svc.CancelExpired(ctx, 100)
			if err != nil {
				t.Error(err)
			}
			cancelled.Add(int64(n))
		})
	}
	wg.Wait()
	if cancelled.Load() != 30 {
		t.Fatalf("sweepers cancelled %d orders, want 30", cancelled.Load())
	}
	var cancelEvents int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&cancelEvents); err != nil {
		t.Fatal(err)
	}
	if cancelEvents != 90 {
		t.Fatalf("%d events, want 90 (new, awaiting, cancelled per order)", cancelEvents)
	}
	if _, reserved, _ := lomstest.Totals(t, pool); reserved != 0 {
		t.Fatalf("reserved %d", reserved)
	}
}

func isTransition(err error) bool {
	var te *order.TransitionError
	return errors.As(err, &te)
}

// TestFailureInEitherRoundTripLeavesNothing checks the pipelined writes: a
// statement failing in the round trip after planning (here the stock CHECK,
// hit by a plan that reserves more than there is) and a failure between the
// round trips (an event that cannot be encoded) both leave no order, no
// reservation and no event behind, and no connection idle in a transaction.
func TestFailureInEitherRoundTripLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	stock := order.Stock{SKU: 10, Warehouse: 1, Total: 5}
	st, pool := lomstest.NewStore(t, pg, time.Now, stock)
	overReserve := func([]order.Stock) ([]order.Reservation, error) {
		return []order.Reservation{{SKU: 10, Warehouse: 1, Count: 6}}, nil
	}
	for range 3 {
		o := order.New(1, []order.Item{{SKU: 10, Count: 6}}, time.Now(), time.Minute)
		if _, err := st.Create(ctx, o, "", overReserve); err == nil {
			t.Fatal("over-reservation was committed")
		}
	}
	badEvents := store.New(pool, func(order.Event) ([]byte, error) { return nil, errors.New("cannot encode") }, time.Now)
	svc := order.NewService(badEvents, time.Minute, time.Now)
	for range 3 {
		if _, err := svc.Create(ctx, 1, []order.Item{{SKU: 10, Count: 1}}, ""); err == nil {
			t.Fatal("an order whose events cannot be encoded was committed")
		}
	}
	var orders, items, outboxRows, idleInTx int
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items),
		(SELECT count(*) FROM outbox),
		(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%')`).
		Scan(&orders, &items, &outboxRows, &idleInTx)
	if err != nil {
		t.Fatal(err)
	}
	if orders+items+outboxRows != 0 || idleInTx != 0 {
		t.Fatalf("after failed writes: %d orders, %d items, %d events, %d sessions idle in a transaction",
			orders, items, outboxRows, idleInTx)
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 5 || reserved != 0 || open != 0 {
		t.Fatalf("stock total %d reserved %d open %d, want 5 0 0", total, reserved, open)
	}
	// The connections that saw the failures still work.
	good := order.NewService(st, time.Minute, time.Now)
	for range 2 * int(pool.Config().MaxConns) {
		if o, err := good.Create(ctx, 1, []order.Item{{SKU: 10, Count: 1}}, ""); err != nil || o.Status != order.StatusFailed && o.Status != order.StatusAwaitingPayment {
			t.Fatalf("create after failures: %v %v", o, err)
		}
	}
}
