package notifications_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/kafkaconsumer"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/notifications/notification"
	"github.com/minizon/minizon/services/notifications/notifytest"
	"github.com/minizon/minizon/services/notifications/sender"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// waitFor polls until cond holds; the limit only keeps a broken build from
// hanging, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newDatabase(t testing.TB) string {
	t.Helper()
	return pg.NewDatabase(t, "notifications", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "notifications")
	})
}

func newBroker(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, notifications.Topic),
		kfake.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// event is an order event as LOMS writes it.
func event(orderID int64, status, previous lomsv1.OrderStatus) *kgo.Record {
	b, err := proto.Marshal(&lomsv1.OrderEvent{
		EventId: uuid.NewString(), OrderId: orderID, User: orderID*10 + 1, Status: status, PreviousStatus: previous,
		OccurredAt: timestamppb.Now(), Items: []*lomsv1.OrderItem{{Sku: 1, Count: 1}},
	})
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: notifications.Topic, Key: strconv.AppendInt(nil, orderID, 10), Value: b}
}

// lifecycle is one order's events: placed, then paid or cancelled.
func lifecycle(orderID int64) []*kgo.Record {
	last := lomsv1.OrderStatus_ORDER_STATUS_PAYED
	if orderID%2 == 0 {
		last = lomsv1.OrderStatus_ORDER_STATUS_CANCELLED
	}
	return []*kgo.Record{
		event(orderID, lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED),
		event(orderID, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, lomsv1.OrderStatus_ORDER_STATUS_NEW),
		event(orderID, last, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT),
	}
}

func produce(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(notifications.Topic))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func eventID(t *testing.T, rec *kgo.Record) string {
	t.Helper()
	var ev lomsv1.OrderEvent
	if err := proto.Unmarshal(rec.Value, &ev); err != nil {
		t.Fatal(err)
	}
	return ev.GetEventId()
}

// checkExactlyOnceInOrder asserts that every produced event reached the
// webhook exactly once, and each order's in the order produced.
func checkExactlyOnceInOrder(t *testing.T, got []sender.Payload, orders map[int64][]*kgo.Record) {
	t.Helper()
	perEvent := map[string]int{}
	perOrder := map[int64][]string{}
	for _, p := range got {
		perEvent[p.EventID]++
		perOrder[p.OrderID] = append(perOrder[p.OrderID], p.EventID)
	}
	for id, recs := range orders {
		var want []string
		for _, r := range recs {
			want = append(want, eventID(t, r))
		}
		if !slices.Equal(perOrder[id], want) {
			t.Errorf("order %d: notified events %v, want %v in this order", id, perOrder[id], want)
		}
	}
	for id, n := range perEvent {
		if n != 1 {
			t.Errorf("event %s notified %d times", id, n)
		}
	}
}

// backlog produces the events of 200 orders.
func backlog(t *testing.T, broker *kfake.Cluster) (map[int64][]*kgo.Record, []*kgo.Record) {
	t.Helper()
	orders := map[int64][]*kgo.Record{}
	var all []*kgo.Record
	for id := int64(1); id <= 200; id++ {
		orders[id] = lifecycle(id)
		all = append(all, orders[id]...)
	}
	produce(t, broker.ListenAddrs(), all...)
	return orders, all
}

// startMidStream starts an instance with a slowed-down webhook and returns
// once it has notified 100 events, so that it is caught mid-stream.
func startMidStream(t *testing.T, db string, broker *kfake.Cluster, hook *notifytest.Webhook) *notifytest.Running {
	t.Helper()
	var seen atomic.Int64
	hook.SetFail(func(sender.Payload) int {
		seen.Add(1)
		time.Sleep(2 * time.Millisecond)
		return 0
	})
	r := notifytest.Start(t, db, broker.ListenAddrs(), hook.URL, telemetry.Nop())
	waitFor(t, "the first instance to notify 100 events", func() bool { return seen.Load() >= 100 })
	return r
}

// The consumer is killed mid-stream after its offset commits were lost
// (the broker refused them), so everything it handled is delivered again
// to its successor: nothing is lost and nothing is sent twice.
func TestRestartMidStreamLosesNothingAndSendsNothingTwice(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	var refuseCommits atomic.Bool
	refuseCommits.Store(true)
	broker.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		broker.KeepControl()
		if !refuseCommits.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.GroupAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	db := newDatabase(t)
	hook := notifytest.NewWebhook(t)
	orders, all := backlog(t, broker)
	first := startMidStream(t, db, broker, hook)
	first.Stop()
	handled := len(hook.Received())
	if handled >= len(all) {
		t.Fatalf("the first instance handled all %d events before it was stopped; the test proves nothing", handled)
	}

	refuseCommits.Store(false)
	hook.SetFail(nil)
	notifytest.Start(t, db, broker.ListenAddrs(), hook.URL, telemetry.Nop())
	waitFor(t, "every event to be notified", func() bool { return len(hook.Received()) >= len(all) })
	// Let redeliveries that would be duplicates arrive, if there were any.
	time.Sleep(200 * time.Millisecond)
	checkExactlyOnceInOrder(t, hook.Received(), orders)
	t.Logf("first instance notified %d of %d events; its successor the rest", handled, len(all))
}

// An undecodable record goes to the dead-letter topic with the reason, and
// the records after it on its partition are handled.
func TestUndecodableRecordGoesToDeadLetterTopic(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	hook := notifytest.NewWebhook(t)
	notifytest.Start(t, newDatabase(t), broker.ListenAddrs(), hook.URL, telemetry.Nop())

	garbage := &kgo.Record{Topic: notifications.Topic, Key: []byte("7"), Value: []byte("not a protobuf \xff\xff\xff")}
	noUser := event(7, lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED)
	var ev lomsv1.OrderEvent
	_ = proto.Unmarshal(noUser.Value, &ev)
	ev.User = 0
	noUser.Value, _ = proto.Marshal(&ev)
	good := event(7, lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED)
	produce(t, broker.ListenAddrs(), garbage, noUser, good)

	waitFor(t, "the good event to be notified", func() bool { return len(hook.Received()) == 1 })
	if got := hook.Received()[0].EventID; got != eventID(t, good) {
		t.Errorf("notified event %s, want the good one %s", got, eventID(t, good))
	}

	client, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ConsumeTopics(notifications.DeadLetterTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var dead []*kgo.Record
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for len(dead) < 2 && ctx.Err() == nil {
		client.PollFetches(ctx).EachRecord(func(r *kgo.Record) { dead = append(dead, r) })
	}
	if len(dead) != 2 {
		t.Fatalf("dead-letter topic holds %d records, want 2", len(dead))
	}
	for i, want := range []*kgo.Record{garbage, noUser} {
		r := dead[i]
		if string(r.Value) != string(want.Value) || string(r.Key) != "7" {
			t.Errorf("dead letter %d: key %q value %q, want the original record", i, r.Key, r.Value)
		}
		reason := header(r, kafkaconsumer.HeaderReason)
		if reason == "" {
			t.Errorf("dead letter %d has no %s header", i, kafkaconsumer.HeaderReason)
		}
		if header(r, kafkaconsumer.HeaderTopic) != notifications.Topic || header(r, kafkaconsumer.HeaderOffset) == "" {
			t.Errorf("dead letter %d does not say where it came from: %v", i, r.Headers)
		}
		t.Logf("dead letter %d: %s", i, reason)
	}
	if reason := header(dead[1], kafkaconsumer.HeaderReason); !strings.Contains(reason, "user 0") {
		t.Errorf("reason %q does not name the bad field", reason)
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// A webhook that fails for one order's notifications holds back that
// order's partition only; once it recovers, the held notifications follow,
// once each and in order. A notification the webhook rejects for good is
// recorded as failed and does not block the ones after it.
func TestFailingDeliveryIsRetriedWithoutBlockingOtherPartitions(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	hook := notifytest.NewWebhook(t)
	run := notifytest.Start(t, newDatabase(t), broker.ListenAddrs(), hook.URL, telemetry.Nop())

	// Two orders on different partitions, as the producer's default
	// partitioner places them.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(notifications.Topic)
	partition := func(id int64) int {
		return part.Partition(&kgo.Record{Key: strconv.AppendInt(nil, id, 10)}, 3)
	}
	stuck, other := int64(1), int64(2)
	for partition(other) == partition(stuck) {
		other++
	}

	var down atomic.Bool
	down.Store(true)
	hook.SetFail(func(p sender.Payload) int {
		if p.OrderID == stuck && down.Load() {
			return http.StatusServiceUnavailable
		}
		if p.OrderID == other && p.Status == string(notification.StatusAwaitingPayment) {
			return http.StatusUnprocessableEntity // rejected for good
		}
		return 0
	})
	orders := map[int64][]*kgo.Record{stuck: lifecycle(stuck), other: lifecycle(other)}
	produce(t, broker.ListenAddrs(), append(orders[stuck], orders[other]...)...)

	waitFor(t, "the other order's deliverable notifications", func() bool { return len(hook.Received()) == 2 })
	for _, p := range hook.Received() {
		if p.OrderID != other {
			t.Fatalf("order %d was notified while its webhook was down", p.OrderID)
		}
	}
	recs, err := run.App.Store().ForOrder(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || recs[1].Outcome != notification.Failed || !strings.Contains(recs[1].Failure, "422") {
		t.Errorf("other order's records: %+v; want 3 with the second failed (422)", recs)
	}

	down.Store(false)
	waitFor(t, "the held order's notifications", func() bool { return len(hook.Received()) == 5 })
	got := hook.Received()
	var stuckGot []sender.Payload
	for _, p := range got {
		if p.OrderID == stuck {
			stuckGot = append(stuckGot, p)
		}
	}
	checkExactlyOnceInOrder(t, stuckGot, map[int64][]*kgo.Record{stuck: orders[stuck]})
}

// A second instance joining mid-stream takes over some partitions; the
// first keeps the others and goes on with them: every event is notified
// once, in order per order.
func TestScalingOutMidStreamKeepsEveryPartitionMoving(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	db := newDatabase(t)
	hook := notifytest.NewWebhook(t)
	orders, all := backlog(t, broker)
	startMidStream(t, db, broker, hook)
	notifytest.Start(t, db, broker.ListenAddrs(), hook.URL, telemetry.Nop())
	waitFor(t, "every event to be notified", func() bool { return len(hook.Received()) >= len(all) })
	time.Sleep(200 * time.Millisecond)
	checkExactlyOnceInOrder(t, hook.Received(), orders)
}
