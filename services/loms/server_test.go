package loms_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/watch"
	"github.com/minizon/minizon/services/loms/wire"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

const maxBody = 64 << 10

type env struct {
	base string
	pool *pgxpool.Pool
	// url and brokers are what another replica connects to.
	url     string
	brokers []string
}

// startLOMS runs the real LOMS (server, relay, sweeper, order watchers) on
// a fresh database and an in-process broker, on a loopback port.
func startLOMS(t *testing.T, paymentTimeout time.Duration) env {
	t.Helper()
	return startLOMSWith(t, paymentTimeout, platform.Config{MaxBodyBytes: maxBody, ShutdownTimeout: 5 * time.Second})
}

// startLOMSWith is startLOMS with the server's platform settings.
func startLOMSWith(t *testing.T, paymentTimeout time.Duration, pcfg platform.Config) env {
	t.Helper()
	return startLOMSOpts(t, replicaOptions{paymentTimeout: paymentTimeout, platform: pcfg})
}

// replicaOptions are the settings of one LOMS replica in a test.
type replicaOptions struct {
	paymentTimeout time.Duration
	platform       platform.Config
	watch          watch.Config
}

// startLOMSOpts is startLOMS with every setting given.
func startLOMSOpts(t *testing.T, o replicaOptions) env {
	t.Helper()
	url := pg.NewDatabase(t, "loms", func(ctx context.Context, url string) error { return migrate.Up(ctx, url, "loms") })
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	e := env{url: url, brokers: broker.ListenAddrs()}
	e.base = e.replica(t, o, true)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e.pool = pool
	return e
}

// replica runs one more LOMS on e's database and broker, stopped at the
// test's end, and returns its base URL. seed adds the tests' stock.
func (e env) replica(t *testing.T, o replicaOptions, seed bool) string {
	t.Helper()
	base, stop := e.startReplica(t, o, seed)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return base
}

// startReplica is replica with the stop left to the caller: stop shuts the
// replica down as a signal would and returns what its Run returned.
func (e env) startReplica(t *testing.T, o replicaOptions, seed bool) (base string, stop func() error) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg := loms.Config{
		// Pool settings in the URL must not reach the server (migrations,
		// admin connections) and must size the pool for concurrency tests.
		DatabaseURL:    e.url + "&pool_max_conns=40",
		KafkaBrokers:   e.brokers,
		PaymentTimeout: o.paymentTimeout,
		SweepInterval:  50 * time.Millisecond,
		Watch:          o.watch,
		Outbox:         outbox.Config{PollInterval: 50 * time.Millisecond, BatchSize: 100, ProduceTimeout: 10 * time.Second, Partitions: 1},
	}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := loms.Open(ctx, cfg, platform.Deps{Log: log, Tel: telemetry.Nop()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if seed {
		if _, err := app.Seed(ctx, []order.Stock{
			{SKU: 1001, Warehouse: 1, Total: 5}, {SKU: 1001, Warehouse: 2, Total: 5}, {SKU: 2002, Warehouse: 3, Total: 1},
			{SKU: 5050, Warehouse: 1, Total: 30}, {SKU: 5050, Warehouse: 2, Total: 20},
		}); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	srv := rpctest.NewServer(t, o.platform, log)
	srv.MountApp(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, app.Workers()...) }()
	var once sync.Once
	var runErr error
	return "http://" + ln.Addr().String(), func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
			app.Close(context.Background())
		})
		return runErr
	}
}

// clients returns a LomsService client per protocol.
func clients(t testing.TB, base string) map[string]lomsv1connect.LomsServiceClient {
	return rpctest.Clients(t, base, lomsv1connect.NewLomsServiceClient)
}

func stocks(t *testing.T, c lomsv1connect.LomsServiceClient, sku uint32) map[int64]uint64 {
	t.Helper()
	res, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: sku})
	if err != nil {
		t.Fatal(err)
	}
	m := map[int64]uint64{}
	for _, s := range res.GetStocks() {
		m[s.GetWarehouseId()] = s.GetCount()
	}
	return m
}

func TestOrderLifecycleOverEveryProtocol(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			before := stocks(t, c, 1001)
			created, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{
				User: 7, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 1}}, IdempotencyKey: "k-" + name,
			})
			if err != nil {
				t.Fatal(err)
			}
			if created.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("status %v", created.GetStatus())
			}
			again, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{
				User: 7, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 1}}, IdempotencyKey: "k-" + name,
			})
			if err != nil || again.GetOrderId() != created.GetOrderId() {
				t.Fatalf("retry with the same key: %v %v", again, err)
			}
			after := stocks(t, c, 1001)
			if sum(before)-sum(after) != 1 {
				t.Fatalf("stocks %v -> %v: want one unit reserved", before, after)
			}
			listed, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: created.GetOrderId()})
			if err != nil {
				t.Fatal(err)
			}
			if listed.GetUser() != 7 || len(listed.GetItems()) != 1 || listed.GetItems()[0].GetCount() != 1 {
				t.Fatalf("listed %v", listed)
			}
			if _, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: created.GetOrderId()}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: created.GetOrderId()}); err != nil {
				t.Fatalf("paying twice is a no-op: %v", err)
			}
			_, err = c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: created.GetOrderId()})
			wantCode(t, err, connect.CodeFailedPrecondition, "order_id")
			if got := stocks(t, c, 1001); sum(got) != sum(after) {
				t.Fatalf("stocks after payment %v, want %v available", got, sum(after))
			}

			second, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 7, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 2}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: second.GetOrderId()}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: second.GetOrderId()}); err != nil {
				t.Fatalf("cancelling twice is a no-op: %v", err)
			}
			if got := stocks(t, c, 1001); sum(got) != sum(after) {
				t.Fatalf("stocks after cancel %v, want %v available", got, sum(after))
			}
			listed, _ = c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: second.GetOrderId()})
			if listed.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_CANCELLED {
				t.Fatalf("status %v", listed.GetStatus())
			}
		})
	}
}

func TestShortStockGivesFailedOrder(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["grpc"]
	res, err := c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{
		User: 1, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 1}, {Sku: 2002, Count: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("status %v, want FAILED", res.GetStatus())
	}
	if got := stocks(t, c, 1001); sum(got) != 10 {
		t.Fatalf("a failed order must reserve nothing: %v", got)
	}
	_, err = c.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: res.GetOrderId()})
	wantCode(t, err, connect.CodeFailedPrecondition, "failed")
	if got := stocks(t, c, 424242); len(got) != 0 {
		t.Fatalf("unknown sku: %v, want an empty list", got)
	}
}

func TestUnpaidOrderIsCancelledAfterTheWindow(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, 300*time.Millisecond)
	c := clients(t, e.base)["connect"]
	ctx := t.Context()
	res, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 1, Items: []*lomsv1.OrderItem{{Sku: 2002, Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		o, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
		if err != nil {
			t.Fatal(err)
		}
		if o.GetStatus() == lomsv1.OrderStatus_ORDER_STATUS_CANCELLED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order still %v long after its window", o.GetStatus())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := stocks(t, c, 2002); got[3] != 1 {
		t.Fatalf("stock not released: %v", got)
	}
	_, err = c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: res.GetOrderId()})
	wantCode(t, err, connect.CodeFailedPrecondition, "cancelled")
}

func TestBadInputIsRejectedWithoutWrites(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	ctx := context.Background()
	tooMany := make([]*lomsv1.OrderItem, 1001)
	for i := range tooMany {
		tooMany[i] = &lomsv1.OrderItem{Sku: 1001, Count: 1}
	}
	item := func(sku, count uint32) []*lomsv1.OrderItem { return []*lomsv1.OrderItem{{Sku: sku, Count: count}} }
	cases := []struct {
		name  string
		call  func(lomsv1connect.LomsServiceClient) error
		code  connect.Code
		field string
	}{
		{"create user 0", create(&lomsv1.CreateOrderRequest{Items: item(1001, 1)}), connect.CodeInvalidArgument, "user"},
		{"create no items", create(&lomsv1.CreateOrderRequest{User: 1}), connect.CodeInvalidArgument, "items"},
		{"create 1001 items", create(&lomsv1.CreateOrderRequest{User: 1, Items: tooMany}), connect.CodeInvalidArgument, "items"},
		{"create sku 0", create(&lomsv1.CreateOrderRequest{User: 1, Items: item(0, 1)}), connect.CodeInvalidArgument, "items[0].sku"},
		{"create count 0", create(&lomsv1.CreateOrderRequest{User: 1, Items: item(1001, 0)}), connect.CodeInvalidArgument, "items[0].count"},
		{"create count 65536", create(&lomsv1.CreateOrderRequest{User: 1, Items: item(1001, 65536)}), connect.CodeInvalidArgument, "items[0].count"},
		{"create long key", create(&lomsv1.CreateOrderRequest{User: 1, Items: item(1001, 1), IdempotencyKey: strings.Repeat("k", 129)}), connect.CodeInvalidArgument, "idempotency_key"},
		{"list order 0", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{})
			return err
		}, connect.CodeInvalidArgument, "order_id"},
		{"pay order 0", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{})
			return err
		}, connect.CodeInvalidArgument, "order_id"},
		{"cancel order 0", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{})
			return err
		}, connect.CodeInvalidArgument, "order_id"},
		{"stocks sku 0", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.Stocks(ctx, &lomsv1.StocksRequest{})
			return err
		}, connect.CodeInvalidArgument, "sku"},
		{"list unknown order", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: 987654})
			return err
		}, connect.CodeNotFound, "order_id"},
		{"pay unknown order", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: 987654})
			return err
		}, connect.CodeNotFound, "order_id"},
		{"cancel unknown order", func(c lomsv1connect.LomsServiceClient) error {
			_, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: 987654})
			return err
		}, connect.CodeNotFound, "order_id"},
	}
	for proto, c := range clients(t, e.base) {
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				wantCode(t, tc.call(c), tc.code, tc.field)
			})
		}
	}

	// Bodies no client library would send, as curl users do.
	raw := []struct {
		name, body string
		code       string
	}{
		{"malformed JSON", `{"orderId": 1, "sku": [`, "invalid_argument"},
		{"wrong type", `{"user": "one", "orderId": "x", "sku": "y"}`, "invalid_argument"},
		{"number beyond its type", `{"user": 1, "orderId": 1e30, "sku": 4294967296, "items": [{"sku": 1001, "count": 4294967296}]}`, "invalid_argument"},
		{"oversized body", `{"user": 1, "idempotencyKey": "` + strings.Repeat("x", maxBody) + `"}`, "resource_exhausted"},
	}
	for _, rpc := range []string{"CreateOrder", "ListOrder", "OrderPayed", "CancelOrder", "Stocks", "ReceiveStock"} {
		for _, tc := range raw {
			t.Run("raw/"+rpc+"/"+tc.name, func(t *testing.T) {
				res, err := http.Post(e.base+"/minizon.loms.v1.LomsService/"+rpc, "application/json", strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				var body struct{ Code, Message string }
				b, _ := io.ReadAll(res.Body)
				if err := json.Unmarshal(b, &body); err != nil || body.Code != tc.code {
					t.Fatalf("HTTP %d %s: want code %s", res.StatusCode, b, tc.code)
				}
			})
		}
	}

	var orders, events int
	if err := e.pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM outbox)").Scan(&orders, &events); err != nil {
		t.Fatal(err)
	}
	if orders != 0 || events != 0 {
		t.Fatalf("bad input wrote %d orders and %d events", orders, events)
	}
	if got := stocks(t, clients(t, e.base)["connect"], 1001); sum(got) != 10 {
		t.Fatalf("bad input changed stock: %v", got)
	}
}

// TestConcurrentRPCsNeverOversell: 200 concurrent CreateOrder calls over
// gRPC for a sku with 50 units in 2 warehouses reserve exactly 50.
func TestConcurrentRPCsNeverOversell(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["grpc"]
	var mu sync.Mutex
	count := map[lomsv1.OrderStatus]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			res, err := c.CreateOrder(context.Background(), &lomsv1.CreateOrderRequest{
				User: int64(i + 1), Items: []*lomsv1.OrderItem{{Sku: 5050, Count: 1}},
			})
			if err != nil {
				t.Errorf("order %d: %v", i, err)
				return
			}
			mu.Lock()
			count[res.GetStatus()]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if count[lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT] != 50 || count[lomsv1.OrderStatus_ORDER_STATUS_FAILED] != 150 {
		t.Fatalf("outcomes %v, want 50 awaiting payment and 150 failed", count)
	}
	if got := stocks(t, c, 5050); len(got) != 0 {
		t.Fatalf("stocks %v, want none left", got)
	}
}

// TestDatabaseDownIsUnavailable: callers get Unavailable with a message
// naming the dependency, not Internal and not the driver's text.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1.
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@127.0.0.1:1/loms?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	st := store.New(pool, wire.EncodeEvent, time.Now)
	svc := order.NewService(st, time.Minute, time.Now)
	srv := rpctest.NewServer(t, platform.Config{MaxBodyBytes: maxBody, ShutdownTimeout: time.Second}, log)
	path, h := lomsv1connect.NewLomsServiceHandler(loms.NewServer(svc, watch.NewHub(st, st, watch.Config{}, log), log), srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := lomsv1connect.NewLomsServiceClient(hs.Client(), hs.URL)
	_, err = c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: 1, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 1}}})
	wantCode(t, err, connect.CodeUnavailable, "database")
	_, err = c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1})
	wantCode(t, err, connect.CodeUnavailable, "database")
	stream, err := c.WatchOrder(t.Context(), &lomsv1.WatchOrderRequest{OrderId: 1})
	if err != nil {
		t.Fatal(err)
	}
	for stream.Receive() {
		t.Fatalf("WatchOrder sent %v without a database", stream.Msg())
	}
	wantCode(t, stream.Err(), connect.CodeUnavailable, "database")
}

// TestReadsAnswerGET: ListOrder and Stocks have no side effects, so Connect
// clients (and browsers' caches) may use GET.
func TestReadsAnswerGET(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	var methods []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		methods = append(methods, r.Method)
		return http.DefaultTransport.RoundTrip(r)
	})
	c := lomsv1connect.NewLomsServiceClient(&http.Client{Transport: rt}, e.base, connect.WithHTTPGet())
	if got := stocks(t, c, 1001); sum(got) != 10 {
		t.Fatalf("stocks %v", got)
	}
	_, err := c.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: 1})
	wantCode(t, err, connect.CodeNotFound, "order_id")
	if len(methods) != 2 || methods[0] != http.MethodGet || methods[1] != http.MethodGet {
		t.Fatalf("methods %v, want two GETs", methods)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func create(req *lomsv1.CreateOrderRequest) func(lomsv1connect.LomsServiceClient) error {
	return func(c lomsv1connect.LomsServiceClient) error {
		_, err := c.CreateOrder(context.Background(), req)
		return err
	}
}

func wantCode(t *testing.T, err error, code connect.Code, inMessage string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	if !strings.Contains(ce.Message(), inMessage) {
		t.Fatalf("message %q does not name %q", ce.Message(), inMessage)
	}
}

func sum(m map[int64]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
