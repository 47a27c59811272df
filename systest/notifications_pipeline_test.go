package systest_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/sync/errgroup"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/notifications/notification"
	"github.com/minizon/minizon/services/notifications/notifytest"
)

// startLOMS runs the real LOMS (server, outbox relay, sweeper) on a fresh
// database, publishing to brokers, and returns a client.
func startEventsLOMS(t *testing.T, brokers []string, tel *telemetry.Telemetry) lomsv1connect.LomsServiceClient {
	t.Helper()
	url := pg.NewDatabase(t, "loms", func(ctx context.Context, url string) error { return migrate.Up(ctx, url, "loms") })
	app, err := loms.Open(t.Context(), loms.Config{
		DatabaseURL: url + "&pool_max_conns=30", KafkaBrokers: brokers,
		PaymentTimeout: time.Hour, SweepInterval: time.Second,
		Outbox: outbox.Config{PollInterval: 20 * time.Millisecond, BatchSize: 500, ProduceTimeout: 5 * time.Second,
			Partitions: 3},
	}, platform.Deps{Log: quiet, Tel: tel})
	if err != nil {
		t.Fatal(err)
	}
	var stocks []order.Stock
	for sku := uint32(1); sku <= 5; sku++ {
		stocks = append(stocks, order.Stock{SKU: sku, Warehouse: 1, Total: 100_000})
	}
	if _, err := app.Seed(t.Context(), stocks); err != nil {
		t.Fatal(err)
	}
	srv, err := platform.NewServer(platform.Config{MaxBodyBytes: 1 << 20}, quiet, tel)
	if err != nil {
		t.Fatal(err)
	}
	srv.MountApp(app)
	addr := rpctest.Serve(t, srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for _, w := range app.Workers() {
		g.Go(func() error { return w(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		_ = g.Wait()
		app.Close(context.Background())
	})
	return lomsv1connect.NewLomsServiceClient(http.DefaultClient, "http://"+addr)
}

// 500 orders made, paid and cancelled concurrently through LOMS's API:
// every status change is notified exactly once, each order's in order.
func TestEveryStatusChangeOfConcurrentOrdersIsNotifiedOnceInOrder(t *testing.T) {
	t.Parallel()
	broker := newEventsBroker(t)
	hook := notifytest.NewWebhook(t)
	client := startEventsLOMS(t, broker.ListenAddrs(), telemetry.Nop())
	run := notifytest.Start(t, notificationsDB(t), broker.ListenAddrs(), hook.URL, telemetry.Nop())

	const orders = 500
	want := map[int64][]notification.Status{}
	ids := make([]int64, orders)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range orders {
		g.Go(func() error {
			res, err := client.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{
				User: int64(i + 1), Items: []*lomsv1.OrderItem{{Sku: uint32(i%5 + 1), Count: 1}},
			})
			if err != nil {
				return err
			}
			id := res.GetOrderId()
			ids[i] = id
			switch i % 3 {
			case 0:
				_, err = client.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id})
			case 1:
				_, err = client.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: id})
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, id := range ids {
		want[id] = []notification.Status{notification.StatusNew, notification.StatusAwaitingPayment}
		switch i % 3 {
		case 0:
			want[id] = append(want[id], notification.StatusPayed)
		case 1:
			want[id] = append(want[id], notification.StatusCancelled)
		}
		total += len(want[id])
	}
	waitUntil(t, "every status change to be notified", func() bool { return len(hook.Received()) >= total })
	time.Sleep(200 * time.Millisecond) // duplicates, if any, would arrive now

	got := hook.Received()
	if len(got) != total {
		t.Errorf("webhook received %d notifications, want %d", len(got), total)
	}
	perEvent := map[string]int{}
	for _, p := range got {
		perEvent[p.EventID]++
		if perEvent[p.EventID] == 2 {
			t.Errorf("event %s (order %d, %s) notified twice", p.EventID, p.OrderID, p.Status)
		}
	}
	for id, statuses := range want {
		recs, err := run.App.Store().ForOrder(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var gotStatuses []notification.Status
		for _, r := range recs {
			gotStatuses = append(gotStatuses, r.Status)
		}
		if !slices.Equal(gotStatuses, statuses) {
			t.Errorf("order %d: recorded %v, want %v", id, gotStatuses, statuses)
		}
	}
}

// A notification's span links to the CreateOrder that caused it, across
// the outbox and Kafka.
func TestNotificationSpanLinksToTheRequestThatCausedIt(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := trace.NewTracerProvider(trace.WithSyncer(spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	broker := newEventsBroker(t)
	hook := notifytest.NewWebhook(t)
	client := startEventsLOMS(t, broker.ListenAddrs(), telemetry.Nop().WithTracing(tp))
	notifytest.Start(t, notificationsDB(t), broker.ListenAddrs(), hook.URL, telemetry.Nop().WithTracing(tp))

	if _, err := client.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{
		User: 9, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 2}},
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the order's two notifications", func() bool { return len(hook.Received()) == 2 })
	var create tracetest.SpanStub
	var notify []tracetest.SpanStub
	waitUntil(t, "the spans to end", func() bool {
		notify = notify[:0]
		for _, s := range spans.GetSpans() {
			switch s.Name {
			case lomsv1connect.LomsServiceCreateOrderProcedure[1:]:
				create = s
			case "notify new", "notify awaiting_payment":
				notify = append(notify, s)
			}
		}
		return create.SpanContext.IsValid() && len(notify) == 2
	})
	for _, s := range notify {
		if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != create.SpanContext.SpanID() ||
			s.Links[0].SpanContext.TraceID() != create.SpanContext.TraceID() {
			t.Errorf("span %q links to %+v, want the CreateOrder span %s", s.Name, s.Links, create.SpanContext.SpanID())
		}
	}
}

// waitUntil polls until cond holds; the limit only keeps a broken build
// from hanging, it measures nothing.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func notificationsDB(t testing.TB) string {
	t.Helper()
	return pg.NewDatabase(t, "notifications", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "notifications")
	})
}

func newEventsBroker(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, notifications.Topic), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}
