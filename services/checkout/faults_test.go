package checkout_test

// Checkout in front of dependencies that misbehave at the network level: a
// ProductService slower than PRODUCT_TIMEOUT, or answering some skus and
// failing others; LOMS and ProductService dead (connection refused) or hung
// (connections accepted and never answered). TestDependencyDown and
// TestSlowLOMS cover a dependency that answers with an error or late; these
// cover the ones that do not answer at all, with short timeouts, and check
// the bound on latency, the code, the cart in the database, the recovery and
// the goroutines left behind.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/checkout/products"
	"github.com/minizon/minizon/services/product/catalog"
)

// The timeouts Checkout runs with here: short, so that the file takes
// seconds, and different, so that a message shows which one ran out.
const (
	productTimeout = 250 * time.Millisecond
	lomsTimeout    = 300 * time.Millisecond
)

// slack is how many times the configured timeout a failing call may take.
// The expected figure is one timeout (LOMS) or two (ProductService, see
// products.Client.Product's retry); the rest is room for -race on a couple
// of shared cores. A Checkout that waited for the dependency instead of its
// timeout would take the whole outage, which these tests make much longer.
const slack = 5

// gate stands where a dependency listens and passes connections through to
// it until told to kill it or hang it. Killed, nothing listens on the port
// (connection refused) and the open connections are cut, as when the
// process dies. Hung, it accepts connections and never answers, and the
// open ones go silent, as when the process or its host hangs. Brought back,
// it listens on the same port again and cuts what was left open, as a
// restarted process does.
type gate struct {
	addr    string // what Checkout is configured with
	backend string // the dependency itself

	mu    sync.Mutex
	mode  gateMode
	ln    net.Listener // nil while refusing
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

type gateMode int

const (
	gateOpen   gateMode = iota // pass through
	gateRefuse                 // nothing listens
	gateHang                   // accept, then say nothing
)

func newGate(t testing.TB, backend string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{addr: ln.Addr().String(), backend: backend, ln: ln, conns: map[net.Conn]struct{}{}}
	g.wg.Add(1)
	go g.serve(ln)
	t.Cleanup(func() {
		g.mu.Lock()
		g.cut()
		if g.ln != nil {
			g.ln.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// set switches the dependency into mode m.
func (g *gate) set(t testing.TB, m gateMode) {
	t.Helper()
	g.mu.Lock()
	if m == g.mode {
		g.mu.Unlock()
		return
	}
	cut := 0
	if m != gateHang {
		cut = g.cut()
	}
	switch {
	case m == gateRefuse && g.ln != nil:
		g.ln.Close()
		g.ln = nil
	case m != gateRefuse && g.ln == nil:
		// The dependency comes back on its old port. Nothing else should
		// have taken it meanwhile; allow for the kernel's bookkeeping.
		var err error
		for range 100 {
			if g.ln, err = net.Listen("tcp", g.addr); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			g.mu.Unlock()
			t.Fatalf("listen again on %s: %v", g.addr, err)
		}
		g.wg.Add(1)
		go g.serve(g.ln)
	}
	g.mode = m
	g.mu.Unlock()
	if cut > 0 {
		// Give Checkout's transports a moment to see the cut connections
		// closed: a call sent on one before that fails as unavailable (a
		// dependency dying mid-call), which is not what a test of the state
		// after the cut asks about.
		time.Sleep(100 * time.Millisecond)
	}
}

// cut closes every connection and says how many there were; g.mu is held.
func (g *gate) cut() int {
	n := len(g.conns)
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
	return n
}

func (g *gate) hung() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mode == gateHang
}

func (g *gate) serve(ln net.Listener) {
	defer g.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		switch {
		case g.ln != ln: // closed since
			c.Close()
		case g.mode == gateHang:
			g.conns[c] = struct{}{} // held, unread, until cut
		default:
			g.conns[c] = struct{}{}
			g.wg.Add(1)
			go g.pipe(c)
		}
		g.mu.Unlock()
	}
}

func (g *gate) pipe(c net.Conn) {
	defer g.wg.Done()
	b, err := net.Dial("tcp", g.backend)
	if err != nil {
		c.Close()
		return
	}
	g.mu.Lock()
	if _, ok := g.conns[c]; !ok { // cut meanwhile
		g.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	g.conns[b] = struct{}{}
	g.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { g.forward(b, c); done <- struct{}{} }()
	go func() { g.forward(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
	g.mu.Lock()
	delete(g.conns, c)
	delete(g.conns, b)
	g.mu.Unlock()
}

// forward copies src to dst, and swallows what src sends while the gate
// is hung.
func (g *gate) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !g.hung() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// lookups sits in front of the real ProductService handler: it reads the
// sku of each GetProduct, delays or fails it as rule says, and keeps count
// of the lookups in flight, overall and per group of skus.
type lookups struct {
	mu       sync.Mutex
	rule     func(sku uint32) (delay time.Duration, fail bool) // nil: pass at once
	group    func(sku uint32) int                              // nil: one group
	inFlight int
	peak     int
	groupIn  map[int]int
	groupMax map[int]int
	calls    map[uint32]int
}

func (l *lookups) setRule(rule func(sku uint32) (time.Duration, bool)) {
	l.mu.Lock()
	l.rule = rule
	l.mu.Unlock()
}

// slowAll delays every lookup by d.
func slowAll(d time.Duration) func(uint32) (time.Duration, bool) {
	return func(uint32) (time.Duration, bool) { return d, false }
}

func (l *lookups) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req productpb.GetProductRequest
		// A gRPC message: a flag byte, four bytes of length, the message.
		// Checkout does not compress messages this small.
		if len(body) < 5 || body[0] != 0 || proto.Unmarshal(body[5:], &req) != nil {
			h.ServeHTTP(w, r)
			return
		}
		sku := req.GetSku()
		l.mu.Lock()
		group := 0
		if l.group != nil {
			group = l.group(sku)
		}
		l.inFlight++
		l.peak = max(l.peak, l.inFlight)
		l.groupIn[group]++
		l.groupMax[group] = max(l.groupMax[group], l.groupIn[group])
		l.calls[sku]++
		var delay time.Duration
		var fail bool
		if l.rule != nil {
			delay, fail = l.rule(sku)
		}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.inFlight--
			l.groupIn[group]--
			l.mu.Unlock()
		}()
		if fail {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if delay > 0 {
			timer := time.NewTimer(delay)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return // Checkout gave up on the call
			}
		}
		h.ServeHTTP(w, r)
	})
}

// rig is start's LOMS and cart database, a real ProductService of its own
// (start's middleware cannot tell one sku from another), a gate in front of
// each, and a Checkout with the short timeouts behind the gates.
type rig struct {
	*system
	lookups  *lookups
	product  *gate
	lomsGate *gate
	base     string                                  // the first Checkout's base URL
	c        checkoutv1connect.CheckoutServiceClient // a gRPC client of it
}

func newRig(t *testing.T, tune func(*checkout.Config)) *rig {
	t.Helper()
	r := &rig{system: start(t), lookups: &lookups{groupIn: map[int]int{}, groupMax: map[int]int{}, calls: map[uint32]int{}}}

	var items []catalog.Product
	for sku := uint32(3000); sku < 3050; sku++ {
		items = append(items, catalog.Product{SKU: sku, Name: fmt.Sprintf("Item %d", sku), Price: sku})
	}
	r.product = newGate(t, startProduct(t, items, r.lookups.wrap))
	r.lomsGate = newGate(t, r.lomsAddr)
	r.base, r.c = r.serveCheckout(t, tune)
	return r
}

// serveCheckout runs a Checkout behind the gates on the rig's cart database,
// with the short timeouts as tune leaves them, and returns its base URL and
// a gRPC client of it.
func (r *rig) serveCheckout(t *testing.T, tune func(*checkout.Config)) (string, checkoutv1connect.CheckoutServiceClient) {
	t.Helper()
	cfg := checkout.Config{
		DatabaseURL: r.cartDBURL,
		LOMS:        rpcclient.Config{Addr: r.lomsGate.addr, Protocol: rpcclient.ProtocolGRPC, Timeout: lomsTimeout},
		Product:     rpcclient.Config{Addr: r.product.addr, Protocol: rpcclient.ProtocolGRPC, Timeout: productTimeout},
		// No cache: a listing made before an outage must not answer the
		// one during it.
		Products: products.Config{Token: "testtoken", Concurrency: 8, CacheSize: 1000},
	}
	if tune != nil {
		tune(&cfg)
	}
	app, err := checkout.Open(t.Context(), cfg, quiet, telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	srv := rpctest.NewServer(t, platform.Config{MaxBodyBytes: 1 << 20}, quiet)
	app.Mount(srv)
	base := "http://" + rpctest.Serve(t, srv.Handler())
	return base, clients(t, base)["grpc"]
}

// cartRow is a cart as the database holds it.
type cartRow struct {
	items     string // "sku×count ..." by sku
	key       string // purchase_key, "" for none
	lastOrder int64
	updated   int64 // updated_at in µs: any write to the cart moves it
	exists    bool
}

func (r *rig) cart(t *testing.T, user int64) cartRow {
	t.Helper()
	var c cartRow
	var key *string
	var last *int64
	var updated time.Time
	err := r.cartPool.QueryRow(t.Context(), `
		SELECT true, purchase_key, last_order_id, updated_at,
		       coalesce((SELECT string_agg(sku || '×' || count, ' ' ORDER BY sku) FROM cart_items i WHERE i.user_id = c.user_id), '')
		FROM carts c WHERE user_id = $1`, user).Scan(&c.exists, &key, &last, &updated, &c.items)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatal(err)
	}
	c.updated = updated.UnixMicro()
	if key != nil {
		c.key = *key
	}
	if last != nil {
		c.lastOrder = *last
	}
	return c
}

// timed runs call and fails the test if it took longer than limit.
func timed(t *testing.T, what string, limit time.Duration, call func() error) error {
	t.Helper()
	start := time.Now()
	err := call()
	if d := time.Since(start); d > limit {
		t.Errorf("%s took %v, bound %v", what, d, limit)
	}
	return err
}

// A ProductService that is slower than PRODUCT_TIMEOUT, refuses connections
// or hangs fails ListCart with a code ARCHITECTURE.md allows for a
// dependency down or too slow, within a bound set by the timeout, touches
// no cart, and once it recovers the same listing succeeds.
func TestProductServiceOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	bound := slack * productTimeout
	cases := []struct {
		name       string
		fail, mend func()
		code       connect.Code
		says       string
	}{
		{"slow", func() { r.lookups.setRule(slowAll(time.Minute)) }, func() { r.lookups.setRule(nil) },
			connect.CodeDeadlineExceeded, "ProductService did not answer within 250ms"},
		{"refused", func() { r.product.set(t, gateRefuse) }, func() { r.product.set(t, gateOpen) },
			connect.CodeUnavailable, "ProductService is unavailable"},
		{"hung", func() { r.product.set(t, gateHang) }, func() { r.product.set(t, gateOpen) },
			connect.CodeDeadlineExceeded, "ProductService did not answer within 250ms"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := int64(1 + i)
			add(t, r.c, user, 3001, 2)
			add(t, r.c, user, 3002, 1)
			want := cartString(list(t, r.c, user))
			before := r.cart(t, user)

			r.lookups.mu.Lock()
			calls := r.lookups.calls[3001]
			r.lookups.mu.Unlock()
			tc.fail()
			defer tc.mend() // also when the test fails, for the next case
			err := timed(t, "ListCart", bound, func() error {
				_, err := r.c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user})
				return err
			})
			wantCode(t, err, tc.code, tc.says)
			r.lookups.mu.Lock()
			calls = r.lookups.calls[3001] - calls
			r.lookups.mu.Unlock()
			if calls > 1 {
				t.Errorf("ProductService asked %d times for one sku in one listing", calls)
			}
			if got := r.cart(t, user); got != before {
				t.Fatalf("cart %+v after a failed listing, was %+v", got, before)
			}
			tc.mend()

			if got := cartString(list(t, r.c, user)); got != want {
				t.Fatalf("listing after recovery %q, want %q", got, want)
			}
		})
	}
}

// ListCart is all or nothing: ProductService failing one sku while it
// answers the others fails the whole listing with that sku's code (the
// first failure ends it, products.Client.Products), and touches no cart.
func TestProductServicePartialFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		timeout time.Duration
		rule    func(sku uint32) (time.Duration, bool)
		bound   time.Duration
		code    connect.Code
		says    string
	}{
		// 3003 is refused at once while the others take 1.5s, within the
		// 3s timeout: the listing ends at the failure, not after the others
		// (the bound is far below their 1.5s, far above the milliseconds a
		// refusal takes).
		{"one sku refused, the others slow", 3 * time.Second,
			func(sku uint32) (time.Duration, bool) { return 1500 * time.Millisecond, sku == 3003 },
			time.Second, connect.CodeUnavailable, "ProductService is unavailable"},
		// 3004 hangs while the others answer at once.
		{"one sku slower than the timeout", productTimeout,
			func(sku uint32) (time.Duration, bool) {
				if sku == 3004 {
					return time.Minute, false
				}
				return 0, false
			},
			slack * productTimeout, connect.CodeDeadlineExceeded, "ProductService did not answer within 250ms"},
	}
	r := newRig(t, nil)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, c := r.serveCheckout(t, func(c *checkout.Config) { c.Product.Timeout = tc.timeout })
			user := int64(1 + i)
			for sku := uint32(3001); sku <= 3006; sku++ {
				add(t, c, user, sku, 1)
			}
			want := cartString(list(t, c, user))
			before := r.cart(t, user)

			r.lookups.setRule(tc.rule)
			defer r.lookups.setRule(nil)
			err := timed(t, "ListCart", tc.bound, func() error {
				res, err := c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user})
				if err == nil {
					t.Errorf("a listing although one lookup failed: %s", cartString(res))
				}
				return err
			})
			wantCode(t, err, tc.code, tc.says)
			r.lookups.setRule(nil)

			if got := r.cart(t, user); got != before {
				t.Fatalf("cart %+v after a failed listing, was %+v", got, before)
			}
			if got := cartString(list(t, c, user)); got != want {
				t.Fatalf("listing after recovery %q, want %q", got, want)
			}
		})
	}
}

// A LOMS that refuses connections or hangs fails AddToCart and Purchase
// with unavailable or deadline_exceeded within a bound set by LOMS_TIMEOUT
// and leaves the cart as it was, except that a Purchase keeps the
// idempotency key it drew: once LOMS is back, the retried Purchase sends
// that key and LOMS makes exactly one order.
func TestLOMSOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	bound := slack * lomsTimeout
	cases := []struct {
		name string
		mode gateMode
		code connect.Code
		says string
	}{
		{"refused", gateRefuse, connect.CodeUnavailable, "LOMS is unavailable"},
		{"hung", gateHang, connect.CodeDeadlineExceeded, "LOMS did not answer within 300ms"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user, stranger := int64(10+i), int64(20+i)
			add(t, r.c, user, 3010, 2)
			want := cartString(list(t, r.c, user))
			before := r.cart(t, user)
			created := r.faults.createOrders.Load()

			r.lomsGate.set(t, tc.mode)
			defer r.lomsGate.set(t, gateOpen) // also when the test fails, for the next case
			err := timed(t, "AddToCart", bound, func() error {
				_, err := r.c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: user, Sku: 3011, Count: 1})
				return err
			})
			wantCode(t, err, tc.code, tc.says)
			err = timed(t, "AddToCart to a new cart", bound, func() error {
				_, err := r.c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: stranger, Sku: 3011, Count: 1})
				return err
			})
			wantCode(t, err, tc.code, tc.says)
			if got := r.cart(t, user); got != before {
				t.Fatalf("cart %+v after a refused add, was %+v", got, before)
			}
			if got := r.cart(t, stranger); got.exists {
				t.Fatalf("a refused add made a cart: %+v", got)
			}

			var key string
			for attempt := range 2 {
				err = timed(t, "Purchase", bound, func() error {
					_, err := r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
					return err
				})
				wantCode(t, err, tc.code, tc.says)
				got := r.cart(t, user)
				if got.items != before.items || got.key == "" || got.lastOrder != 0 {
					t.Fatalf("cart %+v after failed purchase %d, was %+v", got, attempt, before)
				}
				if attempt > 0 && got.key != key {
					t.Fatalf("a retry drew key %q, the first attempt %q", got.key, key)
				}
				key = got.key
			}
			// The cart is still readable: only ProductService is needed.
			if got := cartString(list(t, r.c, user)); got != want {
				t.Fatalf("listing during the outage %q, want %q", got, want)
			}
			if n := r.faults.createOrders.Load() - created; n != 0 {
				t.Fatalf("%d CreateOrder calls reached a LOMS that was down", n)
			}

			r.lomsGate.set(t, gateOpen)
			res, err := r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("purchase after LOMS came back: %v, %v", res, err)
			}
			again, err := r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil || again.GetOrderId() != res.GetOrderId() {
				t.Fatalf("repeated purchase %v, %v; want order %d", again, err, res.GetOrderId())
			}
			if n := r.orders(t, user); n != 1 {
				t.Fatalf("%d orders, want 1", n)
			}
			var sent string
			if err := r.lomsPool.QueryRow(t.Context(), "SELECT idempotency_key FROM orders WHERE id = $1", res.GetOrderId()).Scan(&sent); err != nil || sent != key {
				t.Fatalf("order made with key %q (%v), the cart kept %q", sent, err, key)
			}
			if got := r.cart(t, user); got.items != "" || got.key != "" || got.lastOrder != res.GetOrderId() {
				t.Fatalf("cart after purchase: %+v", got)
			}
			if n := r.faults.createOrders.Load() - created; n != 1 {
				t.Fatalf("%d CreateOrder calls reached LOMS, want 1", n)
			}
		})
	}
}

// A caller whose deadline is shorter than the dependency's timeout gets
// deadline_exceeded by its own deadline. The call goes over plain HTTP
// with the Connect-Timeout-Ms header, so no client library gives up on
// the caller's behalf: the answer, and when it comes, is Checkout's.
func TestCallerDeadlineBeatsTheDependencyTimeout(t *testing.T) {
	t.Parallel()
	const dependencyTimeout, callerDeadline = 10 * time.Second, 200 * time.Millisecond
	r := newRig(t, func(c *checkout.Config) {
		c.LOMS.Timeout, c.Product.Timeout = dependencyTimeout, dependencyTimeout
	})
	const user = 1
	add(t, r.c, user, 3020, 1)
	before := r.cart(t, user)
	httpc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpc.CloseIdleConnections)
	call := func(method, body string) (code, message string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
			r.base+"/"+checkoutv1connect.CheckoutServiceName+"/"+method, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		req.Header.Set("Connect-Timeout-Ms", strconv.Itoa(int(callerDeadline/time.Millisecond)))
		var res *http.Response
		_ = timed(t, method, slack*callerDeadline, func() error {
			res, err = httpc.Do(req)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e struct{ Code, Message string }
		if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
			t.Fatalf("%s: HTTP %d, %v", method, res.StatusCode, err)
		}
		return e.Code, e.Message
	}
	check := func(method, body, says string) {
		t.Helper()
		code, msg := call(method, body)
		if code != connect.CodeDeadlineExceeded.String() || !strings.Contains(msg, says) {
			t.Errorf("%s: %s %q, want deadline_exceeded saying %q", method, code, msg, says)
		}
	}

	r.product.set(t, gateHang)
	check("ListCart", `{"user": 1}`, "deadline exceeded waiting for ProductService")
	r.lomsGate.set(t, gateHang)
	check("AddToCart", `{"user": 1, "sku": 3021, "count": 1}`, "deadline exceeded waiting for LOMS")
	check("Purchase", `{"user": 1}`, "deadline exceeded waiting for LOMS")
	r.product.set(t, gateOpen)
	r.lomsGate.set(t, gateOpen)

	if got := r.cart(t, user); got.items != before.items || got.lastOrder != 0 {
		t.Fatalf("cart %+v after calls that ran out of time, was %+v", got, before)
	}
	res, err := r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
	if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		t.Fatalf("purchase after recovery: %v, %v", res, err)
	}
	if n := r.orders(t, user); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}
}

// PRODUCT_CONCURRENCY bounds the lookups of one ListCart, not of the
// process (products.Config says so; PRODUCT_RPS is the process-wide
// limit): against a slow ProductService, concurrent listings of different
// carts each keep to it, so the service sees at most listings × the bound.
func TestConcurrentListingsKeepTheirBound(t *testing.T) {
	t.Parallel()
	const limit, carts, perCart = 2, 8, 6
	r := newRig(t, func(c *checkout.Config) {
		c.Products.Concurrency = limit
		c.Product.Timeout = 5 * time.Second
	})
	// Cart u holds skus 3000+6u ... 3000+6u+5, so a lookup tells its cart.
	for u := range carts {
		for i := range perCart {
			add(t, r.c, int64(u+1), uint32(3000+perCart*u+i), 1)
		}
	}
	r.lookups.mu.Lock()
	r.lookups.group = func(sku uint32) int { return int(sku-3000) / perCart }
	r.lookups.mu.Unlock()
	r.lookups.setRule(slowAll(100 * time.Millisecond))

	var wg sync.WaitGroup
	for u := range carts {
		wg.Go(func() {
			res, err := r.c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: int64(u + 1)})
			if err != nil || len(res.GetItems()) != perCart {
				t.Errorf("ListCart(%d): %v, %v", u+1, res, err)
			}
		})
	}
	wg.Wait()
	r.lookups.mu.Lock()
	defer r.lookups.mu.Unlock()
	for g, peak := range r.lookups.groupMax {
		if peak > limit {
			t.Errorf("cart %d: %d lookups in flight at once, PRODUCT_CONCURRENCY is %d", g+1, peak, limit)
		}
	}
	if r.lookups.peak > limit*carts {
		t.Errorf("%d lookups in flight at once, want at most %d", r.lookups.peak, limit*carts)
	}
	if r.lookups.peak <= limit {
		t.Errorf("peak of %d lookups: the listings did not run concurrently, the test proves nothing", r.lookups.peak)
	}
}

// checkoutGoroutines returns the stacks of goroutines running Checkout's
// code: RPC handlers, product lookups, calls to LOMS and ProductService.
// Idle, Checkout runs none.
func checkoutGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "minizon/minizon/services/checkout.") || strings.Contains(g, "minizon/minizon/services/checkout/") {
			out = append(out, g)
		}
	}
	return out
}

// waitIdle fails the test unless Checkout's goroutines are all gone within
// limit.
func waitIdle(t *testing.T, when string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		left := checkoutGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d Checkout goroutines still running after %v, the first:\n%s", when, len(left), limit, left[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An outage of both dependencies, with many calls failing at once, leaves
// no goroutine behind: none of Checkout's is still running a timeout after
// the calls failed, while the dependencies still hang, nor after they
// recover; and once the system is shut down nothing it started is left.
// Not parallel: it counts every goroutine in the process.
func TestOutageLeavesNoGoroutines(t *testing.T) {
	outside := goleak.IgnoreCurrent()
	t.Run("outage", func(t *testing.T) {
		r := newRig(t, nil)
		for u := int64(1); u <= 10; u++ {
			add(t, r.c, u, 3030+uint32(u), 1)
			list(t, r.c, u)
		}
		waitIdle(t, "before the outage", time.Second)

		storm := func(mode gateMode) {
			r.product.set(t, mode)
			r.lomsGate.set(t, mode)
			// Callers that have a deadline of their own, longer than the
			// timeouts, as real callers do.
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for u := int64(1); u <= 10; u++ {
				calls := []func() error{
					func() error { _, err := r.c.ListCart(ctx, &checkoutv1.ListCartRequest{User: u}); return err },
					func() error { _, err := r.c.ListCart(ctx, &checkoutv1.ListCartRequest{User: u}); return err },
					func() error {
						_, err := r.c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: u, Sku: 3001, Count: 1})
						return err
					},
					func() error { _, err := r.c.Purchase(ctx, &checkoutv1.PurchaseRequest{User: u}); return err },
				}
				for _, call := range calls {
					wg.Go(func() {
						if code := connect.CodeOf(call()); code != connect.CodeUnavailable && code != connect.CodeDeadlineExceeded {
							t.Errorf("during the outage: %v", code)
						}
					})
				}
			}
			wg.Wait()
			// A lookup nobody waits for any more may run to its own
			// timeout, no longer.
			waitIdle(t, fmt.Sprintf("outage (mode %d), dependencies still down", mode), slack*max(productTimeout, lomsTimeout))
		}
		storm(gateHang)
		storm(gateRefuse)
		r.product.set(t, gateOpen)
		r.lomsGate.set(t, gateOpen)

		for u := int64(1); u <= 10; u++ {
			if got := list(t, r.c, u); len(got.GetItems()) != 1 {
				t.Fatalf("cart %d after the outage: %s", u, cartString(got))
			}
			res, err := r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: u})
			if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("purchase %d after the outage: %v, %v", u, res, err)
			}
			if n := r.orders(t, u); n != 1 {
				t.Fatalf("user %d: %d orders, want 1", u, n)
			}
		}
		waitIdle(t, "after recovery", time.Second)
	})
	goleak.VerifyNone(t, outside)
}
