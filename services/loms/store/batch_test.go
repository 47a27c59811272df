package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/wire"
)

// replica is one LOMS process's view of a shared database: its own pool
// and batcher.
type replica struct {
	batcher *store.Batcher
	svc     *order.Service
}

func newReplica(t *testing.T, pool *pgxpool.Pool, max int, encode store.Encoder) replica {
	t.Helper()
	own, err := pgxpool.New(t.Context(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Close)
	b := store.NewBatcher(store.New(own, encode, time.Now), max, 1)
	return replica{batcher: b, svc: order.NewService(b, 10*time.Minute, time.Now)}
}

// eventually polls cond until it holds; a condition that never holds fails
// the test after a generous wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
	}
}

// holdStock locks sku's stock rows from another session, so that the next
// batch that needs them stays in flight until release is called.
func holdStock(t *testing.T, pool *pgxpool.Pool, sku uint32) (release func()) {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM stocks WHERE sku = $1 FOR UPDATE", int64(sku)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(context.WithoutCancel(t.Context())) }) }
	t.Cleanup(release)
	return release
}

// waitingOnLocks is how many sessions of this database wait for a lock.
func waitingOnLocks(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// result is what one Create call returned.
type result struct {
	order *order.Order
	err   error
}

// inFlight starts a Create that becomes a batch of its own and stays in
// flight, waiting for the stock rows that holdStock locked.
func inFlight(t *testing.T, pool *pgxpool.Pool, r replica, user int64, items []order.Item) <-chan result {
	t.Helper()
	before := waitingOnLocks(t, pool)
	ch := make(chan result, 1)
	go func() {
		o, err := r.svc.Create(context.Background(), user, items, "")
		ch <- result{o, err}
	}()
	eventually(t, "the first batch waits for the held stock rows", func() bool { return waitingOnLocks(t, pool) > before })
	return ch
}

// queue starts a Create through the service and waits until it is queued
// behind the batch in flight.
func queue(t *testing.T, r replica, ctx context.Context, user int64, items []order.Item, key string) <-chan result {
	t.Helper()
	return queueCall(t, r, func() (*order.Order, error) { return r.svc.Create(ctx, user, items, key) })
}

func queueCall(t *testing.T, r replica, create func() (*order.Order, error)) <-chan result {
	t.Helper()
	before := r.batcher.Queued()
	ch := make(chan result, 1)
	go func() {
		o, err := create()
		ch <- result{o, err}
	}()
	eventually(t, "the order is queued", func() bool { return r.batcher.Queued() > before || len(ch) > 0 })
	return ch
}

// txOf names the transaction that inserted user's orders (their xmin).
func txOf(t *testing.T, pool *pgxpool.Pool, user int64) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT xmin::text FROM orders WHERE user_id = $1 ORDER BY id", user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var x string
		if err := rows.Scan(&x); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func unit(sku uint32, n uint32) []order.Item { return []order.Item{{SKU: sku, Count: n}} }

// Orders that arrive while a batch is in flight are reserved together, in
// one transaction, first come first served: a later small order gets what an
// earlier large one could not.
func TestQueuedOrdersAreReservedTogetherInArrivalOrder(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 4})
	r := newReplica(t, pool, 100, wire.EncodeEvent)
	release := holdStock(t, pool, 5)
	first := inFlight(t, pool, r, 1, unit(5, 1))
	a := queue(t, r, t.Context(), 2, unit(5, 2), "")
	b := queue(t, r, t.Context(), 3, unit(5, 2), "")
	c := queue(t, r, t.Context(), 4, unit(5, 1), "")
	release()

	want := []order.Status{order.StatusAwaitingPayment, order.StatusAwaitingPayment, order.StatusFailed, order.StatusAwaitingPayment}
	for i, ch := range []<-chan result{first, a, b, c} {
		res := <-ch
		if res.err != nil || res.order.Status != want[i] {
			t.Fatalf("order %d: %+v, %v; want %s", i, res.order, res.err, want[i])
		}
	}
	txA, txB, txC := txOf(t, pool, 2), txOf(t, pool, 3), txOf(t, pool, 4)
	if txA[0] != txB[0] || txB[0] != txC[0] || txOf(t, pool, 1)[0] == txA[0] {
		t.Fatalf("transactions %v %v %v %v: want the three queued orders in one, the first in another",
			txOf(t, pool, 1), txA, txB, txC)
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 4 || reserved != 4 || open != 4 {
		t.Fatalf("total %d reserved %d open %d, want 4 each", total, reserved, open)
	}
}

// LOMS_BATCH_MAX bounds a batch: five queued orders with a bound of two go
// in three transactions.
func TestBatchMaxBoundsABatch(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 100})
	r := newReplica(t, pool, 2, wire.EncodeEvent)
	release := holdStock(t, pool, 5)
	first := inFlight(t, pool, r, 1, unit(5, 1))
	var queued []<-chan result
	for user := int64(10); user < 15; user++ {
		queued = append(queued, queue(t, r, t.Context(), user, unit(5, 1), ""))
	}
	release()
	txs := map[string]int{}
	for i, ch := range append(queued, first) {
		if res := <-ch; res.err != nil || res.order.Status != order.StatusAwaitingPayment {
			t.Fatalf("order %d: %+v, %v", i, res.order, res.err)
		}
	}
	for user := int64(10); user < 15; user++ {
		txs[txOf(t, pool, user)[0]]++
	}
	if len(txs) != 3 {
		t.Fatalf("five queued orders in transactions %v, want 3 (2, 2, 1)", txs)
	}
}

// One bad order never fails the others of its batch: an order whose events
// cannot be encoded and one whose reservation the database refuses get
// their own errors, and the rest of the batch is stored.
func TestPoisonedOrdersFailAlone(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 10})
	const unencodable = 666
	encode := func(e order.Event) ([]byte, error) {
		if e.User == unencodable {
			return nil, errors.New("cannot encode")
		}
		return wire.EncodeEvent(e)
	}
	r := newReplica(t, pool, 100, encode)
	release := holdStock(t, pool, 5)
	first := inFlight(t, pool, r, 1, unit(5, 1))
	good1 := queue(t, r, t.Context(), 2, unit(5, 1), "")
	badEvents := queue(t, r, t.Context(), unencodable, unit(5, 1), "")
	overReserve := queueCall(t, r, func() (*order.Order, error) {
		o := order.New(7, unit(5, 1), time.Now(), time.Minute)
		return r.batcher.Create(t.Context(), o, "", func([]order.Stock) ([]order.Reservation, error) {
			// More than the row holds: only the database's CHECK catches it.
			return []order.Reservation{{SKU: 5, Warehouse: 1, Count: 50}}, nil
		})
	})
	good2 := queue(t, r, t.Context(), 8, unit(5, 2), "")
	release()

	for i, ch := range []<-chan result{first, good1, good2} {
		if res := <-ch; res.err != nil || res.order.Status != order.StatusAwaitingPayment {
			t.Fatalf("good order %d: %+v, %v", i, res.order, res.err)
		}
	}
	for name, ch := range map[string]<-chan result{"unencodable": badEvents, "over-reserving": overReserve} {
		if res := <-ch; res.err == nil {
			t.Fatalf("%s order stored: %+v", name, res.order)
		}
	}
	for _, user := range []int64{unencodable, 7} {
		if txs := txOf(t, pool, user); len(txs) != 0 {
			t.Fatalf("user %d has %d orders after a failed create", user, len(txs))
		}
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 10 || reserved != 4 || open != 4 {
		t.Fatalf("total %d reserved %d open %d, want 10 4 4", total, reserved, open)
	}
}

// Retries with one idempotency key that land in the same batch get one
// order; so does a retry in a later batch and on another replica.
func TestRetriesInOneBatchGetOneOrder(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 10})
	r := newReplica(t, pool, 100, wire.EncodeEvent)
	release := holdStock(t, pool, 5)
	first := inFlight(t, pool, r, 1, unit(5, 1))
	try1 := queue(t, r, t.Context(), 9, unit(5, 2), "k")
	try2 := queue(t, r, t.Context(), 9, unit(5, 2), "k")
	otherUser := queue(t, r, t.Context(), 10, unit(5, 2), "k")
	release()
	<-first
	res1, res2, res3 := <-try1, <-try2, <-otherUser
	if res1.err != nil || res2.err != nil || res3.err != nil {
		t.Fatal(res1.err, res2.err, res3.err)
	}
	if res1.order.ID != res2.order.ID || res3.order.ID == res1.order.ID {
		t.Fatalf("ids %d %d (same key, same user) and %d (another user)", res1.order.ID, res2.order.ID, res3.order.ID)
	}
	later, err := newReplica(t, pool, 100, wire.EncodeEvent).svc.Create(t.Context(), 9, unit(5, 2), "k")
	if err != nil || later.ID != res1.order.ID || later.Status != order.StatusAwaitingPayment {
		t.Fatalf("retry on another replica: %+v, %v; want order %d", later, err, res1.order.ID)
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 10 || reserved != 5 || open != 5 {
		t.Fatalf("total %d reserved %d open %d, want 10 5 5", total, reserved, open)
	}
}

// A caller that gives up while its order is queued gets its context's
// error, and the order is never made.
func TestCallerGivingUpWhileQueuedIsLeftOut(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 10})
	r := newReplica(t, pool, 100, wire.EncodeEvent)
	release := holdStock(t, pool, 5)
	first := inFlight(t, pool, r, 1, unit(5, 1))
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := queue(t, r, ctx, 11, unit(5, 1), "")
	stays := queue(t, r, t.Context(), 12, unit(5, 1), "")
	cancel()
	if res := <-gaveUp; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("cancelled caller got %+v, %v", res.order, res.err)
	}
	release()
	if res := <-first; res.err != nil {
		t.Fatal(res.err)
	}
	if res := <-stays; res.err != nil || res.order.Status != order.StatusAwaitingPayment {
		t.Fatalf("the caller that stayed: %+v, %v", res.order, res.err)
	}
	if txs := txOf(t, pool, 11); len(txs) != 0 {
		t.Fatalf("the order of a caller that gave up while queued was made")
	}
	if _, reserved, open := lomstest.Totals(t, pool); reserved != 2 || open != 2 {
		t.Fatalf("reserved %d open %d, want 2 2", reserved, open)
	}
}

// A flash sale across two replicas: 500 concurrent buyers of one sku with
// 300 units in two warehouses get exactly 300 reservations, and the stock
// agrees with them.
func TestFlashSaleAcrossReplicasSellsExactlyTheStock(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now,
		order.Stock{SKU: 42, Warehouse: 1, Total: 200}, order.Stock{SKU: 42, Warehouse: 2, Total: 100})
	replicas := []replica{newReplica(t, pool, 64, wire.EncodeEvent), newReplica(t, pool, 64, wire.EncodeEvent)}
	const buyers = 500
	var awaiting, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range buyers {
		wg.Go(func() {
			o, err := replicas[i%2].svc.Create(t.Context(), int64(i+1), unit(42, 1), "")
			switch {
			case err != nil:
				t.Errorf("buyer %d: %v", i, err)
			case o.Status == order.StatusAwaitingPayment:
				awaiting.Add(1)
			case o.Status == order.StatusFailed:
				failed.Add(1)
			default:
				t.Errorf("buyer %d: status %s", i, o.Status)
			}
		})
	}
	wg.Wait()
	if awaiting.Load() != 300 || failed.Load() != 200 {
		t.Fatalf("awaiting %d failed %d, want 300 and 200", awaiting.Load(), failed.Load())
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 300 || reserved != 300 || open != 300 {
		t.Fatalf("total %d reserved %d open %d, want 300 each", total, reserved, open)
	}
	var orders, events, txs int
	err := pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox),
		(SELECT count(DISTINCT xmin::text) FROM orders)`).Scan(&orders, &events, &txs)
	if err != nil {
		t.Fatal(err)
	}
	if orders != buyers || events != 2*buyers {
		t.Fatalf("%d orders and %d events, want %d and %d", orders, events, buyers, 2*buyers)
	}
	t.Logf("%d buyers on 2 replicas: %d transactions", buyers, txs)
}

// queueErr starts a call that returns only an error and waits until it is
// queued behind the batch in flight.
func queueErr(t *testing.T, r replica, call func() error) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	res := queueCall(t, r, func() (*order.Order, error) { return nil, call() })
	go func() { ch <- (<-res).err }()
	return ch
}

// Payments and cancellations that arrive together are applied together, in
// arrival order: a cancellation queued after a payment of the same order
// sees it paid, an unknown order fails alone, and the others commit in one
// transaction.
func TestQueuedPaymentsAreAppliedTogetherInArrivalOrder(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 5, Warehouse: 1, Total: 10})
	r := newReplica(t, pool, 100, wire.EncodeEvent)
	var ids []int64
	for user := int64(1); user <= 3; user++ {
		o, err := r.svc.Create(t.Context(), user, unit(5, 2), "")
		if err != nil || o.Status != order.StatusAwaitingPayment {
			t.Fatalf("create: %+v, %v", o, err)
		}
		ids = append(ids, o.ID)
	}
	release := holdStock(t, pool, 5)
	before := waitingOnLocks(t, pool)
	first := make(chan error, 1)
	go func() { first <- r.svc.Pay(context.Background(), ids[0]) }()
	eventually(t, "the first payment waits for the held stock rows", func() bool { return waitingOnLocks(t, pool) > before })
	pay := queueErr(t, r, func() error { return r.svc.Pay(t.Context(), ids[1]) })
	cancelPaid := queueErr(t, r, func() error { return r.svc.Cancel(t.Context(), ids[1]) })
	unknown := queueErr(t, r, func() error { return r.svc.Pay(t.Context(), 1<<40) })
	cancel := queueErr(t, r, func() error { return r.svc.Cancel(t.Context(), ids[2]) })
	release()

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-pay; err != nil {
		t.Fatalf("pay: %v", err)
	}
	var te *order.TransitionError
	if err := <-cancelPaid; !errors.As(err, &te) {
		t.Fatalf("cancel after a payment in the same batch: %v, want a transition error", err)
	}
	if err := <-unknown; !errors.Is(err, order.ErrNotFound) {
		t.Fatalf("pay of an unknown order: %v, want not found", err)
	}
	if err := <-cancel; err != nil {
		t.Fatalf("cancel: %v", err)
	}
	var statuses, txs []string
	rows, err := pool.Query(t.Context(), "SELECT status::text, xmin::text FROM orders WHERE id = ANY($1) ORDER BY id", ids)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var st, tx string
		if err := rows.Scan(&st, &tx); err != nil {
			t.Fatal(err)
		}
		statuses, txs = append(statuses, st), append(txs, tx)
	}
	if rows.Err() != nil || len(statuses) != 3 || statuses[0] != "payed" || statuses[1] != "payed" || statuses[2] != "cancelled" {
		t.Fatalf("statuses %v (%v), want payed payed cancelled", statuses, rows.Err())
	}
	if txs[1] != txs[2] || txs[0] == txs[1] {
		t.Fatalf("transactions %v: want the two queued changes in one, the first in another", txs)
	}
	if total, reserved, open := lomstest.Totals(t, pool); total != 6 || reserved != 0 || open != 0 {
		t.Fatalf("total %d reserved %d open %d, want 6 0 0", total, reserved, open)
	}
	var events int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox WHERE order_id = ANY($1)", ids).Scan(&events); err != nil || events != 9 {
		t.Fatalf("%d events (%v), want 9: new, awaiting and one settlement per order", events, err)
	}
}

// A payment storm after a flash sale, across two replicas: 300 orders of one
// sku, each paid or cancelled concurrently (some twice), leave the stock
// exactly as the payments say.
func TestPaymentStormAcrossReplicasKeepsStockExact(t *testing.T) {
	t.Parallel()
	_, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 42, Warehouse: 1, Total: 200}, order.Stock{SKU: 42, Warehouse: 2, Total: 100})
	replicas := []replica{newReplica(t, pool, 64, wire.EncodeEvent), newReplica(t, pool, 64, wire.EncodeEvent)}
	const orders = 300
	ids := make([]int64, orders)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			o, err := replicas[i%2].svc.Create(t.Context(), int64(i+1), unit(42, 1), "")
			if err != nil || o.Status != order.StatusAwaitingPayment {
				t.Errorf("create %d: %+v, %v", i, o, err)
				return
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	var paid atomic.Int64
	for i := range orders {
		for try := range 2 {
			wg.Go(func() {
				r := replicas[(i+try)%2]
				if i%3 == 0 {
					if err := r.svc.Cancel(t.Context(), ids[i]); err != nil {
						t.Errorf("cancel %d: %v", ids[i], err)
					}
					return
				}
				if err := r.svc.Pay(t.Context(), ids[i]); err != nil {
					t.Errorf("pay %d: %v", ids[i], err)
				} else if try == 0 {
					paid.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if total, reserved, open := lomstest.Totals(t, pool); total != 300-paid.Load() || reserved != 0 || open != 0 {
		t.Fatalf("total %d (want %d) reserved %d open %d", total, 300-paid.Load(), reserved, open)
	}
	var events int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox").Scan(&events); err != nil || events != 3*orders {
		t.Fatalf("%d events (%v), want %d: one per status change, none for a repeated payment or cancellation", events, err, 3*orders)
	}
}
