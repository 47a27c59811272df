package faults_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
)

const topic = "loms.order-events"

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
//   - every event is recorded by Notifications once and reached the webhook.
func (s *system) audit(initial stockSnapshot, l *load, opts auditOptions) summary {
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

	// Stock.
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
	s.checkClients(l, status)
	l.mu.Lock()
	sum.clientOrders = len(l.orders)
	l.mu.Unlock()
	// Orders no client heard of: at most one CreateOrder per worker was
	// abandoned when the load stopped. A retry that made a second order
	// instead of returning the first (a broken idempotency key) shows here.
	if extra := sum.orders - sum.clientOrders; extra > l.workers {
		t.Errorf("%d orders no client was told of; at most %d (one per worker) may be", extra, l.workers)
	}

	// Events: the outbox is empty (the settling above), so the topic must
	// hold each order's whole chain of events, once.
	events := s.checkTopic(status)
	sum.events = len(events)

	// Notifications.
	if err := waitFor(ctx, 60*time.Second, func() (bool, error) {
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
	if len(recorded) != len(events) {
		t.Errorf("%d notifications recorded for %d events", len(recorded), len(events))
	}
	byEvent, _ := s.hook.counts()
	repeats := 0
	for id := range events {
		if recorded[id.String()] != "sent" {
			t.Errorf("event %s: notification %q, want sent", id, recorded[id.String()])
			break
		}
		switch n := byEvent[id.String()]; {
		case n == 0:
			t.Errorf("event %s never reached the webhook", id)
		case n > 1:
			repeats += n - 1
		}
	}
	if repeats > opts.webhookRepeats {
		t.Errorf("webhook got %d repeated notifications, at most %d may be", repeats, opts.webhookRepeats)
	}
	t.Logf("audit: %d orders (%d payed, %d cancelled, %d failed, %d awaiting), %d acknowledged to clients, %d events, %d webhook repeats; failed attempts by code: %v",
		sum.orders, sum.payed, sum.cancelled, sum.failed, sum.awaiting, sum.clientOrders, sum.events, repeats, l.failures())
	return sum
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

// checkClients compares what clients were told with what LOMS holds.
func (s *system) checkClients(l *load, status map[int64]string) {
	t := s.t
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, p := range l.orders {
		got, ok := status[id]
		want := ""
		switch {
		case !ok:
			t.Errorf("order %d acknowledged to its client is not in the database", id)
			continue
		case p.payed:
			want = "payed"
		case p.cancelled || p.refused:
			want = "cancelled"
		case p.status == lomsv1.OrderStatus_ORDER_STATUS_FAILED:
			want = "failed"
		}
		if want != "" && got != want {
			t.Errorf("order %d: %s, but its client was told %s", id, got, want)
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
			t.Errorf("order %d holds user %d items %v; its client asked for user %d items %v", id, user, items, p.user, p.items)
		}
	}
}

// checkTopic reads the whole topic and checks it against the orders: every
// record is an event of a known order, in the order's partition, under its
// key, once, and each order's events form its whole chain of status
// changes. It returns the events read: event id to order id.
func (s *system) checkTopic(status map[int64]string) map[uuid.UUID]int64 {
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
			if _, ok := status[e.GetOrderId()]; !ok {
				t.Errorf("event %s is of order %d, which LOMS does not have", e.GetEventId(), e.GetOrderId())
			}
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
	for id, st := range status {
		if err := checkChain(perOrder[id], st); err != nil {
			t.Errorf("order %d: %v", id, err)
		}
	}
	return events
}

// checkChain checks that an order's events start with NEW, each following
// the one before, and end with the order's status.
func checkChain(events []*lomsv1.OrderEvent, final string) error {
	prev := lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
	var got []string
	for _, e := range events {
		got = append(got, e.GetStatus().String())
		if e.GetPreviousStatus() != prev {
			return fmt.Errorf("events %v: %s follows %s, its previous status says %s", got, e.GetStatus(), prev, e.GetPreviousStatus())
		}
		prev = e.GetStatus()
	}
	want := "ORDER_STATUS_" + map[string]string{"awaiting_payment": "AWAITING_PAYMENT", "payed": "PAYED",
		"cancelled": "CANCELLED", "failed": "FAILED", "new": "NEW"}[final]
	if len(events) == 0 || prev.String() != want || events[0].GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_NEW {
		return fmt.Errorf("events %v, want NEW first and %s last", got, want)
	}
	if slices.ContainsFunc(events[1:], func(e *lomsv1.OrderEvent) bool { return e.GetStatus() == lomsv1.OrderStatus_ORDER_STATUS_NEW }) {
		return fmt.Errorf("events %v: NEW twice", got)
	}
	return nil
}
