package systest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/checkout/products"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/product"
	"github.com/minizon/minizon/services/product/catalog"
	prodstore "github.com/minizon/minizon/services/product/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

var quiet = slog.New(slog.NewJSONHandler(io.Discard, nil))

// dependencyTimeout is the system Checkout's LOMS_TIMEOUT and
// PRODUCT_TIMEOUT: long, so that no call a test expects to succeed runs
// out of it on a busy machine. The tests of the timeout itself make the
// dependency hang (forever), so they wait it out once per call.
const dependencyTimeout = 5 * time.Second

// forever is a delay no test outlasts: a dependency given it does not
// answer, and its calls end only when their caller gives up.
const forever = time.Duration(math.MaxInt64)

// faults lets a test break LOMS and ProductService from the outside.
type faults struct {
	productDelay atomic.Int64 // nanoseconds before ProductService answers
	productDown  atomic.Bool
	lomsDown     atomic.Bool
	lomsDelay    atomic.Int64 // nanoseconds before LOMS answers
	dropCreate   atomic.Int64 // CreateOrder responses to lose after LOMS acted
	productCalls atomic.Int64
	createOrders atomic.Int64

	// The ProductService calls in flight, the most there were at once, and
	// how many must be in flight at once before any is answered (0: none
	// waits); productHeld is closed once that many were.
	productMu       sync.Mutex
	productInFlight int
	productPeak     int
	productHold     int
	productHeld     chan struct{}
}

// holdProducts makes ProductService calls wait until n are in flight at
// once; then they all go on, and later ones do not wait.
func (f *faults) holdProducts(n int) {
	f.productMu.Lock()
	defer f.productMu.Unlock()
	f.productHold, f.productHeld = n, make(chan struct{})
}

// system is LOMS, ProductService and Checkout, each on its own port as in a
// real deployment, on fresh databases.
type system struct {
	checkout  string
	loms      lomsv1connect.LomsServiceClient
	lomsPool  *pgxpool.Pool
	cartPool  *pgxpool.Pool
	faults    *faults
	lomsAddr  string
	prodAddr  string
	cartDBURL string
	// authToken, when set, is what LOMS's and Checkout's mutating RPCs
	// ask for, and what Checkout sends LOMS.
	authToken string
}

// stock: sku 1001 has 10 units over two warehouses, 2002 has 1, skus
// 3000..3049 have 100 each; every one of them is in the catalog.
func start(t testing.TB) *system {
	t.Helper()
	return startWithAuth(t, "")
}

// startWithAuth is start with bearer-token authentication on, unless
// token is "".
func startWithAuth(t testing.TB, token string) *system {
	t.Helper()
	f := &faults{}
	sys := &system{faults: f, authToken: token}
	migrated := func(name string) string {
		return pg.NewDatabase(t, name, func(ctx context.Context, url string) error { return migrate.Up(ctx, url, name) })
	}

	lomsURL := migrated("loms")
	lapp, err := loms.Open(t.Context(), loms.Config{
		DatabaseURL:    lomsURL + "&pool_max_conns=30",
		KafkaBrokers:   []string{"127.0.0.1:1"}, // events wait in the outbox; no relay runs here
		PaymentTimeout: time.Minute, SweepInterval: time.Second,
		Outbox: outbox.Config{PollInterval: time.Second, BatchSize: 10, ProduceTimeout: time.Second, Partitions: 1},
	}, platform.Deps{Log: quiet, Tel: telemetry.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lapp.Close(context.Background()) })
	stocks := []order.Stock{{SKU: 1001, Warehouse: 1, Total: 6}, {SKU: 1001, Warehouse: 2, Total: 4}, {SKU: 2002, Warehouse: 3, Total: 1}}
	items := []catalog.Product{{SKU: 1001, Name: "Walnut Desk Lamp", Price: 2500}, {SKU: 2002, Name: "Linen Throw", Price: 990}}
	for sku := uint32(3000); sku < 3050; sku++ {
		stocks = append(stocks, order.Stock{SKU: sku, Warehouse: 1, Total: 100})
		items = append(items, catalog.Product{SKU: sku, Name: fmt.Sprintf("Item %d", sku), Price: sku})
	}
	if _, err := lapp.Seed(t.Context(), stocks); err != nil {
		t.Fatal(err)
	}
	lsrv := rpctest.NewServer(t, sys.platformConfig(), quiet)
	lsrv.MountApp(lapp)
	sys.lomsAddr = rpctest.Serve(t, f.lomsFaults(lsrv.Handler()))

	sys.prodAddr = startProduct(t, items, f.productFaults)

	sys.cartDBURL = migrated("checkout")
	sys.checkout = sys.startCheckout(t, sys.cartDBURL)
	sys.loms = lomsv1connect.NewLomsServiceClient(http.DefaultClient, "http://"+sys.lomsAddr)
	sys.lomsPool = newPool(t, lomsURL)
	sys.cartPool = newPool(t, sys.cartDBURL)
	return sys
}

// startProduct runs a real ProductService holding items on a fresh
// database, gRPC only as the original was, behind wrap, and returns its
// address.
func startProduct(t testing.TB, items []catalog.Product, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	url := pg.NewDatabase(t, "product", func(ctx context.Context, url string) error { return migrate.Up(ctx, url, "product") })
	app, err := product.Open(t.Context(), product.Config{DatabaseURL: url, Tokens: []string{"testtoken"}}, platform.Deps{Log: quiet, Tel: telemetry.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, _, err := prodstore.New(pool).Import(t.Context(), items); err != nil {
		t.Fatal(err)
	}
	srv := rpctest.NewServer(t, platform.Config{MaxBodyBytes: 1 << 20}, quiet)
	srv.MountApp(app)
	return rpctest.Serve(t, wrap(rpctest.GRPCOnly(srv.Handler())))
}

// startCheckout runs a Checkout on the given cart database, in front of the
// system's LOMS and ProductService, and returns its base URL.
func (s *system) startCheckout(t testing.TB, dbURL string) string {
	t.Helper()
	return s.startCheckoutWith(t, dbURL, checkout.DefaultProductCacheTTL)
}

// startCheckoutWith is startCheckout with a product cache TTL, 0 for none.
func (s *system) startCheckoutWith(t testing.TB, dbURL string, cacheTTL time.Duration) string {
	t.Helper()
	cfg := checkout.Config{
		DatabaseURL: dbURL,
		LOMS: rpcclient.Config{Addr: s.lomsAddr, Protocol: rpcclient.ProtocolGRPC, Timeout: dependencyTimeout,
			AuthToken: s.authToken},
		Product: rpcclient.Config{Addr: s.prodAddr, Protocol: rpcclient.ProtocolGRPC, Timeout: dependencyTimeout},
		Products: products.Config{Token: "testtoken", Concurrency: checkout.DefaultProductConcurrency,
			CacheTTL: cacheTTL, CacheSize: 1000},
	}
	app, err := checkout.Open(t.Context(), cfg, platform.Deps{Log: quiet, Tel: telemetry.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	srv := rpctest.NewServer(t, s.platformConfig(), quiet)
	srv.MountApp(app)
	return "http://" + rpctest.Serve(t, srv.Handler())
}

func (s *system) platformConfig() platform.Config {
	cfg := platform.Config{MaxBodyBytes: 1 << 20}
	if s.authToken != "" {
		cfg.AuthTokens = []string{s.authToken}
	}
	return cfg
}

func newPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func (f *faults) productFaults(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.productCalls.Add(1)
		if f.productDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.productMu.Lock()
		f.productInFlight++
		f.productPeak = max(f.productPeak, f.productInFlight)
		var held <-chan struct{}
		if f.productHold > 0 {
			held = f.productHeld
			if f.productInFlight >= f.productHold {
				f.productHold = 0
				close(f.productHeld)
			}
		}
		f.productMu.Unlock()
		defer func() {
			f.productMu.Lock()
			f.productInFlight--
			f.productMu.Unlock()
		}()
		if held != nil {
			select {
			case <-held:
			case <-r.Context().Done():
				return
			}
		}
		delay := time.NewTimer(time.Duration(f.productDelay.Load()))
		defer delay.Stop()
		select {
		case <-delay.C:
		case <-r.Context().Done():
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (f *faults) lomsFaults(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.lomsDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		// A slow LOMS still stops when its caller goes away, so no
		// handler outlives the test.
		delay := time.NewTimer(time.Duration(f.lomsDelay.Load()))
		defer delay.Stop()
		select {
		case <-delay.C:
		case <-r.Context().Done():
			return
		}
		if strings.HasSuffix(r.URL.Path, "/CreateOrder") {
			f.createOrders.Add(1)
			if f.dropCreate.Add(-1) >= 0 {
				// LOMS does its work, then the connection breaks before
				// the answer gets out.
				h.ServeHTTP(httptest.NewRecorder(), r)
				panic(http.ErrAbortHandler)
			}
		}
		h.ServeHTTP(w, r)
	})
}

// users gives each protocol's subtest a user of its own.
var users = map[string]int64{"connect": 1, "grpc": 2, "grpcweb": 3}

// clients returns a CheckoutService client per protocol.
func clients(t testing.TB, base string) map[string]checkoutv1connect.CheckoutServiceClient {
	return rpctest.Clients(t, base, checkoutv1connect.NewCheckoutServiceClient)
}

func add(t *testing.T, c checkoutv1connect.CheckoutServiceClient, user int64, sku, count uint32) {
	t.Helper()
	if _, err := c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: user, Sku: sku, Count: count}); err != nil {
		t.Fatalf("AddToCart(%d, %d, %d): %v", user, sku, count, err)
	}
}

func list(t *testing.T, c checkoutv1connect.CheckoutServiceClient, user int64) *checkoutv1.ListCartResponse {
	t.Helper()
	res, err := c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user})
	if err != nil {
		t.Fatalf("ListCart(%d): %v", user, err)
	}
	return res
}

// cartString renders a cart as "sku×count name @price; ... = total".
func cartString(res *checkoutv1.ListCartResponse) string {
	var b strings.Builder
	for _, it := range res.GetItems() {
		fmt.Fprintf(&b, "%d×%d %s @%d; ", it.GetSku(), it.GetCount(), it.GetName(), it.GetPrice())
	}
	fmt.Fprintf(&b, "= %d", res.GetTotalPrice())
	return b.String()
}

func (s *system) orders(t *testing.T, user int64) int {
	t.Helper()
	var n int
	if err := s.lomsPool.QueryRow(t.Context(), "SELECT count(*) FROM orders WHERE user_id = $1", user).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCode(t *testing.T, err error, code connect.Code, says string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("error %v: code %v, want %v", err, connect.CodeOf(err), code)
	}
	if !strings.Contains(err.Error(), says) {
		t.Fatalf("error %q does not say %q", err, says)
	}
}

// The purchase journey over every protocol: fill the cart, list it with
// names and prices, buy it, pay for it.
func TestPurchaseJourney(t *testing.T) {
	t.Parallel()
	sys := start(t)
	user := int64(10)
	for name, c := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			user := user + users[name] // one user per protocol
			add(t, c, user, 1001, 2)
			add(t, c, user, 3001, 1)
			add(t, c, user, 1001, 1)
			if got, want := cartString(list(t, c, user)), "1001×3 Walnut Desk Lamp @2500; 3001×1 Item 3001 @3001; = 10501"; got != want {
				t.Fatalf("cart %q, want %q", got, want)
			}
			res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil {
				t.Fatal(err)
			}
			if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT || res.GetOrderId() == 0 {
				t.Fatalf("purchase %v", res)
			}
			if got := list(t, c, user); len(got.GetItems()) != 0 || got.GetTotalPrice() != 0 {
				t.Fatalf("cart after purchase: %s", cartString(got))
			}
			order, err := sys.loms.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
			if err != nil {
				t.Fatal(err)
			}
			if order.GetUser() != user || len(order.GetItems()) != 2 || order.GetItems()[0].GetCount() != 3 {
				t.Fatalf("order %v", order)
			}
			if _, err := sys.loms.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: res.GetOrderId()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A purchase LOMS cannot reserve comes back FAILED and leaves the cart; once
// the stock is back, the next Purchase makes a new order.
func TestFailedPurchaseKeepsTheCart(t *testing.T) {
	t.Parallel()
	sys := start(t)
	for name, c := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			user := users[name]
			add(t, c, user, 1001, 8)
			add(t, c, user, 2002, 1)
			before := cartString(list(t, c, user))
			// Someone else buys most of sku 1001 meanwhile.
			other, err := sys.loms.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: 99, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 5}}})
			if err != nil || other.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("other order: %v, %v", other, err)
			}
			res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil {
				t.Fatal(err)
			}
			if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
				t.Fatalf("purchase beyond stock: %v", res)
			}
			if got := cartString(list(t, c, user)); got != before {
				t.Fatalf("cart after a failed purchase %q, want %q", got, before)
			}
			if _, err := sys.loms.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: other.GetOrderId()}); err != nil {
				t.Fatal(err)
			}
			again, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil {
				t.Fatal(err)
			}
			if again.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT || again.GetOrderId() == res.GetOrderId() {
				t.Fatalf("purchase once stock is back: %v (failed order %d)", again, res.GetOrderId())
			}
			// Give the stock back for the next protocol.
			if _, err := sys.loms.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: again.GetOrderId()}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The same Purchase sent ten times at once makes one order, and every call
// learns its id.
func TestConcurrentPurchasesMakeOneOrder(t *testing.T) {
	t.Parallel()
	sys := start(t)
	for name, c := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			user := 100 + users[name]
			add(t, c, user, 3010, 2)
			add(t, c, user, 3011, 3)
			var wg sync.WaitGroup
			ids := make(chan int64, 10)
			for range 10 {
				wg.Go(func() {
					res, err := c.Purchase(context.Background(), &checkoutv1.PurchaseRequest{User: user})
					if err != nil {
						t.Errorf("Purchase: %v", err)
						return
					}
					ids <- res.GetOrderId()
				})
			}
			wg.Wait()
			close(ids)
			first := int64(0)
			for id := range ids {
				if first == 0 {
					first = id
				}
				if id != first {
					t.Fatalf("order ids %d and %d for one purchase", first, id)
				}
			}
			if n := sys.orders(t, user); n != 1 {
				t.Fatalf("%d orders, want 1", n)
			}
			if got := list(t, c, user); len(got.GetItems()) != 0 {
				t.Fatalf("cart after purchase: %s", cartString(got))
			}
		})
	}
}

// A Purchase whose answer from LOMS was lost is retried: the retry finds
// the same order instead of making a second one.
func TestRetryAfterLostResponseReturnsTheSameOrder(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["connect"]
	add(t, c, 5, 3020, 1)
	sys.faults.dropCreate.Store(1)
	if _, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 5}); err == nil {
		t.Fatal("Purchase succeeded although LOMS's answer was lost")
	}
	if got := list(t, c, 5); len(got.GetItems()) != 1 {
		t.Fatalf("cart after a lost answer: %s", cartString(got))
	}
	// The user changes the cart before retrying: the order made is still
	// the one LOMS has, and only its items leave the cart.
	add(t, c, 5, 3021, 4)
	res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 5})
	if err != nil {
		t.Fatal(err)
	}
	if n := sys.orders(t, 5); n != 1 {
		t.Fatalf("%d orders after a retry, want 1", n)
	}
	order, err := sys.loms.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
	if err != nil || len(order.GetItems()) != 1 || order.GetItems()[0].GetSku() != 3020 {
		t.Fatalf("order %v, %v", order, err)
	}
	if got, want := cartString(list(t, c, 5)), "3021×4 Item 3021 @3021; = 12084"; got != want {
		t.Fatalf("cart %q, want %q", got, want)
	}
	// Asked again with the cart unchanged since, Purchase answers with the
	// same order: a client whose answer from Checkout was lost retries too.
	again, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 5})
	if err != nil || again.GetOrderId() != res.GetOrderId() || again.GetStatus() != res.GetStatus() {
		t.Fatalf("repeated purchase %v, %v; want %v", again, err, res)
	}
	// Once the cart changes, Purchase buys what is in it.
	if _, err := c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: 5, Sku: 3021, Count: 1}); err != nil {
		t.Fatal(err)
	}
	next, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 5})
	if err != nil || next.GetOrderId() == res.GetOrderId() {
		t.Fatalf("next purchase %v, %v", next, err)
	}
	if n := sys.orders(t, 5); n != 2 {
		t.Fatalf("%d orders, want 2", n)
	}
	if created := sys.faults.createOrders.Load(); created != 3 {
		t.Fatalf("%d CreateOrder calls, want 3", created)
	}
}

func TestCartRules(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["connect"]
	add(t, c, 1, 1001, 9)
	_, err := c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: 1, Sku: 1001, Count: 2})
	wantCode(t, err, connect.CodeFailedPrecondition, "sku 1001: the cart would hold 11 units, the warehouses have 10")
	_, err = c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: 1, Sku: 777, Count: 1})
	wantCode(t, err, connect.CodeFailedPrecondition, "sku 777")
	if got := list(t, c, 1); len(got.GetItems()) != 1 || got.GetItems()[0].GetCount() != 9 {
		t.Fatalf("cart after refused adds: %s", cartString(got))
	}
	// Deleting more than there is, or what is not there, is fine.
	if _, err := c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: 1, Sku: 2002, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: 1, Sku: 1001, Count: 4}); err != nil {
		t.Fatal(err)
	}
	if got := list(t, c, 1); got.GetItems()[0].GetCount() != 5 {
		t.Fatalf("cart %s", cartString(got))
	}
	if _, err := c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: 1, Sku: 1001, Count: 100}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	wantCode(t, err, connect.CodeFailedPrecondition, "the cart is empty")
	if n := sys.orders(t, 1); n != 0 {
		t.Fatalf("%d orders for an empty cart", n)
	}
}

// Bad input gets invalid_argument naming the field, and writes nothing.
func TestBadInput(t *testing.T) {
	t.Parallel()
	sys := start(t)
	for name, c := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			calls := []struct {
				call  func() error
				field string
			}{
				{func() error {
					_, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{Sku: 1001, Count: 1})
					return err
				}, "user"},
				{func() error {
					_, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: -3, Sku: 1001, Count: 1})
					return err
				}, "user"},
				{func() error { _, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: 1, Count: 1}); return err }, "sku"},
				{func() error { _, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: 1, Sku: 1001}); return err }, "count"},
				{func() error {
					_, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: 1, Sku: 1001, Count: 65536})
					return err
				}, "count"},
				{func() error {
					_, err := c.DeleteFromCart(ctx, &checkoutv1.DeleteFromCartRequest{Sku: 1, Count: 1})
					return err
				}, "user"},
				{func() error {
					_, err := c.DeleteFromCart(ctx, &checkoutv1.DeleteFromCartRequest{User: 1, Count: 1})
					return err
				}, "sku"},
				{func() error {
					_, err := c.DeleteFromCart(ctx, &checkoutv1.DeleteFromCartRequest{User: 1, Sku: 1, Count: 70000})
					return err
				}, "count"},
				{func() error { _, err := c.ListCart(ctx, &checkoutv1.ListCartRequest{}); return err }, "user"},
				{func() error { _, err := c.Purchase(ctx, &checkoutv1.PurchaseRequest{}); return err }, "user"},
			}
			for i, tc := range calls {
				err := tc.call()
				if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.field) {
					t.Errorf("call %d: %v, want invalid_argument naming %s", i, err, tc.field)
				}
			}
		})
	}
	var carts int
	if err := sys.cartPool.QueryRow(t.Context(), "SELECT count(*) FROM carts").Scan(&carts); err != nil || carts != 0 {
		t.Fatalf("%d carts written by bad requests (%v)", carts, err)
	}
}

func TestMalformedJSONIsInvalidArgument(t *testing.T) {
	t.Parallel()
	sys := start(t)
	res, err := http.Post(sys.checkout+"/minizon.checkout.v1.CheckoutService/AddToCart", "application/json",
		strings.NewReader(`{"user": 1, "sku": "many"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_argument") {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
}

// ListCart of 50 items overlaps the lookups: as many are in flight at once
// as PRODUCT_CONCURRENCY allows (its default is wider than the cart: all
// 50). The ProductService counts the calls in flight rather than timing
// them, and holds every call until that many have arrived, so lookups made
// fewer at a time would get no answer before the timeout. (BenchmarkListCart
// has the time a listing takes.)
func TestListCartOfFiftyItemsOverlapsLookups(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["grpc"]
	for sku := uint32(3000); sku < 3050; sku++ {
		add(t, c, 1, sku, 1)
	}
	sys.faults.productCalls.Store(0)
	want := min(50, checkout.DefaultProductConcurrency)
	sys.faults.holdProducts(want)
	res, err := c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: 1})
	if err != nil {
		t.Fatalf("ListCart with lookups held until %d are in flight at once: %v", want, err)
	}
	if len(res.GetItems()) != 50 {
		t.Fatalf("%d items", len(res.GetItems()))
	}
	if n := sys.faults.productCalls.Load(); n != 50 {
		t.Fatalf("%d ProductService calls, want 50", n)
	}
	sys.faults.productMu.Lock()
	peak := sys.faults.productPeak
	sys.faults.productMu.Unlock()
	if peak != want {
		t.Fatalf("%d lookups in flight at once, want %d (PRODUCT_CONCURRENCY %d)", peak, want, checkout.DefaultProductConcurrency)
	}
	// Within the TTL the cache answers.
	list(t, c, 1)
	if n := sys.faults.productCalls.Load(); n != 50 {
		t.Fatalf("%d ProductService calls after a second listing, want 50", n)
	}
}

// A dependency that is down gives unavailable naming it, and the cart stays
// as it was.
func TestDependencyDown(t *testing.T) {
	t.Parallel()
	sys := start(t)
	// A second Checkout with no product cache, on the same carts.
	uncached := clients(t, sys.startCheckoutWith(t, sys.cartDBURL, 0))
	for name, c := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			user := users[name]
			add(t, c, user, 3030, 2)
			before := cartString(list(t, c, user))

			sys.faults.productDown.Store(true)
			_, err := uncached[name].ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user})
			wantCode(t, err, connect.CodeUnavailable, "ProductService is unavailable")
			sys.faults.productDown.Store(false)

			sys.faults.lomsDown.Store(true)
			_, err = c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: user, Sku: 3030, Count: 1})
			wantCode(t, err, connect.CodeUnavailable, "LOMS is unavailable")
			_, err = c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			wantCode(t, err, connect.CodeUnavailable, "LOMS is unavailable")
			sys.faults.lomsDown.Store(false)

			if got := cartString(list(t, c, user)); got != before {
				t.Fatalf("cart %q after failures, want %q", got, before)
			}
			// The purchase that LOMS never saw goes through now.
			res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("purchase after LOMS came back: %v, %v", res, err)
			}
		})
	}
}

// A LOMS slower than LOMS_TIMEOUT (here one that does not answer at all)
// gives deadline_exceeded naming it and the timeout, and the cart stays as
// it was. The message shows the timeout ran out, not the caller's
// deadline: Checkout gave up by itself.
func TestSlowLOMS(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["grpc"]
	add(t, c, 1, 3040, 1)
	sys.faults.lomsDelay.Store(int64(forever))
	_, err := c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: 1, Sku: 3041, Count: 1})
	wantCode(t, err, connect.CodeDeadlineExceeded, "LOMS did not answer within 5s")
	_, err = c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	wantCode(t, err, connect.CodeDeadlineExceeded, "LOMS did not answer within 5s")
	sys.faults.lomsDelay.Store(0)
	if got := cartString(list(t, c, 1)); got != "3040×1 Item 3040 @3040; = 3040" {
		t.Fatalf("cart after timeouts: %q", got)
	}
	res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		t.Fatalf("purchase once LOMS is quick again: %v, %v", res, err)
	}
	if n := sys.orders(t, 1); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
}

// The order of a purchase whose answer was lost and that was cancelled
// before the retry (the payment window passed) is not the answer: the retry
// buys the cart afresh.
func TestRetryAfterTheLostOrderWasCancelled(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["grpc"]
	add(t, c, 1, 3045, 2)
	sys.faults.dropCreate.Store(1)
	if _, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1}); err == nil {
		t.Fatal("Purchase succeeded although LOMS's answer was lost")
	}
	var lost int64
	if err := sys.lomsPool.QueryRow(t.Context(), "SELECT id FROM orders WHERE user_id = 1").Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if _, err := sys.loms.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: lost}); err != nil {
		t.Fatal(err)
	}
	res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT || res.GetOrderId() == lost {
		t.Fatalf("retry after the lost order %d was cancelled: %v, %v", lost, res, err)
	}
	if got := list(t, c, 1); len(got.GetItems()) != 0 {
		t.Fatalf("cart after purchase: %s", cartString(got))
	}
}

// Emptying the cart forgets a purchase whose answer was lost; the next
// purchase is a new one.
func TestEmptiedCartForgetsTheLostPurchase(t *testing.T) {
	t.Parallel()
	sys := start(t)
	c := clients(t, sys.checkout)["connect"]
	add(t, c, 1, 3046, 1)
	sys.faults.dropCreate.Store(1)
	if _, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1}); err == nil {
		t.Fatal("Purchase succeeded although LOMS's answer was lost")
	}
	if _, err := c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: 1, Sku: 3046, Count: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	wantCode(t, err, connect.CodeFailedPrecondition, "the cart is empty")
	add(t, c, 1, 3047, 1)
	res, err := c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: 1})
	if err != nil {
		t.Fatal(err)
	}
	order, err := sys.loms.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
	if err != nil || len(order.GetItems()) != 1 || order.GetItems()[0].GetSku() != 3047 {
		t.Fatalf("order %v, %v: want the new cart's sku 3047", order, err)
	}
}
