package outbox_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

var cfg = outbox.Config{
	PollInterval:   20 * time.Millisecond,
	BatchSize:      50,
	ProduceTimeout: 10 * time.Second,
	Partitions:     3,
}

func startRelay(t *testing.T, st outbox.Source, brokers []string) {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordDeliveryTimeout(cfg.ProduceTimeout))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	relay := outbox.NewRelay(st, client, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		client.Close()
	})
}

type received struct {
	partition int32
	key       string
	event     *lomsv1.OrderEvent
}

// consume reads the topic from the start until want events arrived.
func consume(t *testing.T, brokers []string, want int) []received {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(outbox.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var out []received
	for len(out) < want {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("received %d of %d events before the deadline", len(out), want)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			e := &lomsv1.OrderEvent{}
			if err := proto.Unmarshal(r.Value, e); err != nil {
				t.Fatalf("undecodable record: %v", err)
			}
			out = append(out, received{partition: r.Partition, key: string(r.Key), event: e})
		})
	}
	return out
}

// unsent counts the outbox's rows: a published event leaves it.
func unsent(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// makeOrders creates n orders concurrently and pays or cancels most of
// them, returning the status sequence each order went through.
func makeOrders(t *testing.T, svc *order.Service, n int) map[int64][]lomsv1.OrderStatus {
	t.Helper()
	var mu sync.Mutex
	want := map[int64][]lomsv1.OrderStatus{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := svc.Create(t.Context(), int64(i+1), []order.Item{{SKU: 1, Count: 1}}, "")
			if err != nil {
				t.Error(err)
				return
			}
			seq := []lomsv1.OrderStatus{lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT}
			switch i % 3 {
			case 0:
				err = svc.Pay(t.Context(), o.ID)
				seq = append(seq, lomsv1.OrderStatus_ORDER_STATUS_PAYED)
			case 1:
				err = svc.Cancel(t.Context(), o.ID)
				seq = append(seq, lomsv1.OrderStatus_ORDER_STATUS_CANCELLED)
			}
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			want[o.ID] = seq
			mu.Unlock()
		})
	}
	wg.Wait()
	return want
}

// checkDelivery asserts exactly one record per status change, in order per
// order, keyed by order id, one partition per order.
func checkDelivery(t *testing.T, got []received, want map[int64][]lomsv1.OrderStatus) {
	t.Helper()
	seen := map[string]bool{}
	perOrder := map[int64][]lomsv1.OrderStatus{}
	partition := map[int64]int32{}
	for _, r := range got {
		e := r.event
		if seen[e.GetEventId()] {
			t.Fatalf("event %s delivered twice", e.GetEventId())
		}
		seen[e.GetEventId()] = true
		if r.key != strconv.FormatInt(e.GetOrderId(), 10) {
			t.Fatalf("record key %q for order %d", r.key, e.GetOrderId())
		}
		if p, ok := partition[e.GetOrderId()]; ok && p != r.partition {
			t.Fatalf("order %d spread over partitions %d and %d", e.GetOrderId(), p, r.partition)
		}
		partition[e.GetOrderId()] = r.partition
		perOrder[e.GetOrderId()] = append(perOrder[e.GetOrderId()], e.GetStatus())
	}
	if len(perOrder) != len(want) {
		t.Fatalf("events for %d orders, want %d", len(perOrder), len(want))
	}
	for id, seq := range want {
		if fmt.Sprint(perOrder[id]) != fmt.Sprint(seq) {
			t.Fatalf("order %d: events %v, want %v", id, perOrder[id], seq)
		}
	}
}

func TestRelayPublishesEveryChangeOnceInOrder(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	st, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Minute, time.Now)
	// Two relays, as with two LOMS replicas: they must not double-publish.
	startRelay(t, st, broker.ListenAddrs())
	startRelay(t, st, broker.ListenAddrs())

	want := makeOrders(t, svc, 60)
	checkPublished(t, broker.ListenAddrs(), pool, want)
}

func TestOrdersWorkWhileBrokerIsDownAndEventsFollow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	port := freePort(t)
	start := func() *kfake.Cluster {
		b, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir),
			kfake.AllowAutoTopicCreation())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	broker := start()
	brokers := broker.ListenAddrs()
	st, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Minute, time.Now)
	startRelay(t, st, brokers)

	// The broker stops while the relay may be mid-batch: records it took
	// but did not acknowledge must not come back as duplicates.
	before := makeOrders(t, svc, 5)
	broker.Close()

	during := makeOrders(t, svc, 20)
	if unsent(t, pool) == 0 {
		t.Fatal("no events waiting while the broker is down")
	}
	broker = start()
	t.Cleanup(broker.Close)

	want := map[int64][]lomsv1.OrderStatus{}
	maps.Copy(want, before)
	maps.Copy(want, during)
	checkPublished(t, brokers, pool, want)
}

// newBroker is an in-process Kafka broker for one test.
func newBroker(t *testing.T) *kfake.Cluster {
	t.Helper()
	b, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// checkPublished reads the topic and checks that it holds want's events,
// once each and in order, and nothing else, and that the outbox has none
// of them left.
func checkPublished(t *testing.T, brokers []string, pool *pgxpool.Pool, want map[int64][]lomsv1.OrderStatus) {
	t.Helper()
	checkDelivery(t, consume(t, brokers, countEvents(want)), want)
	waitAllSent(t, pool)
	if n := recordsInTopic(t, brokers); n != int64(countEvents(want)) {
		t.Fatalf("%d records in the topic, want exactly %d", n, countEvents(want))
	}
}

// waitAllSent waits until the relay has published every outbox row.
func waitAllSent(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if unsent(t, pool) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("outbox rows still unsent")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordsInTopic counts every record ever written to the topic, so that a
// duplicate written after the last one a consumer read is still noticed.
func recordsInTopic(t *testing.T, brokers []string) int64 {
	t.Helper()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	offsets, err := kadm.NewClient(client).ListEndOffsets(t.Context(), outbox.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n += o.Offset
	})
	return n
}

func countEvents(m map[int64][]lomsv1.OrderStatus) int {
	n := 0
	for _, seq := range m {
		n += len(seq)
	}
	return n
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// crashingSource lets the first batches reach Kafka, then fails them before
// they leave the outbox, as when LOMS is killed between the broker's
// acknowledgement and the commit.
type crashingSource struct {
	outbox.Source
	mu      sync.Mutex
	crashes int
}

func (c *crashingSource) PublishBatch(ctx context.Context, max int,
	publish func(context.Context, outbox.Batch) (outbox.Published, error)) (int, error) {
	return c.Source.PublishBatch(ctx, max, func(ctx context.Context, b outbox.Batch) (outbox.Published, error) {
		p, err := publish(ctx, b)
		c.mu.Lock()
		defer c.mu.Unlock()
		if err == nil && c.crashes > 0 && len(b.Messages) > 0 {
			c.crashes--
			return outbox.Published{}, fmt.Errorf("killed after the broker acknowledged %d events", len(b.Messages))
		}
		return p, err
	})
}

func TestEventsPublishedButNotRemovedAreNotPublishedAgain(t *testing.T) {
	t.Parallel()
	broker := newBroker(t)
	st, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Minute, time.Now)
	want := makeOrders(t, svc, 30)

	// Two batches are produced and lost before their removal; then the
	// relay, as a restarted replica would, must find them in the topic.
	startRelay(t, &crashingSource{Source: st, crashes: 2}, broker.ListenAddrs())
	waitAllSent(t, pool)
	more := makeOrders(t, svc, 10)
	maps.Copy(want, more)

	checkPublished(t, broker.ListenAddrs(), pool, want)
}

func TestRelayGoesOnWhenTheTopicStartsEmpty(t *testing.T) {
	t.Parallel()
	st, pool := lomstest.NewStore(t, pg, time.Now, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	svc := order.NewService(st, time.Minute, time.Now)
	first, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	client, err := kgo.NewClient(kgo.SeedBrokers(first.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	relay := outbox.NewRelay(st, client, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	go func() { defer close(done); _ = relay.Run(ctx) }()
	makeOrders(t, svc, 10)
	waitAllSent(t, pool)
	stop()
	<-done
	client.Close()
	first.Close()

	// A new, empty broker, as `minizon dev` starts with a kept database:
	// the relay must not wait for offsets the new topic never had.
	second := newBroker(t)
	startRelay(t, st, second.ListenAddrs())
	want := makeOrders(t, svc, 10)
	checkPublished(t, second.ListenAddrs(), pool, want)
}
