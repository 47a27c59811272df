package loms_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/watch"
)

// settle bounds how long a test waits for what must happen; a busy machine
// may take seconds, a broken one forever.
const settle = time.Minute

// watching reads a WatchOrder stream in the background.
type watching struct {
	msgs chan *lomsv1.WatchOrderResponse
	// end receives the stream's end: nil for OK.
	end    chan error
	cancel context.CancelFunc
}

func watchOrder(t *testing.T, c lomsv1connect.LomsServiceClient, id int64) *watching {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := c.WatchOrder(ctx, &lomsv1.WatchOrderRequest{OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	w := &watching{msgs: make(chan *lomsv1.WatchOrderResponse, 100), end: make(chan error, 1), cancel: cancel}
	go func() {
		defer stream.Close()
		for stream.Receive() {
			w.msgs <- stream.Msg()
		}
		w.end <- stream.Err()
	}()
	return w
}

// next is the stream's next message; it fails the test if the stream ends
// first.
func (w *watching) next(t *testing.T) *lomsv1.WatchOrderResponse {
	t.Helper()
	select {
	case m := <-w.msgs:
		return m
	case err := <-w.end:
		// Messages read before the end are sent before it.
		select {
		case m := <-w.msgs:
			w.end <- err
			return m
		default:
		}
		t.Fatalf("the stream ended (%v), want a message", err)
	case <-time.After(settle):
		t.Fatal("no message")
	}
	return nil
}

// ended is the error the stream ended with, after every message was read;
// it fails the test if another message comes.
func (w *watching) ended(t *testing.T) error {
	t.Helper()
	select {
	case m := <-w.msgs:
		t.Fatalf("got %v, want the stream's end", m)
	case err := <-w.end:
		select {
		case m := <-w.msgs:
			t.Fatalf("got %v, want the stream's end", m)
		default:
		}
		return err
	case <-time.After(settle):
		t.Fatal("the stream did not end")
	}
	return nil
}

func createOrder(t *testing.T, c lomsv1connect.LomsServiceClient, user int64, sku, count uint32) int64 {
	t.Helper()
	res, err := c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: user, Items: []*lomsv1.OrderItem{{Sku: sku, Count: count}}})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetOrderId()
}

func wantState(t *testing.T, m *lomsv1.WatchOrderResponse, id int64, status lomsv1.OrderStatus) {
	t.Helper()
	if m.GetOrderId() != id || m.GetStatus() != status || !m.GetChangedAt().IsValid() || !m.GetPayBy().IsValid() {
		t.Fatalf("message %v, want order %d %v with changed_at and pay_by", m, id, status)
	}
}

// A watcher sees the current state at once, then a payment made on another
// replica, then the stream's end; over every protocol.
func TestWatchOrderFollowsAPaymentOnAnotherReplica(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	other := clients(t, e.replica(t, replicaOptions{paymentTimeout: time.Minute, platform: platform.Config{MaxBodyBytes: maxBody}}, false))
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			id := createOrder(t, c, 11, 5050, 1)
			listed, err := c.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: id})
			if err != nil {
				t.Fatal(err)
			}
			w := watchOrder(t, c, id)
			first := w.next(t)
			wantState(t, first, id, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT)
			if !first.GetPayBy().AsTime().Equal(listed.GetPayBy().AsTime()) || first.GetChangedAt().AsTime().Before(listed.GetCreatedAt().AsTime()) {
				t.Fatalf("first message %v; ListOrder says %v", first, listed)
			}
			if _, err := other[name].OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id}); err != nil {
				t.Fatal(err)
			}
			paid := w.next(t)
			wantState(t, paid, id, lomsv1.OrderStatus_ORDER_STATUS_PAYED)
			if paid.GetChangedAt().AsTime().Before(first.GetChangedAt().AsTime()) {
				t.Fatalf("PAYED changed at %v, before AWAITING_PAYMENT at %v", paid.GetChangedAt().AsTime(), first.GetChangedAt().AsTime())
			}
			if err := w.ended(t); err != nil {
				t.Fatalf("the stream ended with %v, want OK after PAYED", err)
			}
		})
	}
}

// Many watchers on one replica, of many orders, all hear the changes
// another replica makes in one batch, each exactly its own.
func TestWatchOrderFansOutAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["grpc"]
	other := clients(t, e.replica(t, replicaOptions{paymentTimeout: time.Minute, platform: platform.Config{MaxBodyBytes: maxBody}}, false))["connect"]
	const orders, perOrder = 20, 3
	ids := make([]int64, orders)
	var ws []*watching
	for i := range ids {
		ids[i] = createOrder(t, c, int64(100+i), 5050, 1)
		for range perOrder {
			w := watchOrder(t, c, ids[i])
			wantState(t, w.next(t), ids[i], lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT)
			ws = append(ws, w)
		}
	}
	errs := make(chan error, orders)
	for i, id := range ids {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = other.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id})
			} else {
				_, err = other.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: id})
			}
			errs <- err
		}()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for j, w := range ws {
		i := j / perOrder
		want := lomsv1.OrderStatus_ORDER_STATUS_PAYED
		if i%2 == 1 {
			want = lomsv1.OrderStatus_ORDER_STATUS_CANCELLED
		}
		wantState(t, w.next(t), ids[i], want)
		if err := w.ended(t); err != nil {
			t.Fatal(err)
		}
	}
}

// The sweeper's cancellation reaches the watcher, as any change does.
func TestWatchOrderSeesTheSweeper(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Second)
	c := clients(t, e.base)["connect"]
	id := createOrder(t, c, 12, 5050, 1)
	w := watchOrder(t, c, id)
	wantState(t, w.next(t), id, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT)
	wantState(t, w.next(t), id, lomsv1.OrderStatus_ORDER_STATUS_CANCELLED)
	if err := w.ended(t); err != nil {
		t.Fatal(err)
	}
}

// An order already in a final status gets that one message; bad and
// unknown ids get their codes; over every protocol.
func TestWatchOrderFinalAndBadOrders(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			failed := createOrder(t, c, 13, 2002, 5) // 1 in stock
			w := watchOrder(t, c, failed)
			wantState(t, w.next(t), failed, lomsv1.OrderStatus_ORDER_STATUS_FAILED)
			if err := w.ended(t); err != nil {
				t.Fatal(err)
			}
			paid := createOrder(t, c, 13, 5050, 1)
			if _, err := c.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: paid}); err != nil {
				t.Fatal(err)
			}
			w = watchOrder(t, c, paid)
			wantState(t, w.next(t), paid, lomsv1.OrderStatus_ORDER_STATUS_PAYED)
			if err := w.ended(t); err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				id   int64
				code connect.Code
				msg  string
			}{
				{0, connect.CodeInvalidArgument, "order_id"},
				{-3, connect.CodeInvalidArgument, "order_id"},
				{1 << 40, connect.CodeNotFound, fmt.Sprint(int64(1 << 40))},
			} {
				w := watchOrder(t, c, tt.id)
				wantCode(t, w.ended(t), tt.code, tt.msg)
			}
		})
	}
}

// Over LOMS_MAX_WATCHERS, a watch is refused with resource_exhausted; a
// closed stream frees its place.
func TestWatchOrderCap(t *testing.T) {
	t.Parallel()
	e := startLOMSOpts(t, replicaOptions{paymentTimeout: time.Minute, platform: platform.Config{MaxBodyBytes: maxBody}, watch: watch.Config{MaxWatchers: 2}})
	c := clients(t, e.base)["grpc"]
	id := createOrder(t, c, 14, 5050, 1)
	a, b := watchOrder(t, c, id), watchOrder(t, c, id)
	a.next(t)
	b.next(t)
	wantCode(t, watchOrder(t, c, id).ended(t), connect.CodeResourceExhausted, "too many")
	a.cancel()
	if err := a.ended(t); connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("the cancelled stream ended with %v", err)
	}
	// The server notices the cancellation a moment later.
	deadline := time.Now().Add(settle)
	for {
		w := watchOrder(t, c, id)
		select {
		case m := <-w.msgs:
			wantState(t, m, id, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT)
			return
		case err := <-w.end:
			if connect.CodeOf(err) != connect.CodeResourceExhausted || time.Now().After(deadline) {
				t.Fatalf("after a stream closed: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// While nothing changes, the last state is sent again, which keeps the
// stream alive past the server's write timeout; the change still comes.
func TestWatchOrderKeepsAliveBeyondTheWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout, keepAlive = 1500 * time.Millisecond, 100 * time.Millisecond
	e := startLOMSOpts(t, replicaOptions{
		paymentTimeout: time.Minute,
		platform:       platform.Config{MaxBodyBytes: maxBody, RequestTimeout: time.Second, WriteTimeout: writeTimeout},
		watch:          watch.Config{KeepAlive: keepAlive},
	})
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			id := createOrder(t, c, 15, 5050, 1)
			w := watchOrder(t, c, id)
			first := w.next(t)
			// Keep-alives come at least keepAlive apart, so this many span
			// twice the write timeout however fast or slow the machine is:
			// the stream outlived it, whatever the clock says.
			repeats := int(2*writeTimeout/keepAlive) + 1
			for range repeats {
				m := w.next(t)
				if m.GetStatus() != first.GetStatus() || !m.GetChangedAt().AsTime().Equal(first.GetChangedAt().AsTime()) {
					t.Fatalf("keep-alive %v differs from the state %v", m, first)
				}
			}
			if _, err := c.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id}); err != nil {
				t.Fatal(err)
			}
			for {
				m := w.next(t)
				if m.GetStatus() == lomsv1.OrderStatus_ORDER_STATUS_PAYED {
					break
				}
			}
			if err := w.ended(t); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A replica that shuts down ends its streams with unavailable, so clients
// watch again elsewhere, and its shutdown does not wait for them.
func TestWatchOrderEndsOnShutdown(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["connect"]
	id := createOrder(t, c, 16, 5050, 1)
	base, stop := e.startReplica(t, replicaOptions{paymentTimeout: time.Minute, platform: platform.Config{MaxBodyBytes: maxBody, ShutdownTimeout: time.Minute}}, false)
	t.Cleanup(func() { _ = stop() })
	var ws []*watching
	for _, rc := range clients(t, base) {
		w := watchOrder(t, rc, id)
		w.next(t)
		ws = append(ws, w)
	}
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, w := range ws {
		wantCode(t, w.ended(t), connect.CodeUnavailable, "shutting down")
	}
}

// A listener whose database connection is cut listens again, and a change
// made meanwhile still reaches the watcher.
func TestWatchOrderSurvivesALostListener(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["grpc"]
	id := createOrder(t, c, 17, 5050, 1)
	w := watchOrder(t, c, id)
	w.next(t)
	// The listener connects beside the first read; wait for it.
	deadline := time.Now().Add(settle)
	for {
		var cut int
		if err := e.pool.QueryRow(t.Context(),
			`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
			store.ListenerName).Scan(&cut); err != nil || cut > 1 {
			t.Fatalf("terminated %d listeners (%v), want 1", cut, err)
		}
		if cut == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no listener to cut")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id}); err != nil {
		t.Fatal(err)
	}
	wantState(t, w.next(t), id, lomsv1.OrderStatus_ORDER_STATUS_PAYED)
	if err := w.ended(t); err != nil {
		t.Fatal(err)
	}
}
