package faults_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
)

// Each test runs a system, puts it under load, applies one fault, lets the
// load go on until the system has visibly recovered by itself, and audits.
// The waits for orders are generous (a minute each): they keep a system
// that stopped from hanging the test, and a busy machine only makes the
// orders come more slowly.

func TestPostgresRestartUnderLoad(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour})
	initial := s.stockTotals()
	l := s.newLoad(0.6, 0.2)
	l.start(6)
	l.waitCreated(time.Time{}, 30, time.Minute)

	s.crashPostgres(3 * time.Second)
	up := time.Now()
	// No restart of LOMS or Notifications: they must reconnect themselves.
	l.waitCreated(up, 30, time.Minute)
	l.stop()

	// The gap is seen as Unavailable, never as a server fault.
	l.checkCodes(connect.CodeUnavailable)
	if l.failures()[connect.CodeUnavailable] == 0 {
		t.Error("no client saw Unavailable while Postgres was down")
	}
	// A webhook call that succeeded just before its commit failed is sent
	// again: at most one per partition (three) was under way.
	s.audit(initial, l, auditOptions{webhookRepeats: 3})
}

func TestBrokerDownUnderLoad(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour})
	initial := s.stockTotals()
	l := s.newLoad(0.6, 0.2)
	l.pace = 50 * time.Millisecond
	l.start(4)
	l.waitCreated(time.Time{}, 30, time.Minute)

	s.broker.stop()
	down := time.Now()
	var backlog []int64
	for time.Since(down) < *brokerDown {
		time.Sleep(time.Second)
		n, err := s.unsent()
		if err != nil {
			t.Fatal(err)
		}
		backlog = append(backlog, n)
	}
	during := l.createdBetween(down, time.Now())
	s.broker.start()
	up := time.Now()
	l.waitCreated(up, 30, time.Minute)
	l.stop()
	if err := waitFor(t.Context(), time.Minute, func() (bool, error) {
		n, err := s.unsent()
		return err == nil && n == 0, err
	}); err != nil {
		t.Fatalf("the outbox did not drain: %v", err)
	}
	drained := time.Since(up)

	if during == 0 {
		t.Errorf("no order acknowledged in the %v the broker was down", *brokerDown)
	}
	if len(backlog) < 2 || backlog[len(backlog)-1] <= backlog[0] {
		t.Errorf("the outbox did not grow while the broker was down: %v", backlog)
	}
	l.checkCodes() // orders never notice the broker
	s.audit(initial, l, auditOptions{})
	t.Logf("broker down %v: %d orders acknowledged meanwhile; unsent events each second: %v; all sent %v after the broker came back",
		*brokerDown, during, backlog, drained.Round(time.Millisecond))
}

func TestLOMSKilledUnderLoad(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour})
	initial := s.stockTotals()
	l := s.newLoad(0.6, 0.2)
	l.start(6)
	l.waitCreated(time.Time{}, 50, time.Minute)

	s.loms[0].kill()
	time.Sleep(time.Second)
	s.loms[0].start()
	l.waitCreated(time.Now(), 30, time.Minute)
	l.stop()

	// Canceled: calls under way when LOMS died (see load.call).
	l.checkCodes(connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled)
	s.audit(initial, l, auditOptions{})
}

func TestNotificationsKilledUnderLoad(t *testing.T) {
	s := newSystem(t, options{loms: 1, notifications: 1, paymentTimeout: time.Hour, sessionTimeout: 6 * time.Second})
	initial := s.stockTotals()
	l := s.newLoad(0.6, 0.2)
	l.start(6)
	l.waitCreated(time.Time{}, 50, time.Minute)

	s.notifications[0].kill()
	l.waitCreated(time.Now(), 30, time.Minute)
	s.notifications[0].start()
	l.waitCreated(time.Now(), 30, time.Minute)
	l.stop()

	l.checkCodes()
	// A webhook call under way when the process died is sent again: at
	// most one per partition (three).
	s.audit(initial, l, auditOptions{webhookRepeats: 3})
}

func TestReplicasShareTheWork(t *testing.T) {
	// A short payment window, and a fifth of the orders left unpaid, so
	// that both sweepers have work.
	s := newSystem(t, options{loms: 2, notifications: 2, paymentTimeout: 2 * time.Second})
	initial := s.stockTotals()
	l := s.newLoad(0.5, 0.2)
	l.start(8)
	l.waitCreated(time.Time{}, 300, 2*time.Minute)
	l.stop()

	l.checkCodes()
	sum := s.audit(initial, l, auditOptions{sweepAll: true})
	if sum.cancelled == 0 || sum.payed == 0 {
		t.Errorf("%d orders payed and %d cancelled; the load should make both", sum.payed, sum.cancelled)
	}
	_, byReplica := s.hook.counts()
	if len(byReplica) != 2 {
		t.Errorf("notifications by replica: %v, want both replicas delivering", byReplica)
	}
	t.Logf("notifications by replica: %v", byReplica)
}

// TestSoak runs the faults in rotation, on replicas, for as long as -soak
// says, then audits once: a long run finds what a short one is too lucky
// to hit.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("a long run, not part of the suite: go test ./faults/ -run Soak -v -timeout 0 -soak 10m")
	}
	s := newSystem(t, options{loms: 2, notifications: 2, paymentTimeout: 5 * time.Second, sessionTimeout: 6 * time.Second})
	initial := s.stockTotals()
	l := s.newLoad(0.5, 0.2)
	l.pace = 50 * time.Millisecond
	l.start(8)
	// Each fault may leave webhook calls to be sent again: one per
	// partition under way in each Notifications replica it interrupts.
	repeats := 0
	faults := []struct {
		name string
		do   func(i int)
	}{
		{"Postgres crashed for 3s", func(int) { s.crashPostgres(3 * time.Second); repeats += 3 * len(s.notifications) }},
		{"broker down for 10s", func(int) { s.broker.stop(); time.Sleep(10 * time.Second); s.broker.start() }},
		{"a LOMS replica killed", func(i int) {
			p := s.loms[i%len(s.loms)]
			p.kill()
			time.Sleep(time.Second)
			p.start()
		}},
		{"a Notifications replica killed", func(i int) {
			p := s.notifications[i%len(s.notifications)]
			p.kill()
			repeats += 3
			time.Sleep(time.Second)
			p.start()
		}},
	}
	end := time.Now().Add(*soak)
	for i := 0; time.Now().Before(end); i++ {
		l.waitCreated(time.Now(), 50, time.Minute)
		f := faults[i%len(faults)]
		t.Logf("%s %s", time.Now().Format(time.TimeOnly), f.name)
		f.do(i / len(faults))
	}
	l.waitCreated(time.Now(), 50, time.Minute)
	l.stop()
	l.checkCodes(connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled)
	s.audit(initial, l, auditOptions{webhookRepeats: repeats, sweepAll: true})
}
