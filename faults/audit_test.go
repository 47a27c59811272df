package faults_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
)

const topic = "loms.order-events"

// notificationsGroup is Notifications' consumer group.
const notificationsGroup = "notifications"

// stockSnapshot is every sku's total over its warehouses.
type stockSnapshot map[int64]int64

func (s *system) stockTotals() stockSnapshot {
	s.t.Helper()
	rows, err := s.lomsQ.Query(s.t.Context(), "SELECT sku, sum(total)::bigint FROM stocks GROUP BY sku")
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := stockSnapshot{}
	for rows.Next() {
		var sku, total int64
		if err := rows.Scan(&sku, &total); err != nil {
			s.t.Fatal(err)
		}
		out[sku] = total
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// auditOptions relax what a fault may leave behind.
type auditOptions struct {
	// webhookRepeats is how many notifications the receiver may get twice:
	// a Notifications process killed after its webhook call and before its
	// commit sends that event again (the receiver de-duplicates by the
	// Idempotency-Key header).
	webhookRepeats int
	// sweepAll waits until the sweeper has cancelled every order left
	// unpaid, not only those already expired.
	sweepAll bool
}

// summary is what the audit counted.
type summary struct {
	orders, payed, cancelled, failed, awaiting int
	events                                     int
	clientOrders                               int
	// webhookRepeats counts notifications the webhook got more than once.
	webhookRepeats int
}

// losses are what a fault that loses acknowledged commits leaves behind
// (the failover to an asynchronous standby): the strict audit fails on
// any, inspect only finds them. Each is described in a message.
type losses struct {
	// orders acknowledged to their clients that the database does not
	// hold, or holds as another order under the same id.
	orders []string
	// payments and cancellations acknowledged to their clients whose
	// orders the database holds as still awaiting payment.
	payments, cancellations []string
	// orphanEvents are events in the topic of orders the database does
	// not hold, and goneEvents those of changes it does not hold (the
	// order is there, in an earlier state or as another order).
	orphanEvents, goneEvents []string
	// unrecorded are events in the topic that Notifications has no record
	// of, although they reached the webhook.
	unrecorded []string
	// lost are the lost orders, as their clients were told of them.
	lost []*placed
}

// lostIDs are the ids of the lost orders, whose payments and cancellations
// may have been refused.
func (lo losses) lostIDs() map[int64]bool {
	ids := make(map[int64]bool, len(lo.lost))
	for _, p := range lo.lost {
		ids[p.id] = true
	}
	return ids
}

func (lo losses) String() string {
	return fmt.Sprintf("%d acknowledged orders lost, %d payments and %d cancellations lost; in the topic %d events of orders and %d of changes the database no longer has; %d events unrecorded by Notifications",
		len(lo.orders), len(lo.payments), len(lo.cancellations), len(lo.orphanEvents), len(lo.goneEvents), len(lo.unrecorded))
}

// audit waits for the system to settle and checks that nothing was lost,
// applied twice or half-applied:
//   - every sku's total is its initial total less the units of payed orders;
//   - reserved = the open reservations = the items of orders awaiting payment,
//     and only such orders hold reservations;
//   - every order is whole (items, not left NEW) and agrees with what its
//     client was told;
//   - the outbox is empty and the topic holds each order's whole chain of
//     status changes exactly once, in one partition, in order, ending with
//     the order's status, and no other record;
//   - every event is recorded by Notifications once and reached the webhook,
//     at most opts.webhookRepeats of them more than once.
func (s *system) audit(initial stockSnapshot, l *load, opts auditOptions) summary {
	t := s.t
	t.Helper()
	sum, lost := s.inspect(initial, l, opts, false)
	for _, msgs := range [][]string{lost.orders, lost.payments, lost.cancellations, lost.orphanEvents, lost.goneEvents, lost.unrecorded} {
		for i, m := range msgs {
			if i == 10 {
				t.Errorf("... and %d more like it", len(msgs)-i)
				break
			}
			t.Error(m)
		}
	}
	if sum.webhookRepeats > opts.webhookRepeats {
		t.Errorf("webhook got %d repeated notifications, at most %d may be", sum.webhookRepeats, opts.webhookRepeats)
	}
	return sum
}

// inspect waits for the system to settle, fails the test on anything that
// must hold even when acknowledged commits were lost (the stock and its
// reservations agree with the orders, no order half-made or applied twice,
// the outbox empty, no event twice in the topic or out of its order's
// partition, every event delivered to the webhook and recorded at most
// once), and finds what was lost. With lossy, commits may have been lost:
// it waits for Notifications by its consumer group's progress rather than
// by its record of every event.
func (s *system) inspect(initial stockSnapshot, l *load, opts auditOptions, lossy bool) (summary, losses) {
	t := s.t
	t.Helper()
	ctx := t.Context()
	var sum summary
	scalar := func(sql string) int {
		var n int64
		if err := s.lomsQ.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return int(n)
	}
	// Settled: calls the clients abandoned are finished, every event is
	// published, and no order the sweeper should cancel is left.
	if err := waitFor(ctx, 60*time.Second, func() (bool, error) {
		var busy, unsent, awaiting int64
		err := s.lomsDB.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM pg_stat_activity WHERE datname = 'loms' AND pid <> pg_backend_pid()
				AND state NOT IN ('idle')),
			(SELECT count(*) FROM outbox),
			(SELECT count(*) FROM orders WHERE status = 'awaiting_payment' AND (pay_by < now() OR $1))`,
			opts.sweepAll).Scan(&busy, &unsent, &awaiting)
		return err == nil && busy == 0 && unsent == 0 && awaiting == 0, err
	}); err != nil {
		t.Fatalf("the system did not settle (busy sessions, unsent events or orders to sweep): %v", err)
	}
	// Every check below reads one snapshot.
	tx, err := s.lomsDB.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)); s.lomsQ = s.lomsDB }()
	s.lomsQ = tx

	// Stock: payments and reservations are in the transactions of their
	// orders' changes, so these hold whatever commits were lost.
	payedUnits := s.unitsBy("payed")
	awaitingUnits := s.unitsBy("awaiting_payment")
	reservedUnits := map[int64]int64{}
	s.scanPairs("SELECT sku, sum(count)::bigint FROM reservations GROUP BY sku", reservedUnits)
	reservedCol := map[int64]int64{}
	s.scanPairs("SELECT sku, sum(reserved)::bigint FROM stocks GROUP BY sku HAVING sum(reserved) > 0", reservedCol)
	now := s.stockTotals()
	for sku, was := range initial {
		if want := was - payedUnits[sku]; now[sku] != want {
			t.Errorf("sku %d: total %d, want %d (initial %d less %d payed)", sku, now[sku], want, was, payedUnits[sku])
		}
	}
	if len(now) != len(initial) {
		t.Errorf("%d skus in stock, %d at the start", len(now), len(initial))
	}
	if n := scalar("SELECT count(*) FROM stocks WHERE reserved > total OR total < 0"); n != 0 {
		t.Errorf("%d stock rows oversold (reserved above total)", n)
	}
	if !maps.Equal(reservedCol, awaitingUnits) || !maps.Equal(reservedUnits, awaitingUnits) {
		t.Errorf("reserved per sku: stocks %v, reservations %v, orders awaiting payment %v",
			reservedCol, reservedUnits, awaitingUnits)
	}
	if n := scalar(`SELECT count(*) FROM reservations r JOIN orders o ON o.id = r.order_id
		WHERE o.status <> 'awaiting_payment'`); n != 0 {
		t.Errorf("%d reservations held by orders not awaiting payment", n)
	}
	if n := scalar(`SELECT count(*) FROM (
			SELECT i.order_id, i.sku, i.count FROM order_items i JOIN orders o ON o.id = i.order_id
			WHERE o.status = 'awaiting_payment'
		) want FULL JOIN (
			SELECT order_id, sku, sum(count) AS count FROM reservations GROUP BY order_id, sku
		) got USING (order_id, sku)
		WHERE want.count IS DISTINCT FROM got.count`); n != 0 {
		t.Errorf("%d items of orders awaiting payment not reserved exactly", n)
	}

	// Orders.
	if n := scalar(`SELECT count(*) FROM orders o WHERE status = 'new'
		OR NOT EXISTS (SELECT 1 FROM order_items WHERE order_id = o.id)`); n != 0 {
		t.Errorf("%d orders half-made (left NEW or without items)", n)
	}
	status := s.orderStatuses()
	for _, st := range status {
		sum.orders++
		switch st {
		case "payed":
			sum.payed++
		case "cancelled":
			sum.cancelled++
		case "failed":
			sum.failed++
		case "awaiting_payment":
			sum.awaiting++
		}
	}
	lost, matched := s.checkClients(l, status)
	l.mu.Lock()
	sum.clientOrders = len(l.orders) + len(l.superseded)
	l.mu.Unlock()
	// Orders no client heard of: at most one CreateOrder per worker was
	// abandoned when the load stopped. A retry that made a second order
	// instead of returning the first (a broken idempotency key) shows here.
	if extra := sum.orders - matched; extra > l.workers {
		t.Errorf("%d orders no client was told of; at most %d (one per worker) may be", extra, l.workers)
	}

	// Events: the outbox is empty (the settling above), so the topic must
	// hold each order's whole chain of events, once.
	events := s.checkTopic(status, &lost)
	sum.events = len(events)

	// Notifications.
	if lossy {
		// Records of events may be lost for good: wait until Notifications
		// has handled the whole topic instead (it commits its consumer
		// group's offsets after recording).
		if err := waitFor(ctx, 60*time.Second, s.notifiedAll); err != nil {
			t.Errorf("Notifications did not handle the whole topic: %v", err)
		}
	} else if err := waitFor(ctx, 60*time.Second, func() (bool, error) {
		var n int64
		err := s.notifyDB.QueryRow(ctx, "SELECT count(*) FROM notifications").Scan(&n)
		return err == nil && int(n) >= len(events), err
	}); err != nil {
		t.Errorf("notifications recorded: %v", err)
	}
	recorded := map[string]string{}
	rows, err := s.notifyDB.Query(ctx, "SELECT event_id::text, outcome FROM notifications")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			t.Fatal(err)
		}
		recorded[id] = outcome
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for text := range recorded {
		if id, err := uuid.Parse(text); err != nil || events[id] == 0 {
			t.Errorf("notification %s recorded for an event not in the topic", text)
			break
		}
	}
	byEvent, _ := s.hook.counts()
	for id, order := range events {
		switch outcome, ok := recorded[id.String()]; {
		case !ok:
			lost.unrecorded = append(lost.unrecorded, fmt.Sprintf("event %s (order %d) has no notification recorded", id, order))
		case outcome != "sent":
			t.Errorf("event %s: notification %q, want sent", id, outcome)
		}
		switch n := byEvent[id.String()]; {
		case n == 0:
			t.Errorf("event %s never reached the webhook", id)
		case n > 1:
			sum.webhookRepeats += n - 1
		}
	}
	t.Logf("audit: %d orders (%d payed, %d cancelled, %d failed, %d awaiting), %d acknowledged to clients, %d events, %d webhook repeats; failed attempts by code: %v",
		sum.orders, sum.payed, sum.cancelled, sum.failed, sum.awaiting, sum.clientOrders, sum.events, sum.webhookRepeats, l.failures())
	return sum, lost
}

// notifiedAll reports whether Notifications' consumer group has committed
// every partition of the topic to its end.
func (s *system) notifiedAll() (bool, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(s.broker.addr))
	if err != nil {
		return false, err
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	ends, err := adm.ListEndOffsets(s.t.Context(), topic)
	if err != nil {
		return false, err
	}
	committed, err := adm.FetchOffsets(s.t.Context(), notificationsGroup)
	if err != nil {
		return false, err
	}
	done := true
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := committed.Lookup(topic, o.Partition)
		done = done && (o.Offset == 0 || ok && c.At >= o.Offset)
	})
	return done, nil
}

func (s *system) unitsBy(status string) map[int64]int64 {
	out := map[int64]int64{}
	s.scanPairs(`SELECT i.sku, sum(i.count)::bigint FROM order_items i JOIN orders o ON o.id = i.order_id
		WHERE o.status = '`+status+`' GROUP BY i.sku`, out)
	return out
}

func (s *system) scanPairs(sql string, into map[int64]int64) {
	s.t.Helper()
	rows, err := s.lomsQ.Query(s.t.Context(), sql)
	if err != nil {
		s.t.Fatalf("%s: %v", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v int64
		if err := rows.Scan(&k, &v); err != nil {
			s.t.Fatal(err)
		}
		into[k] = v
	}
	if err := rows.Err(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *system) orderStatuses() map[int64]string {
	s.t.Helper()
	rows, err := s.lomsQ.Query(s.t.Context(), "SELECT id, status::text FROM orders")
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var st string
		if err := rows.Scan(&id, &st); err != nil {
			s.t.Fatal(err)
		}
		out[id] = st
	}
	return out
}

// checkClients compares what clients were told with what LOMS holds. An
// order the database does not hold (or holds as another), or holds in an
// earlier state than its client was told, is a loss; any other
// disagreement fails the test. matched counts the acknowledged orders
// that the database holds.
func (s *system) checkClients(l *load, status map[int64]string) (lost losses, matched int) {
	t := s.t
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.superseded {
		lost.orders = append(lost.orders, fmt.Sprintf("order %d acknowledged to its client was lost; another order was acknowledged under its id", p.id))
		lost.lost = append(lost.lost, p)
	}
	for id, p := range l.orders {
		got, ok := status[id]
		if !ok {
			lost.orders = append(lost.orders, fmt.Sprintf("order %d acknowledged to its client is not in the database", id))
			lost.lost = append(lost.lost, p)
			continue
		}
		items := map[uint32]uint32{}
		rows, err := s.lomsQ.Query(t.Context(), "SELECT sku, count FROM order_items WHERE order_id = $1", id)
		if err != nil {
			t.Fatal(err)
		}
		var user int64
		for rows.Next() {
			var sku, n int64
			if err := rows.Scan(&sku, &n); err != nil {
				t.Fatal(err)
			}
			items[uint32(sku)] = uint32(n)
		}
		rows.Close()
		if err := s.lomsQ.QueryRow(t.Context(), "SELECT user_id FROM orders WHERE id = $1", id).Scan(&user); err != nil {
			t.Fatal(err)
		}
		if user != p.user || !maps.Equal(items, p.items) {
			lost.orders = append(lost.orders, fmt.Sprintf("order %d holds user %d items %v; its client asked for user %d items %v",
				id, user, items, p.user, p.items))
			lost.lost = append(lost.lost, p)
			continue
		}
		matched++
		want := ""
		switch {
		case p.payed:
			want = "payed"
		case p.cancelled || p.refused:
			want = "cancelled"
		case p.status == lomsv1.OrderStatus_ORDER_STATUS_FAILED:
			want = "failed"
		}
		switch {
		case want == "" || got == want:
		case got == "awaiting_payment" && p.payed:
			lost.payments = append(lost.payments, fmt.Sprintf("order %d: awaiting payment, but its client was told payed", id))
		case got == "awaiting_payment" && p.cancelled:
			lost.cancellations = append(lost.cancellations, fmt.Sprintf("order %d: awaiting payment, but its client was told cancelled", id))
		default:
			t.Errorf("order %d: %s, but its client was told %s", id, got, want)
		}
	}
	return lost, matched
}

// checkTopic reads the whole topic and checks it against the orders: every
// record is an event, in its order's partition, under its key, once. Each
// order's events hold its whole chain of status changes, ending with its
// status; events of orders the database does not hold, or outside that
// chain, are losses. It returns the events read: event id to order id.
func (s *system) checkTopic(status map[int64]string, lost *losses) map[uuid.UUID]int64 {
	t := s.t
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(s.broker.addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ends, err := kadm.NewClient(client).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var inTopic int64
	ends.Each(func(o kadm.ListedOffset) { inTopic += o.Offset })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	seen := map[string]bool{}
	events := map[uuid.UUID]int64{}
	perOrder := map[int64][]*lomsv1.OrderEvent{}
	partition := map[int64]int32{}
	for read := int64(0); read < inTopic; {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", read, inTopic)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			read++
			e := &lomsv1.OrderEvent{}
			if err := proto.Unmarshal(r.Value, e); err != nil {
				t.Errorf("offset %d: undecodable record: %v", r.Offset, err)
				return
			}
			if seen[e.GetEventId()] {
				t.Errorf("event %s (order %d, %s) is in the topic twice", e.GetEventId(), e.GetOrderId(), e.GetStatus())
			}
			seen[e.GetEventId()] = true
			if id, err := uuid.Parse(e.GetEventId()); err != nil {
				t.Errorf("offset %d: event id %q: %v", r.Offset, e.GetEventId(), err)
			} else {
				events[id] = e.GetOrderId()
			}
			if string(r.Key) != strconv.FormatInt(e.GetOrderId(), 10) {
				t.Errorf("record key %q for order %d", r.Key, e.GetOrderId())
			}
			if p, ok := partition[e.GetOrderId()]; ok && p != r.Partition {
				t.Errorf("order %d in partitions %d and %d", e.GetOrderId(), p, r.Partition)
			}
			partition[e.GetOrderId()] = r.Partition
			perOrder[e.GetOrderId()] = append(perOrder[e.GetOrderId()], e)
		})
	}
	for id, evs := range perOrder {
		if _, ok := status[id]; !ok {
			for _, e := range evs {
				lost.orphanEvents = append(lost.orphanEvents, fmt.Sprintf("event %s is of order %d, which LOMS does not have (%s)",
					e.GetEventId(), id, e.GetStatus()))
			}
		}
	}
	for id, st := range status {
		gone, err := splitChain(perOrder[id], st)
		if err != nil {
			t.Errorf("order %d: %v", id, err)
			continue
		}
		for _, e := range gone {
			lost.goneEvents = append(lost.goneEvents, fmt.Sprintf("order %d: event %s (%s after %s) is not in the history of the order LOMS holds (%s), events %v",
				id, e.GetEventId(), e.GetStatus(), e.GetPreviousStatus(), st, statuses(perOrder[id])))
		}
	}
	return events
}

// splitChain finds in an order's events, in the topic's order, its chain of
// status changes: NEW first, each following the one before, ending with
// the order's status final. It is followed back from the last event of
// status final, so that where an id was given twice (the first order lost),
// it is the later order's. The events outside the chain are returned; an
// error when there is no such chain.
func splitChain(events []*lomsv1.OrderEvent, final string) (outside []*lomsv1.OrderEvent, err error) {
	want := lomsv1.OrderStatus(lomsv1.OrderStatus_value["ORDER_STATUS_"+strings.ToUpper(final)])
	in := make([]bool, len(events))
	status, before := want, len(events)
	for {
		i := before - 1
		for i >= 0 && events[i].GetStatus() != status {
			i--
		}
		if i < 0 {
			return nil, fmt.Errorf("events %v hold no chain from NEW to %s", statuses(events), want)
		}
		in[i] = true
		status, before = events[i].GetPreviousStatus(), i
		if status == lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
			if events[i].GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_NEW {
				return nil, fmt.Errorf("events %v: the chain to %s starts with %s, not NEW", statuses(events), want, events[i].GetStatus())
			}
			break
		}
	}
	for i, e := range events {
		if !in[i] {
			outside = append(outside, e)
		}
	}
	return outside, nil
}

func statuses(events []*lomsv1.OrderEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = strings.TrimPrefix(e.GetStatus().String(), "ORDER_STATUS_")
	}
	return out
}

func TestSplitChainFindsTheOrdersHistory(t *testing.T) {
	const (
		none     = lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
		created  = lomsv1.OrderStatus_ORDER_STATUS_NEW
		awaiting = lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT
		payed    = lomsv1.OrderStatus_ORDER_STATUS_PAYED
		failed   = lomsv1.OrderStatus_ORDER_STATUS_FAILED
		cancel   = lomsv1.OrderStatus_ORDER_STATUS_CANCELLED
	)
	// ev lists events as status pairs: previous, then new.
	ev := func(pairs ...lomsv1.OrderStatus) []*lomsv1.OrderEvent {
		var out []*lomsv1.OrderEvent
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, &lomsv1.OrderEvent{EventId: strconv.Itoa(i / 2), PreviousStatus: pairs[i], Status: pairs[i+1]})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		events  []*lomsv1.OrderEvent
		final   string
		outside []string // event ids
		err     bool
	}{
		{"whole", ev(none, created, created, awaiting, awaiting, payed), "payed", nil, false},
		{"failed at once", ev(none, created, created, failed), "failed", nil, false},
		{"an id given again: the later order's", ev(none, created, created, awaiting, awaiting, payed, none, created, created, failed), "failed",
			[]string{"0", "1", "2"}, false},
		{"a payment the database lost, then a cancellation", ev(none, created, created, awaiting, awaiting, payed, awaiting, cancel), "cancelled",
			[]string{"2"}, false},
		{"a change the database lost", ev(none, created, created, awaiting, awaiting, payed), "awaiting_payment", []string{"2"}, false},
		{"NEW twice", ev(none, created, none, created, created, awaiting), "awaiting_payment", []string{"0"}, false},
		{"no events", nil, "payed", nil, true},
		{"the final status missing", ev(none, created, created, awaiting), "payed", nil, true},
		{"no NEW", ev(created, awaiting, awaiting, payed), "payed", nil, true},
		{"a gap", ev(none, created, awaiting, payed), "payed", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outside, err := splitChain(tc.events, tc.final)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want one: %v", err, tc.err)
			}
			var ids []string
			for _, e := range outside {
				ids = append(ids, e.GetEventId())
			}
			if !slices.Equal(ids, tc.outside) {
				t.Fatalf("outside the chain: %v, want %v", ids, tc.outside)
			}
		})
	}
}
