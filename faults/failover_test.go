package faults_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// The failover tests lose Postgres's primary as a machine is lost (every
// process killed at once, its connections cut) under load and promote its
// standby. The services and the audit were given both addresses with
// target_session_attrs=read-write, and are not restarted: they must find
// the new primary by themselves.

// TestPostgresFailoverSynchronous: with a synchronous standby no
// acknowledged commit is lost, and the strict audit holds.
func TestPostgresFailoverSynchronous(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour, standby: synchronousStandby})
	initial := s.stockTotals()
	l := s.newLoad(0.6, 0.2)
	l.start(6)
	l.waitCreated(time.Time{}, 50, time.Minute)
	w := watchThroughFailover(t, s)

	killed, promoted := s.failover()
	l.waitCreated(promoted, 30, time.Minute)
	w.payAndHear(t)
	l.stop()

	// Canceled and DeadlineExceeded: calls under way when the primary died
	// (see load.call).
	l.checkCodes(connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled)
	if l.failures()[connect.CodeUnavailable] == 0 {
		t.Error("no client saw Unavailable while there was no primary")
	}
	// A webhook call that succeeded just before its commit failed is sent
	// again: at most one per partition (three) was under way.
	s.audit(initial, l, auditOptions{webhookRepeats: 3})
	logSwitch(t, l, killed, promoted)
}

// TestPostgresFailoverAsynchronous: with an asynchronous standby, commits
// acknowledged but not yet sent to the standby are lost with the primary.
// The test measures the loss under a hard load (it asserts no count: on
// loopback the standby is rarely far behind) and asserts what must hold
// regardless (see failoverAsynchronously).
func TestPostgresFailoverAsynchronous(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour, standby: asynchronousStandby})
	l := s.newLoad(0.6, 0.2)
	// Hard, so that many commits are under way when the primary dies.
	l.pace = time.Millisecond
	failoverAsynchronously(t, s, l, 16, 0)
}

// TestPostgresFailoverToALaggingStandby: the standby receives nothing
// while 50 orders are acknowledged, then the primary dies. Every one of
// them is lost, the audit finds each, and what must hold still holds: the
// same audit as TestPostgresFailoverAsynchronous, on a loss large enough
// to show what it does (ids given again, events of orders that no longer
// exist, notifications without their record).
func TestPostgresFailoverToALaggingStandby(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour, standby: asynchronousStandby})
	l := s.newLoad(0.6, 0.2)
	paused, killed, lost := failoverAsynchronously(t, s, l, 6, 50)
	gone := lost.lostIDs()
	behind := l.askedBetween(paused, killed)
	if len(behind) == 0 {
		t.Fatal("no order was asked for and acknowledged while the standby received nothing")
	}
	missed := 0
	for _, p := range behind {
		if !gone[p.id] {
			missed++
			t.Errorf("order %d, acknowledged while the standby received nothing, is not reported lost", p.id)
		}
	}
	t.Logf("%d orders asked for and acknowledged while the standby received nothing; %d of them reported lost", len(behind), len(behind)-missed)
}

// failoverAsynchronously puts the system, whose standby is asynchronous,
// under l with the given workers, and loses the primary; with lag, once
// that many orders were acknowledged while the standby received nothing.
// It then asserts what must hold whatever commits were lost (inspect: no
// oversold stock, reservations equal to the orders awaiting payment, whole
// orders, the outbox empty, each event in the topic once and every order's
// chain of events in it; every event delivered to the webhook and
// recorded at most once), that the services recover by themselves and
// lose nothing acknowledged after the promotion, and that clients saw no
// code but unavailable (or a call cut mid-way), except for payments and
// cancellations of lost orders. It logs what was lost, and returns when
// the standby was paused (the zero time without lag), when the primary
// died, and the losses.
func failoverAsynchronously(t *testing.T, s *system, l *load, workers, lag int) (paused, killed time.Time, lost losses) {
	t.Helper()
	initial := s.stockTotals()
	l.start(workers)
	l.waitCreated(time.Time{}, 200, time.Minute)
	if lag > 0 {
		s.pauseReplication()
		paused = time.Now()
		l.waitCreated(paused, lag, time.Minute)
	}

	killed, promoted := s.failover()
	l.waitCreated(promoted, 30, time.Minute)
	l.stop()

	sum, lost := s.inspect(initial, l, auditOptions{}, true)
	// A payment or cancellation of a lost order that succeeded after the
	// promotion was applied to another order: the one now under its id.
	misapplied := 0
	for _, p := range lost.lost {
		if p.at.After(promoted) {
			t.Errorf("order %d, acknowledged after the promotion, was lost", p.id)
		}
		if (p.payed || p.cancelled) && p.changed.After(promoted) {
			misapplied++
		}
	}
	excused := l.excuse(lost.lostIDs())
	l.checkCodes(connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled)
	for _, msgs := range [][]string{lost.orders, lost.payments, lost.cancellations, lost.orphanEvents, lost.goneEvents, lost.unrecorded} {
		for i, m := range msgs {
			if i == 3 {
				t.Logf("... and %d more like it", len(msgs)-i)
				break
			}
			t.Log(m)
		}
	}
	t.Logf("asynchronous failover lost: %v; payments or cancellations of lost orders: %d refused, %d acknowledged after the promotion (applied to the order given the lost one's id); %d webhook repeats; %d orders acknowledged in the second before the kill",
		lost, excused, misapplied, sum.webhookRepeats, l.createdBetween(killed.Add(-time.Second), killed))
	logSwitch(t, l, killed, promoted)
	return paused, killed, lost
}

// logSwitch reports how long the failover took as the clients saw it.
func logSwitch(t *testing.T, l *load, killed, promoted time.Time) {
	t.Helper()
	first := l.firstCreatedAfter(promoted)
	t.Logf("failover: standby promoted %v after the kill; first order acknowledged %v after the kill; failed attempts by code: %v",
		promoted.Sub(killed).Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond), l.failures())
}

// failoverWatch is a WatchOrder stream held open on LOMS across a
// failover, on an order of its own.
type failoverWatch struct {
	loms  lomsv1connect.LomsServiceClient
	id    int64
	msgs  chan *lomsv1.WatchOrderResponse
	ended chan error
}

// watchThroughFailover makes an order of one unit of the sku with the most
// stock (the load sells out the least stocked) and watches it.
func watchThroughFailover(t *testing.T, s *system) *failoverWatch {
	t.Helper()
	var sku uint32
	if err := s.lomsDB.QueryRow(t.Context(),
		"SELECT sku FROM stocks GROUP BY sku ORDER BY sum(total - reserved) DESC, sku LIMIT 1").Scan(&sku); err != nil {
		t.Fatal(err)
	}
	c := lomsv1connect.NewLomsServiceClient(http.DefaultClient, s.lomsURLs()[0])
	made, err := c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: 1 << 40, Items: []*lomsv1.OrderItem{{Sku: sku, Count: 1}}})
	if err != nil || made.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		t.Fatalf("the watched order: %v, %v", made, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	stream, err := c.WatchOrder(ctx, &lomsv1.WatchOrderRequest{OrderId: made.GetOrderId()})
	if err != nil {
		t.Fatal(err)
	}
	w := &failoverWatch{loms: c, id: made.GetOrderId(), msgs: make(chan *lomsv1.WatchOrderResponse, 16), ended: make(chan error, 1)}
	go func() {
		defer stream.Close()
		for stream.Receive() {
			w.msgs <- stream.Msg()
		}
		w.ended <- stream.Err()
	}()
	select {
	case m := <-w.msgs:
		if m.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
			t.Fatalf("the watch began with %v", m)
		}
	case err := <-w.ended:
		t.Fatalf("the watch ended before its first message: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no first message")
	}
	return w
}

// payAndHear pays the watched order on the promoted primary (retrying
// while LOMS answers unavailable) and waits for the stream, open since
// before the failover, to say PAYED: LOMS's listener found the new primary
// by itself.
func (w *failoverWatch) payAndHear(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := w.loms.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: w.id})
		if err == nil {
			break
		}
		if connect.CodeOf(err) != connect.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("paying the watched order after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		select {
		case m := <-w.msgs:
			if m.GetStatus() == lomsv1.OrderStatus_ORDER_STATUS_PAYED {
				return
			}
		case err := <-w.ended:
			// The messages read before the end were queued before it.
			for len(w.msgs) > 0 {
				if m := <-w.msgs; m.GetStatus() == lomsv1.OrderStatus_ORDER_STATUS_PAYED {
					return
				}
			}
			t.Fatalf("the watch ended (%v) before it told of the payment", err)
		case <-time.After(time.Minute):
			t.Fatal("the watch open across the failover never told of the payment")
		}
	}
}
