package systest_test

// Checkout in front of dependencies that misbehave at the network level: a
// ProductService slower than PRODUCT_TIMEOUT, or answering some skus and
// failing others; LOMS and ProductService dead (connection refused) or hung
// (connections accepted and never answered). TestDependencyDown and
// TestSlowLOMS cover a dependency that answers with an error or not in
// time; these cover the ones that do not answer at all, and check the code
// and the message (which says whether a timeout or the caller's deadline
// ended the call), the cart in the database, the recovery and the
// goroutines left behind. Nothing here measures how long a call took: a
// dependency that fails by a timeout never answers, so the call fails by
// that timeout on a busy machine as on an idle one.

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

// The timeouts Checkout runs with here: long enough that no call a test
// expects to succeed runs out of them on a busy machine, and different, so
// that a message shows which one ran out. A dependency these tests break
// refuses connections or never answers, so a call that fails by a timeout
// fails by it however fast the machine is.
const (
	productTimeout = 5 * time.Second
	lomsTimeout    = 6 * time.Second
)

// settle bounds waits for what must happen by itself (goroutines ending,
// connections closing): it keeps a broken build from hanging the test and
// measures nothing, as what it waits for happens within a timeout above or
// not at all.
const settle = 30 * time.Second

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
	ln    net.Listener           // nil while refusing
	conns map[net.Conn]*gateConn // from Checkout, open
	wg    sync.WaitGroup
}

// gateConn is the gate's side of one connection from Checkout.
type gateConn struct {
	backend net.Conn      // the connection on to the dependency; nil if none
	gone    chan struct{} // closed when Checkout's end has closed
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
	g := &gate{addr: ln.Addr().String(), backend: backend, ln: ln, conns: map[net.Conn]*gateConn{}}
	g.wg.Add(1)
	go g.serve(ln)
	t.Cleanup(func() {
		g.mu.Lock()
		for c, gc := range g.conns {
			c.Close()
			if gc.backend != nil {
				gc.backend.Close()
			}
		}
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
	var cut []*gateConn
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
		for deadline := time.Now().Add(settle); ; time.Sleep(10 * time.Millisecond) {
			if g.ln, err = net.Listen("tcp", g.addr); err == nil || time.Now().After(deadline) {
				break
			}
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
	// Wait until Checkout has closed its end of each connection cut: a
	// call sent on one before that fails as unavailable (a dependency
	// dying mid-call), which is not what a test of the state after the cut
	// asks about. Its transport closes a connection once it reads the end
	// of it, which the cut sends.
	for _, gc := range cut {
		select {
		case <-gc.gone:
		case <-time.After(settle):
			t.Fatalf("Checkout did not close a connection to %s within %v of the dependency closing it", g.addr, settle)
		}
	}
}

// cut ends every connection as a dying process would: the dependency's
// side is closed, and Checkout reads the end of its side (closed for good
// once Checkout closes it too). It returns them; g.mu is held.
func (g *gate) cut() []*gateConn {
	var cut []*gateConn
	for c, gc := range g.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			c.Close()
		}
		if gc.backend != nil {
			gc.backend.Close()
		}
		cut = append(cut, gc)
	}
	clear(g.conns)
	return cut
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
		if g.ln != ln { // closed since
			c.Close()
			g.mu.Unlock()
			continue
		}
		gc := &gateConn{gone: make(chan struct{})}
		g.conns[c] = gc
		g.wg.Add(1)
		if g.mode == gateHang {
			go g.drain(c, gc)
		} else {
			go g.pipe(c, gc)
		}
		g.mu.Unlock()
	}
}

// drain reads what Checkout sends on c and answers nothing, until Checkout
// closes c or the gate cuts it.
func (g *gate) drain(c net.Conn, gc *gateConn) {
	defer g.wg.Done()
	_, _ = io.Copy(io.Discard, c)
	g.closed(c, gc)
}

// closed forgets c, which Checkout has closed (or the gate has).
func (g *gate) closed(c net.Conn, gc *gateConn) {
	close(gc.gone)
	c.Close()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

func (g *gate) pipe(c net.Conn, gc *gateConn) {
	defer g.wg.Done()
	b, err := net.Dial("tcp", g.backend)
	if err != nil {
		g.closed(c, gc)
		return
	}
	g.mu.Lock()
	if _, ok := g.conns[c]; !ok { // cut meanwhile: Checkout reads the end of c
		g.mu.Unlock()
		b.Close()
		_, _ = io.Copy(io.Discard, c)
		g.closed(c, gc)
		return
	}
	gc.backend = b
	g.mu.Unlock()
	back := make(chan struct{})
	go func() {
		defer close(back)
		g.forward(c, b)
		// The dependency closed its end, or the gate did: pass that on.
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	g.forward(b, c) // until Checkout closes its end (or the gate closes c)
	g.closed(c, gc)
	b.Close()
	<-back
}

// forward copies src to dst until src ends, and swallows what src sends
// while the gate is hung or once dst is closed.
func (g *gate) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !g.hung() {
			if _, err := dst.Write(buf[:n]); err != nil {
				dst = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// lookups sits in front of the real ProductService handler: it reads the
// sku of each GetProduct, delays, holds or fails it as rule says, and keeps
// count of the lookups in flight, overall and per group of skus.
type lookups struct {
	mu       sync.Mutex
	rule     func(sku uint32) (delay time.Duration, fail bool) // nil: pass at once
	group    func(sku uint32) int                              // nil: one group
	inFlight int
	peak     int
	groupIn  map[int]int
	groupMax map[int]int
	calls    map[uint32]int
	// released is closed by release, or once releaseAt lookups are in
	// flight at once (when releaseAt is above zero): lookups the rule
	// holds wait for it.
	released  chan struct{}
	releaseAt int
}

// held is a delay a rule may give: the lookup waits until the test
// releases it (or Checkout gives up on it).
const held time.Duration = -1

func (l *lookups) setRule(rule func(sku uint32) (time.Duration, bool)) {
	l.mu.Lock()
	l.rule = rule
	l.mu.Unlock()
}

// release lets the held lookups go on, and the ones held later at once.
func (l *lookups) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked()
}

func (l *lookups) releaseLocked() {
	select {
	case <-l.released:
	default:
		close(l.released)
	}
}

// all gives every lookup delay d (forever, held or a duration).
func all(d time.Duration) func(uint32) (time.Duration, bool) {
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
		if l.releaseAt > 0 && l.inFlight >= l.releaseAt {
			l.releaseLocked()
		}
		released := l.released
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
		switch {
		case delay == held:
			select {
			case <-released:
			case <-r.Context().Done():
				return // Checkout gave up on the call
			}
		case delay > 0:
			timer := time.NewTimer(delay)
			defer timer.Stop()
			select {
			case <-timer.C:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// rig is start's LOMS and cart database, a real ProductService of its own
// (start's middleware cannot tell one sku from another), a gate in front of
// each, and a Checkout with the timeouts above behind the gates.
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
	r := &rig{system: start(t), lookups: &lookups{groupIn: map[int]int{}, groupMax: map[int]int{}, calls: map[uint32]int{},
		released: make(chan struct{})}}

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
// with the timeouts above as tune leaves them, and returns its base URL and
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
	app, err := checkout.Open(t.Context(), cfg, platform.Deps{Log: quiet, Tel: telemetry.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close(context.Background()) })
	srv := rpctest.NewServer(t, platform.Config{MaxBodyBytes: 1 << 20}, quiet)
	srv.MountApp(app)
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

// A ProductService that is slower than PRODUCT_TIMEOUT (its lookups never
// answer), refuses connections or hangs fails ListCart with a code
// ARCHITECTURE.md allows for a dependency down or too slow, touches no
// cart, and once it recovers the same listing succeeds. The messages say
// that PRODUCT_TIMEOUT ran out: Checkout gave up by itself, by the timeout
// and not by the caller's deadline (which is the platform's 30s).
func TestProductServiceOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	cases := []struct {
		name       string
		fail, mend func()
		code       connect.Code
		says       string
	}{
		{"slow", func() { r.lookups.setRule(all(forever)) }, func() { r.lookups.setRule(nil) },
			connect.CodeDeadlineExceeded, "ProductService did not answer within 5s"},
		{"refused", func() { r.product.set(t, gateRefuse) }, func() { r.product.set(t, gateOpen) },
			connect.CodeUnavailable, "ProductService is unavailable"},
		{"hung", func() { r.product.set(t, gateHang) }, func() { r.product.set(t, gateOpen) },
			connect.CodeDeadlineExceeded, "ProductService did not answer within 5s"},
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
			_, err := r.c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user})
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
			if got := listOnceRecovered(t, r.c, user); got != want {
				t.Fatalf("listing after recovery %q, want %q", got, want)
			}
		})
	}
}

// listOnceRecovered lists user's cart until a listing succeeds, within
// settle: a lookup the failed listing left in flight may still hold its
// sku's shared call for a moment after the dependency recovered (seen on a
// busy machine), and a later listing must succeed by itself.
func listOnceRecovered(t *testing.T, c checkoutv1connect.CheckoutServiceClient, user int64) string {
	t.Helper()
	var err error
	for deadline := time.Now().Add(settle); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var res *checkoutv1.ListCartResponse
		if res, err = c.ListCart(t.Context(), &checkoutv1.ListCartRequest{User: user}); err == nil {
			return cartString(res)
		}
	}
	t.Fatalf("ListCart(%d) still failing %v after recovery: %v", user, settle, err)
	return ""
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
		code    connect.Code
		says    string
	}{
		// 3003 is refused at once while the others are held until the
		// listing has returned, with an hour's timeout: the listing ends at
		// the failure, not after the others. One that waited for them would
		// run into the caller's deadline and fail deadline_exceeded.
		{"one sku refused, the others slow", time.Hour,
			func(sku uint32) (time.Duration, bool) { return held, sku == 3003 },
			connect.CodeUnavailable, "ProductService is unavailable"},
		// 3004 never answers while the others answer at once.
		{"one sku slower than the timeout", productTimeout,
			func(sku uint32) (time.Duration, bool) {
				if sku == 3004 {
					return forever, false
				}
				return 0, false
			},
			connect.CodeDeadlineExceeded, "ProductService did not answer within 5s"},
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
			defer r.lookups.release()
			ctx, cancel := context.WithTimeout(t.Context(), settle)
			defer cancel()
			res, err := c.ListCart(ctx, &checkoutv1.ListCartRequest{User: user})
			if err == nil {
				t.Errorf("a listing although one lookup failed: %s", cartString(res))
			}
			wantCode(t, err, tc.code, tc.says)
			r.lookups.setRule(nil)
			r.lookups.release()

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
// with unavailable, or deadline_exceeded by LOMS_TIMEOUT, and leaves the
// cart as it was, except that a Purchase keeps the idempotency key it drew:
// once LOMS is back, the retried Purchase sends that key and LOMS makes
// exactly one order.
func TestLOMSOutage(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	cases := []struct {
		name string
		mode gateMode
		code connect.Code
		says string
	}{
		{"refused", gateRefuse, connect.CodeUnavailable, "LOMS is unavailable"},
		{"hung", gateHang, connect.CodeDeadlineExceeded, "LOMS did not answer within 6s"},
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
			_, err := r.c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: user, Sku: 3011, Count: 1})
			wantCode(t, err, tc.code, tc.says)
			_, err = r.c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: stranger, Sku: 3011, Count: 1})
			wantCode(t, err, tc.code, tc.says)
			if got := r.cart(t, user); got != before {
				t.Fatalf("cart %+v after a refused add, was %+v", got, before)
			}
			if got := r.cart(t, stranger); got.exists {
				t.Fatalf("a refused add made a cart: %+v", got)
			}

			var key string
			for attempt := range 2 {
				_, err = r.c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
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
// the caller's behalf: the answer is Checkout's. The dependency hangs, so
// the caller's deadline is what ends the call however slow the machine;
// the message shows it was the deadline and not the minute's timeout.
// The deadline is seconds long, so that the cart is read before it passes.
func TestCallerDeadlineBeatsTheDependencyTimeout(t *testing.T) {
	t.Parallel()
	const dependencyTimeout, callerDeadline = time.Minute, 3 * time.Second
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
		res, err := httpc.Do(req)
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
// limit): concurrent listings of different carts each keep to it, so the
// service sees at most listings × the bound. The ProductService holds the
// lookups until that many are in flight at once, so the listings overlap
// as far as they may whatever the machine's speed; a process-wide bound
// would leave them held until the timeout.
func TestConcurrentListingsKeepTheirBound(t *testing.T) {
	t.Parallel()
	const limit, carts, perCart = 2, 8, 6
	r := newRig(t, func(c *checkout.Config) {
		c.Products.Concurrency = limit
		c.Product.Timeout = 10 * time.Second
	})
	// Cart u holds skus 3000+6u ... 3000+6u+5, so a lookup tells its cart.
	for u := range carts {
		for i := range perCart {
			add(t, r.c, int64(u+1), uint32(3000+perCart*u+i), 1)
		}
	}
	r.lookups.mu.Lock()
	r.lookups.group = func(sku uint32) int { return int(sku-3000) / perCart }
	r.lookups.releaseAt = limit * carts
	r.lookups.mu.Unlock()
	r.lookups.setRule(all(held))

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
	if r.lookups.peak != limit*carts {
		t.Errorf("%d lookups in flight at once, want %d: each listing's %d", r.lookups.peak, limit*carts, limit)
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
// settle: whatever Checkout still runs must end by itself, by a timeout at
// the latest, however slow the machine.
func waitIdle(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(settle)
	for {
		left := checkoutGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d Checkout goroutines still running after %v, the first:\n%s", when, len(left), settle, left[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An outage of both dependencies, with many calls failing at once, leaves
// no goroutine behind: none of Checkout's is still running after the calls
// failed (a lookup nobody waits for may run to its own timeout, no longer),
// while the dependencies still hang, nor after they recover; and once the
// system is shut down nothing it started is left. A goroutine left behind
// would wait on a hung dependency for good, so a generous bound tells it.
// Not parallel: it counts every goroutine in the process.
func TestOutageLeavesNoGoroutines(t *testing.T) {
	outside := goleak.IgnoreCurrent()
	t.Run("outage", func(t *testing.T) {
		r := newRig(t, nil)
		for u := int64(1); u <= 10; u++ {
			add(t, r.c, u, 3030+uint32(u), 1)
			list(t, r.c, u)
		}
		waitIdle(t, "before the outage")

		storm := func(mode gateMode) {
			r.product.set(t, mode)
			r.lomsGate.set(t, mode)
			// Callers that have a deadline of their own, longer than the
			// timeouts, as real callers do.
			ctx, cancel := context.WithTimeout(t.Context(), settle)
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
			waitIdle(t, fmt.Sprintf("outage (mode %d), dependencies still down", mode))
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
		waitIdle(t, "after recovery")
	})
	goleak.VerifyNone(t, outside)
}
