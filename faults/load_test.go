package faults_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// load is a stream of orders, as careful clients place them: each
// CreateOrder carries an idempotency key and is retried with it while LOMS
// answers Unavailable or does not answer in time; a payment or a
// cancellation is retried the same way (both are idempotent).
type load struct {
	t       *testing.T
	clients []lomsv1connect.LomsServiceClient
	skus    []uint32
	// pay and cancel are the shares of awaiting orders paid and cancelled;
	// the rest are left to the payment timeout.
	pay, cancel float64
	// pace is the least time between two orders of one worker, to keep
	// the volume small.
	pace time.Duration

	workers   int
	cancelRun context.CancelFunc
	wg        sync.WaitGroup

	mu     sync.Mutex
	orders map[int64]*placed
	// superseded are orders acknowledged under an id that a later
	// CreateOrder was acknowledged under too: the database lost the first
	// and gave its id again (a failover that lost commits).
	superseded []*placed
	// codes counts every failed attempt by Connect code.
	codes map[connect.Code]int
	// unexpected are calls that failed with an error no retry can mend (a
	// caller's mistake, or a server fault): the test fails on any that a
	// fault does not excuse (see excuse).
	unexpected []failure
	// created are the times CreateOrder was acknowledged.
	created []time.Time
}

// placed is what a client was told about one order.
type placed struct {
	id  int64
	key string
	// asked and at are when CreateOrder was first sent and when it was
	// acknowledged.
	asked, at time.Time
	user      int64
	items     map[uint32]uint32
	status    lomsv1.OrderStatus
	payed     bool
	cancelled bool
	// refused: OrderPayed answered FailedPrecondition (the order had
	// expired and was cancelled).
	refused bool
	// changed is when the payment or cancellation was answered.
	changed time.Time
}

// newLoad is a load on the system's LOMS replicas, over the skus of
// skusUnderLoad, paying and cancelling the given shares of orders.
func (s *system) newLoad(pay, cancel float64) *load {
	t := s.t
	urls, skus := s.lomsURLs(), skusUnderLoad(t, s)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)
	l := &load{t: t, skus: skus, pay: pay, cancel: cancel, pace: 10 * time.Millisecond,
		orders: map[int64]*placed{}, codes: map[connect.Code]int{}}
	for _, u := range urls {
		l.clients = append(l.clients, lomsv1connect.NewLomsServiceClient(client, u))
	}
	return l
}

// start runs workers until stop.
func (l *load) start(workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancelRun = cancel
	l.workers = workers
	for i := range workers {
		l.wg.Go(func() { l.work(ctx, rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))) })
	}
	l.t.Cleanup(l.stop)
}

// stop ends the load and waits for the workers; calls under way are
// abandoned, their outcome unknown to the client (the audit still covers
// what they did).
func (l *load) stop() {
	if l.cancelRun != nil {
		l.cancelRun()
		l.wg.Wait()
	}
}

func (l *load) work(ctx context.Context, rng *rand.Rand) {
	for next := time.Now(); ctx.Err() == nil; next = next.Add(l.pace) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		items := map[uint32]uint32{}
		req := &lomsv1.CreateOrderRequest{User: rng.Int64N(1000) + 1, IdempotencyKey: uuid.NewString()}
		for range rng.IntN(3) + 1 {
			sku, n := l.skus[rng.IntN(len(l.skus))], uint32(rng.IntN(3)+1)
			items[sku] += n
			req.Items = append(req.Items, &lomsv1.OrderItem{Sku: sku, Count: n})
		}
		var res *lomsv1.CreateOrderResponse
		asked := time.Now()
		if !l.call(ctx, 0, func(ctx context.Context, c lomsv1connect.LomsServiceClient) (err error) {
			res, err = c.CreateOrder(ctx, req)
			return err
		}) {
			continue
		}
		p := &placed{id: res.GetOrderId(), key: req.GetIdempotencyKey(), asked: asked, at: time.Now(), user: req.GetUser(),
			items: items, status: res.GetStatus()}
		l.mu.Lock()
		if was, ok := l.orders[p.id]; ok && was.key != p.key {
			l.superseded = append(l.superseded, was)
		}
		l.orders[p.id] = p
		l.created = append(l.created, p.at)
		l.mu.Unlock()
		if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
			continue
		}
		id := res.GetOrderId()
		switch r := rng.Float64(); {
		case r < l.pay:
			var refused bool
			ok := l.call(ctx, id, func(ctx context.Context, c lomsv1connect.LomsServiceClient) error {
				_, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: id})
				if connect.CodeOf(err) == connect.CodeFailedPrecondition {
					refused = true
					return nil
				}
				return err
			})
			l.mu.Lock()
			p.payed, p.refused, p.changed = ok && !refused, refused, time.Now()
			l.mu.Unlock()
		case r < l.pay+l.cancel:
			ok := l.call(ctx, id, func(ctx context.Context, c lomsv1connect.LomsServiceClient) error {
				_, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: id})
				return err
			})
			l.mu.Lock()
			p.cancelled, p.changed = ok, time.Now()
			l.mu.Unlock()
		}
	}
}

// failure is a call that failed for good.
type failure struct {
	// order is the order paid or cancelled; 0 for CreateOrder.
	order int64
	err   error
}

// call runs fn against a random replica until it succeeds, retrying what
// a client may retry; false when the load stopped first or the error was
// not retryable. order is the order fn is about, if any.
func (l *load) call(ctx context.Context, order int64, fn func(context.Context, lomsv1connect.LomsServiceClient) error) bool {
	for {
		// Generous: a slow answer on a busy machine is not what these tests
		// are about; a server that stopped answering is.
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(attempt, l.clients[rand.IntN(len(l.clients))])
		cancel()
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		code := connect.CodeOf(err)
		l.mu.Lock()
		l.codes[code]++
		// connect-go reports a connection reset while the reply is read
		// as Canceled; with this caller still waiting, the server went
		// away, which a retry mends like Unavailable.
		if code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded && code != connect.CodeCanceled {
			l.unexpected = append(l.unexpected, failure{order: order, err: err})
			l.mu.Unlock()
			return false
		}
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// askedBetween are the orders first asked for after from and acknowledged
// before to.
func (l *load) askedBetween(from, to time.Time) []*placed {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*placed
	for _, p := range append(slices.Collect(maps.Values(l.orders)), l.superseded...) {
		if p.asked.After(from) && p.at.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

// createdBetween counts orders acknowledged in [from, to).
func (l *load) createdBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.created {
		if !at.Before(from) && at.Before(to) {
			n++
		}
	}
	return n
}

// waitCreated waits until n more orders are acknowledged after since.
func (l *load) waitCreated(since time.Time, n int, d time.Duration) {
	l.t.Helper()
	if err := waitFor(l.t.Context(), d, func() (bool, error) {
		return l.createdBetween(since, time.Now().Add(time.Hour)) >= n, nil
	}); err != nil {
		l.t.Fatalf("%d orders acknowledged since %s: %v (failed attempts by code: %v)",
			l.createdBetween(since, time.Now().Add(time.Hour)), since.Format(time.TimeOnly), err, l.failures())
	}
}

// firstCreatedAfter is when the first order after t was acknowledged; the
// zero time when none was.
func (l *load) firstCreatedAfter(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, at := range l.created {
		if at.After(t) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// excuse takes out of the failed calls those that a lost order explains:
// a payment or a cancellation of an order in lost answered NotFound (the
// order is gone) or FailedPrecondition (its id now names another order,
// in a state that refuses the call). It returns how many it took out;
// checkCodes no longer sees them.
func (l *load) excuse(lost map[int64]bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.unexpected[:0]
	n := 0
	for _, f := range l.unexpected {
		code := connect.CodeOf(f.err)
		if lost[f.order] && (code == connect.CodeNotFound || code == connect.CodeFailedPrecondition) {
			l.codes[code]--
			if l.codes[code] == 0 {
				delete(l.codes, code)
			}
			n++
			continue
		}
		kept = append(kept, f)
	}
	l.unexpected = kept
	return n
}

// failures are the failed attempts by code, for messages.
func (l *load) failures() map[connect.Code]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[connect.Code]int, len(l.codes))
	for c, n := range l.codes {
		out[c] = n
	}
	return out
}

// checkCodes fails the test on an unexpected error or on a failed attempt
// whose code is not one of allowed.
func (l *load) checkCodes(allowed ...connect.Code) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.unexpected) > 0 {
		f := l.unexpected[0]
		l.t.Errorf("%d calls failed for good; first: %v (order %d)", len(l.unexpected), f.err, f.order)
	}
	var bad []string
	for code, n := range l.codes {
		ok := false
		for _, a := range allowed {
			ok = ok || code == a
		}
		if !ok {
			bad = append(bad, code.String()+"×"+strconv.Itoa(n))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		l.t.Errorf("clients saw codes %v; only %v may happen here", bad, allowed)
	}
}

// skusUnderLoad picks the skus to order: the ten with the least stock, so
// that some orders fail for want of it, and thirty others.
func skusUnderLoad(t *testing.T, s *system) []uint32 {
	t.Helper()
	rows, err := s.lomsDB.Query(t.Context(), `
		(SELECT sku FROM stocks GROUP BY sku ORDER BY sum(total), sku LIMIT 10)
		UNION ALL
		(SELECT sku FROM stocks GROUP BY sku ORDER BY sku DESC LIMIT 30)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var skus []uint32
	for rows.Next() {
		var sku int64
		if err := rows.Scan(&sku); err != nil {
			t.Fatal(err)
		}
		skus = append(skus, uint32(sku))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(skus) == 0 {
		t.Fatal(errors.New("no stock seeded"))
	}
	return skus
}
