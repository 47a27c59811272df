package faults_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
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
	// codes counts every failed attempt by Connect code.
	codes map[connect.Code]int
	// unexpected are errors no retry can mend (a caller's mistake, or a
	// server fault): the test fails on any.
	unexpected []error
	// created are the times CreateOrder was acknowledged.
	created []time.Time
}

// placed is what a client was told about one order.
type placed struct {
	user      int64
	items     map[uint32]uint32
	status    lomsv1.OrderStatus
	payed     bool
	cancelled bool
	// refused: OrderPayed answered FailedPrecondition (the order had
	// expired and was cancelled).
	refused bool
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
		if !l.call(ctx, func(ctx context.Context, c lomsv1connect.LomsServiceClient) (err error) {
			res, err = c.CreateOrder(ctx, req)
			return err
		}) {
			continue
		}
		p := &placed{user: req.GetUser(), items: items, status: res.GetStatus()}
		l.mu.Lock()
		l.orders[res.GetOrderId()] = p
		l.created = append(l.created, time.Now())
		l.mu.Unlock()
		if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
			continue
		}
		id := res.GetOrderId()
		switch r := rng.Float64(); {
		case r < l.pay:
			var refused bool
			ok := l.call(ctx, func(ctx context.Context, c lomsv1connect.LomsServiceClient) error {
				_, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: id})
				if connect.CodeOf(err) == connect.CodeFailedPrecondition {
					refused = true
					return nil
				}
				return err
			})
			l.mu.Lock()
			p.payed, p.refused = ok && !refused, refused
			l.mu.Unlock()
		case r < l.pay+l.cancel:
			ok := l.call(ctx, func(ctx context.Context, c lomsv1connect.LomsServiceClient) error {
				_, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: id})
				return err
			})
			l.mu.Lock()
			p.cancelled = ok
			l.mu.Unlock()
		}
	}
}

// call runs fn against a random replica until it succeeds, retrying what
// a client may retry; false when the load stopped first or the error was
// not retryable.
func (l *load) call(ctx context.Context, fn func(context.Context, lomsv1connect.LomsServiceClient) error) bool {
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
			l.unexpected = append(l.unexpected, err)
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
		l.t.Errorf("%d calls failed for good; first: %v", len(l.unexpected), l.unexpected[0])
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
