package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/notifications/notification"
	"github.com/minizon/minizon/services/notifications/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// newStore returns a store on a fresh, migrated database and a pool to
// inspect it with.
func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pg.NewPool(t, "notifications", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "notifications")
	})
	return store.New(pool), pool
}

// event is an order's move from previous to status, at a time Postgres
// stores exactly (microseconds).
func event(order int64, status, previous notification.Status) notification.Notification {
	return notification.Notification{
		EventID: uuid.New(), OrderID: order, User: 7, Status: status, Previous: previous,
		OccurredAt: time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
	}
}

// sender counts its calls and answers each with err.
type sender struct {
	calls atomic.Int64
	err   error
}

func (s *sender) send(context.Context, notification.Notification) error {
	s.calls.Add(1)
	return s.err
}

func deliver(t *testing.T, st *store.Store, n notification.Notification, s *sender) notification.Outcome {
	t.Helper()
	outcome, err := st.Deliver(t.Context(), n, s.send)
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return outcome
}

func forOrder(t *testing.T, st *store.Store, order int64) []notification.Record {
	t.Helper()
	got, err := st.ForOrder(t.Context(), order)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkRecord compares a record read back with what was delivered.
func checkRecord(t *testing.T, got notification.Record, n notification.Notification, outcome notification.Outcome) {
	t.Helper()
	if !got.OccurredAt.Equal(n.OccurredAt) {
		t.Errorf("OccurredAt %v, want %v", got.OccurredAt, n.OccurredAt)
	}
	got.OccurredAt = n.OccurredAt
	if got.Notification != n {
		t.Errorf("notification\n got %+v\nwant %+v", got.Notification, n)
	}
	if got.Text != n.Text() {
		t.Errorf("Text %q, want %q", got.Text, n.Text())
	}
	if got.Outcome != outcome {
		t.Errorf("Outcome %v, want %v", got.Outcome, outcome)
	}
}

func TestDeliverSendsNewEvent(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	n := event(42, notification.StatusAwaitingPayment, notification.StatusNew)
	var s sender
	if got := deliver(t, st, n, &s); got != notification.Sent {
		t.Fatalf("outcome %v, want sent", got)
	}
	if c := s.calls.Load(); c != 1 {
		t.Errorf("send called %d times, want 1", c)
	}
	recs := forOrder(t, st, 42)
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	checkRecord(t, recs[0], n, notification.Sent)
	if recs[0].Text != "Order 42 is awaiting payment" || recs[0].Failure != "" {
		t.Errorf("record %+v", recs[0])
	}
	if other := forOrder(t, st, 43); len(other) != 0 {
		t.Errorf("another order's records: %+v", other)
	}
}

func TestDeliverDropsDuplicate(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	n := event(42, notification.StatusNew, "")
	var first, second sender
	if got := deliver(t, st, n, &first); got != notification.Sent {
		t.Fatalf("first delivery: %v, want sent", got)
	}
	if got := deliver(t, st, n, &second); got != notification.Duplicate {
		t.Fatalf("second delivery: %v, want duplicate", got)
	}
	if c := second.calls.Load(); c != 0 {
		t.Errorf("duplicate sent %d times", c)
	}
	if recs := forOrder(t, st, 42); len(recs) != 1 {
		t.Errorf("records %+v, want 1", recs)
	}
}

func TestDeliverRetriesFailedSend(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	n := event(42, notification.StatusPayed, notification.StatusAwaitingPayment)
	down := &sender{err: errors.New("webhook answered 503 Service Unavailable")}
	outcome, err := st.Deliver(t.Context(), n, down.send)
	if !errors.Is(err, down.err) {
		t.Fatalf("Deliver: %v, %v; want an error wrapping the send error", outcome, err)
	}
	if down.calls.Load() != 1 {
		t.Errorf("send called %d times, want 1", down.calls.Load())
	}
	if recs := forOrder(t, st, 42); len(recs) != 0 {
		t.Fatalf("a failed send was recorded: %+v", recs)
	}

	var up sender
	if got := deliver(t, st, n, &up); got != notification.Sent {
		t.Fatalf("redelivery: %v, want sent", got)
	}
	if up.calls.Load() != 1 {
		t.Errorf("redelivery sent %d times, want 1", up.calls.Load())
	}
	recs := forOrder(t, st, 42)
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	checkRecord(t, recs[0], n, notification.Sent)
}

func TestDeliverRecordsRejection(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	n := event(42, notification.StatusCancelled, notification.StatusAwaitingPayment)
	rejecting := &sender{err: fmt.Errorf("%w: webhook answered 400 Bad Request: unknown user", notification.ErrRejected)}
	if got := deliver(t, st, n, rejecting); got != notification.Failed {
		t.Fatalf("outcome %v, want failed", got)
	}
	recs := forOrder(t, st, 42)
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	checkRecord(t, recs[0], n, notification.Failed)
	if recs[0].Failure != rejecting.err.Error() {
		t.Errorf("Failure %q, want %q", recs[0].Failure, rejecting.err)
	}

	var again sender
	if got := deliver(t, st, n, &again); got != notification.Duplicate {
		t.Errorf("redelivery: %v, want duplicate", got)
	}
	if again.calls.Load() != 0 {
		t.Errorf("a rejected notification was sent again")
	}
}

// TestDeliverRecordsAnyRejectionReason checks that a rejection is recorded
// whatever the receiver's reason says: the reason quotes the receiver's
// answer, which can be cut mid-character or be binary, and a rejection that
// cannot be recorded is retried (and sent) again and again.
func TestDeliverRecordsAnyRejectionReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, reason string
	}{
		{"cut mid-character", "webhook answered 400 Bad Request: " + strings.Repeat("я", 10) + "\xd1"},
		{"latin-1", "webhook answered 400 Bad Request: d\xe9j\xe0 vu"},
		{"nul byte", "webhook answered 400 Bad Request: \x00\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, _ := newStore(t)
			n := event(42, notification.StatusNew, "")
			rejecting := &sender{err: fmt.Errorf("%w: %s", notification.ErrRejected, tc.reason)}
			outcome, err := st.Deliver(t.Context(), n, rejecting.send)
			if err != nil || outcome != notification.Failed {
				t.Fatalf("Deliver: %v, %v; want failed", outcome, err)
			}
			recs := forOrder(t, st, 42)
			if len(recs) != 1 {
				t.Fatalf("records %+v, want 1", recs)
			}
			checkRecord(t, recs[0], n, notification.Failed)
			if !strings.HasPrefix(recs[0].Failure, "notification rejected: webhook answered 400 Bad Request: ") {
				t.Errorf("Failure %q", recs[0].Failure)
			}
			var again sender
			if got := deliver(t, st, n, &again); got != notification.Duplicate || again.calls.Load() != 0 {
				t.Errorf("redelivery: %v after %d sends, want duplicate", got, again.calls.Load())
			}
		})
	}
}

func TestDeliverConcurrentlySendsOnce(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	n := event(42, notification.StatusAwaitingPayment, notification.StatusNew)
	var calls atomic.Int64
	send := func(context.Context, notification.Notification) error {
		calls.Add(1)
		// Hold the claim a while, so that the others pile up behind it.
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	const workers = 20
	var (
		start    = make(chan struct{})
		wg       sync.WaitGroup
		outcomes = make([]notification.Outcome, workers)
		errs     = make([]error, workers)
	)
	for i := range workers {
		wg.Go(func() {
			<-start
			outcomes[i], errs[i] = st.Deliver(t.Context(), n, send)
		})
	}
	close(start)
	wg.Wait()
	count := map[notification.Outcome]int{}
	for i := range workers {
		if errs[i] != nil {
			t.Errorf("worker %d: %v", i, errs[i])
		}
		count[outcomes[i]]++
	}
	if c := calls.Load(); c != 1 {
		t.Errorf("send called %d times, want 1", c)
	}
	if count[notification.Sent] != 1 || count[notification.Duplicate] != workers-1 {
		t.Errorf("outcomes %v, want 1 sent and %d duplicate", count, workers-1)
	}
	if recs := forOrder(t, st, 42); len(recs) != 1 {
		t.Errorf("records %+v, want 1", recs)
	}
}

// TestDeliverConcurrentTakesOverFailedSend checks that a delivery waiting on
// another one's claim sends the event itself when that other send fails.
func TestDeliverConcurrentTakesOverFailedSend(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ctx := t.Context()
	n := event(42, notification.StatusPayed, notification.StatusAwaitingPayment)
	sending, fail := make(chan struct{}), make(chan struct{})
	firstErr := errors.New("connection reset")
	firstDone := make(chan error, 1)
	go func() {
		_, err := st.Deliver(ctx, n, func(context.Context, notification.Notification) error {
			close(sending)
			<-fail
			return firstErr
		})
		firstDone <- err
	}()
	<-sending

	type result struct {
		outcome notification.Outcome
		err     error
	}
	var second sender
	secondDone := make(chan result, 1)
	go func() {
		outcome, err := st.Deliver(ctx, n, second.send)
		secondDone <- result{outcome, err}
	}()
	// Fail the first send only once the second delivery waits for its claim.
	for waiting := false; !waiting; {
		select {
		case r := <-secondDone:
			close(fail)
			<-firstDone
			t.Fatalf("second Deliver did not wait for the first: %v, %v", r.outcome, r.err)
		default:
		}
		err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock')`).Scan(&waiting)
		if err != nil {
			close(fail)
			<-firstDone
			<-secondDone
			t.Fatal(err)
		}
		if !waiting {
			time.Sleep(time.Millisecond)
		}
	}
	close(fail)

	if err := <-firstDone; !errors.Is(err, firstErr) {
		t.Errorf("first Deliver: %v, want %v", err, firstErr)
	}
	if r := <-secondDone; r.err != nil || r.outcome != notification.Sent {
		t.Errorf("second Deliver: %v, %v; want sent", r.outcome, r.err)
	}
	if second.calls.Load() != 1 {
		t.Errorf("second delivery sent %d times, want 1", second.calls.Load())
	}
	recs := forOrder(t, st, 42)
	if len(recs) != 1 {
		t.Fatalf("records %+v, want 1", recs)
	}
	checkRecord(t, recs[0], n, notification.Sent)
}

func TestForOrderListsInDeliveryOrder(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	steps := []notification.Notification{
		event(42, notification.StatusNew, ""),
		event(42, notification.StatusAwaitingPayment, notification.StatusNew),
		event(42, notification.StatusPayed, notification.StatusAwaitingPayment),
	}
	// Event ids in descending order, so that listing by id would show up.
	for i := range steps {
		steps[i].EventID = uuid.MustParse(fmt.Sprintf("%08x-0000-4000-8000-000000000000", 0xf0000000-i))
		steps[i].OccurredAt = steps[i].OccurredAt.Add(time.Duration(i) * time.Second)
	}
	other := event(43, notification.StatusNew, "")
	other.User = 8
	var s sender
	deliver(t, st, steps[0], &s)
	deliver(t, st, other, &s)
	deliver(t, st, steps[1], &s)
	rejecting := &sender{err: fmt.Errorf("%w: gone", notification.ErrRejected)}
	deliver(t, st, steps[2], rejecting)
	deliver(t, st, steps[0], &s) // a redelivery changes nothing

	recs := forOrder(t, st, 42)
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Status))
	}
	if want := []string{"new", "awaiting_payment", "payed"}; !slices.Equal(got, want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	for i, r := range recs {
		outcome := notification.Sent
		if i == 2 {
			outcome = notification.Failed
		}
		checkRecord(t, r, steps[i], outcome)
	}
	if !strings.Contains(recs[2].Failure, "gone") {
		t.Errorf("Failure %q", recs[2].Failure)
	}
	others := forOrder(t, st, 43)
	if len(others) != 1 {
		t.Fatalf("order 43: %+v, want 1 record", others)
	}
	checkRecord(t, others[0], other, notification.Sent)
	if none := forOrder(t, st, 44); len(none) != 0 {
		t.Errorf("order without notifications: %#v, want empty", none)
	}
}
