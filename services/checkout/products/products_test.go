package products_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	"github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/products"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// forever is a delay no test outlasts: a catalog given it never answers,
// and its calls end only when their caller gives up.
const forever = time.Duration(math.MaxInt64)

// catalog is a ProductService that answers after a delay, knows every sku
// below 1,000,000, and counts what it is asked. The tests that are about
// calls overlapping make it hold calls until enough of them are in flight,
// or until the test releases them, instead of relying on a delay to make
// them overlap: on a busy machine a delay proves nothing.
type catalog struct {
	productconnect.UnimplementedProductServiceHandler
	delay time.Duration
	// hangShort, when above zero, makes every call whose deadline is less
	// than hangShort away never answer.
	hangShort time.Duration
	calls     atomic.Int64
	inFlight  atomic.Int64
	peak      atomic.Int64
	mu        sync.Mutex
	deadlines []time.Time // the deadline each call arrived with; zero for none
	// hold, when above zero, keeps every call waiting until hold calls are
	// in flight at once, whereupon they all go on (and later ones do not
	// wait); released is closed then.
	hold     int64
	released chan struct{}
}

// holdUntil makes calls wait until n of them are in flight at once.
func (c *catalog) holdUntil(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold, c.released = n, make(chan struct{})
}

// releaseHeld lets the calls held by holdUntil go on, however many there are.
func (c *catalog) releaseHeld() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold > 0 {
		c.hold = 0
		close(c.released)
	}
}

func (c *catalog) GetProduct(ctx context.Context, req *product.GetProductRequest) (*product.GetProductResponse, error) {
	c.calls.Add(1)
	n := c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
	dl, ok := ctx.Deadline()
	hang := c.hangShort > 0 && ok && time.Until(dl) < c.hangShort
	c.mu.Lock()
	c.deadlines = append(c.deadlines, dl)
	var held <-chan struct{}
	if c.hold > 0 {
		held = c.released
		if n >= c.hold {
			c.hold = 0
			close(c.released)
		}
	}
	c.mu.Unlock()
	if req.GetToken() != "testtoken" {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("token: not accepted"))
	}
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	delay := c.delay
	if hang {
		delay = forever
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if req.GetSku() >= 1_000_000 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("sku %d is not in the catalog", req.GetSku()))
	}
	return &product.GetProductResponse{Name: fmt.Sprintf("Product %d", req.GetSku()), Price: req.GetSku() * 10}, nil
}

func startCatalog(t testing.TB, delay time.Duration) (*catalog, string) {
	t.Helper()
	c := &catalog{delay: delay}
	_, h := productconnect.NewProductServiceHandler(c)
	return c, rpctest.Serve(t, rpctest.GRPCOnly(h))
}

func newClient(t testing.TB, addr string, timeout time.Duration, cfg products.Config) *products.Client {
	t.Helper()
	dep, err := rpcclient.New("ProductService", rpcclient.Config{Addr: addr, Protocol: rpcclient.ProtocolGRPC, Timeout: timeout},
		slog.New(slog.NewTextHandler(io.Discard, nil)), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Token == "" {
		cfg.Token = "testtoken"
	}
	c := products.New(dep, cfg)
	t.Cleanup(func() { c.Close(); dep.Close() })
	return c
}

func skus(from, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(from + i)
	}
	return out
}

// waitForWaiters waits until n goroutines of the top-level test t wait in
// Client.Product for a call in flight: blocked in its select, past the
// point where they started or joined the call. Nothing else tells when a
// lookup has joined a shared call, and a test that merely gives it time to
// do so fails on a machine too busy to do it in that time.
func waitForWaiters(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute) // keeps a broken build from hanging; measures nothing
	for {
		got := waitersInProduct("products_test." + t.Name() + ".")
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines wait in Client.Product, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitersInProduct counts the goroutines blocked in a select whose
// innermost frame is Client.Product and whose stack holds caller, the name
// of the calling test's functions.
func waitersInProduct(caller string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, frames, _ := strings.Cut(g, "\n")
		if strings.Contains(header, "[select") && strings.Contains(frames, caller) &&
			strings.HasPrefix(frames, "github.com/minizon/minizon/services/checkout/products.(*Client).Product(") {
			count++
		}
	}
	return count
}

func TestProductsComeBackInOrder(t *testing.T) {
	t.Parallel()
	_, addr := startCatalog(t, 0)
	c := newClient(t, addr, 10*time.Second, products.Config{Concurrency: 4})
	got, err := c.Products(t.Context(), []uint32{30, 10, 20})
	if err != nil {
		t.Fatal(err)
	}
	for i, sku := range []uint32{30, 10, 20} {
		if want := (cart.Product{Name: fmt.Sprintf("Product %d", sku), Price: sku * 10}); got[i] != want {
			t.Fatalf("product %d: %+v, want %+v", i, got[i], want)
		}
	}
}

// Lookups run concurrently, as many at once as the configured number and
// never more. The catalog holds the calls until that many are in flight
// (or all 50, when the limit is wider than the cart), so the lookups reach
// the limit however slowly the machine runs them; a pool narrower than the
// limit would leave them held until the timeout.
func TestFanOutIsBounded(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{1, 8, 64} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			cat, addr := startCatalog(t, 0)
			want := int64(min(limit, 50))
			cat.holdUntil(want)
			c := newClient(t, addr, 10*time.Second, products.Config{Concurrency: limit})
			if _, err := c.Products(t.Context(), skus(1, 50)); err != nil {
				t.Fatalf("Products with calls held until %d are in flight: %v", want, err)
			}
			if n := cat.calls.Load(); n != 50 {
				t.Fatalf("%d calls, want 50", n)
			}
			if peak := cat.peak.Load(); peak != want {
				t.Fatalf("peak of %d calls in flight with a limit of %d, want %d", peak, limit, want)
			}
		})
	}
}

// 50 items cost one round trip when the pool is as wide as the cart: all 50
// lookups are in flight at once. The catalog holds every call until the
// 50th arrives, so a client that sent fewer at a time would not get its
// answers before the timeout. (BenchmarkProducts has the time it takes.)
func TestFiftyItemsCostAboutOneRoundTrip(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	cat.holdUntil(50)
	c := newClient(t, addr, 10*time.Second, products.Config{Concurrency: 50})
	if _, err := c.Products(t.Context(), skus(1, 50)); err != nil {
		t.Fatalf("50 lookups, held until all 50 are in flight: %v", err)
	}
	if n, peak := cat.calls.Load(), cat.peak.Load(); n != 50 || peak != 50 {
		t.Fatalf("%d calls, at most %d in flight at once; want 50 at once", n, peak)
	}
}

// Identical lookups in flight at once make one call; with the cache off,
// the next lookup calls again. The catalog holds the call until all 20
// lookups wait for it.
func TestIdenticalLookupsAreCoalesced(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	cat.holdUntil(math.MaxInt64) // until releaseHeld
	c := newClient(t, addr, time.Minute, products.Config{Concurrency: 8})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if p, err := c.Product(context.Background(), 42); err != nil || p.Price != 420 {
				t.Errorf("Product: %+v, %v", p, err)
			}
		})
	}
	waitForWaiters(t, 20)
	cat.releaseHeld()
	wg.Wait()
	if n := cat.calls.Load(); n != 1 {
		t.Fatalf("%d calls for 20 concurrent lookups of one sku, want 1", n)
	}
	if _, err := c.Product(t.Context(), 42); err != nil {
		t.Fatal(err)
	}
	if n := cat.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: without a cache a later lookup calls again", n)
	}
}

// A caller that gives up does not fail the others waiting on the same call.
// The catalog holds the call until the second caller has joined it and the
// first has given up.
func TestCoalescedCallOutlivesItsStarter(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	cat.holdUntil(math.MaxInt64) // until releaseHeld
	c := newClient(t, addr, time.Minute, products.Config{Concurrency: 8})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Product(ctx, 7); first <- err }()
	for cat.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := c.Product(context.Background(), 7); second <- err }()
	waitForWaiters(t, 2)
	cancel()
	if err := <-first; connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("cancelled caller: %v", err)
	}
	cat.releaseHeld()
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if n := cat.calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

// The TTL is long enough for the three listings to fit in it on a busy
// machine; the wait after them is longer still, so it outlasts the TTL
// however slowly the listings ran.
func TestCacheServesUntilTTL(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	cat, addr := startCatalog(t, 0)
	c := newClient(t, addr, 10*time.Second, products.Config{Concurrency: 8, CacheTTL: ttl, CacheSize: 100})
	for range 3 {
		if _, err := c.Products(t.Context(), skus(1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := cat.calls.Load(); n != 10 {
		t.Fatalf("%d calls for three listings of 10 skus, want 10", n)
	}
	time.Sleep(ttl + time.Second)
	if _, err := c.Products(t.Context(), skus(1, 10)); err != nil {
		t.Fatal(err)
	}
	if n := cat.calls.Load(); n != 20 {
		t.Fatalf("%d calls after the TTL, want 20", n)
	}
}

// The rate limit spaces calls: never more than RPS in any second.
func TestRateLimitSpacesCalls(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	const rps = 20
	c := newClient(t, addr, 10*time.Second, products.Config{Concurrency: 16, RPS: rps})
	start := time.Now()
	if _, err := c.Products(t.Context(), skus(1, 2*rps+1)); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	// With a burst of one, n calls take (n-1)/rps at least: the limiter
	// lets the last one go that long after the first, which went no
	// earlier than start. A lower bound only, measured from the client's
	// side: a busy machine can only make the run longer. (From the
	// server's side, a first call late to arrive squeezed the window: it
	// failed so once, at 891ms for 21 calls that had to take 1s.)
	n := cat.calls.Load()
	if n != 2*rps+1 {
		t.Fatalf("%d calls, want %d", n, 2*rps+1)
	}
	want := time.Duration(n-1) * time.Second / rps
	// The limiter's arithmetic is in floating-point seconds: allow it a
	// millisecond.
	if d < want-time.Millisecond {
		t.Fatalf("%d calls within %v, limit %d/s: want at least %v", n, d, rps, want)
	}
}

// A lookup the limiter cannot let go before the caller's deadline fails at
// once, rather than wait for the deadline: here the 8 lookups need 7s at
// 1/s and the caller has 2s, so the ones beyond it are refused as soon as
// they ask, and the listing fails while the caller still has time left.
// (The one lookup the limiter lets wait runs on for a second: a shared
// call ends by its own deadline, not by the caller leaving.)
func TestRateLimitGivesUpBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	_, addr := startCatalog(t, 0)
	c := newClient(t, addr, time.Minute, products.Config{Concurrency: 8, RPS: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := c.Products(ctx, skus(1, 8))
	if ctx.Err() != nil {
		t.Fatalf("Products returned %v only once the caller's deadline had passed; want it to give up before", err)
	}
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "rate limit (1/s) leaves no time before the deadline") {
		t.Fatalf("Products: %v, want deadline_exceeded from the rate limit", err)
	}
}

// Each failure gets its code and message. The timeouts are the subject of
// two cases only, against a catalog that never answers; elsewhere the
// timeout is long, so that a busy machine cannot turn an answer into a
// timeout.
func TestFailures(t *testing.T) {
	t.Parallel()
	_, hung := startCatalog(t, forever)
	_, fast := startCatalog(t, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()

	const long = time.Minute
	tests := []struct {
		name     string
		addr     string
		token    string
		sku      uint32
		timeout  time.Duration
		deadline time.Duration
		code     connect.Code
		isErr    error
		msg      string
	}{
		{"unknown sku", fast, "", 1_000_001, long, 0, 0, cart.ErrUnknownProduct, "sku 1000001 is not in the catalog"},
		{"token refused", fast, "wrong", 1, long, 0, connect.CodeInternal, nil, "PRODUCT_TOKEN"},
		{"server down", down, "", 1, long, 0, connect.CodeUnavailable, nil, "ProductService is unavailable"},
		{"no answer within the timeout", hung, "", 1, 200 * time.Millisecond, 0, connect.CodeDeadlineExceeded, nil, "ProductService did not answer within 200ms"},
		{"no answer within the caller's deadline", hung, "", 1, long, 100 * time.Millisecond, connect.CodeDeadlineExceeded, nil, "deadline exceeded waiting for ProductService"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.addr, tt.timeout, products.Config{Concurrency: 2, Token: tt.token})
			ctx := t.Context()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := c.Products(ctx, []uint32{2, tt.sku})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Fatalf("%v, want %v", err, tt.isErr)
			}
			if tt.code != 0 && connect.CodeOf(err) != tt.code {
				t.Fatalf("%v: code %v, want %v", err, connect.CodeOf(err), tt.code)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("%q does not say %q", err, tt.msg)
			}
		})
	}
}

// Every call carries the caller's deadline to ProductService, capped by the
// timeout, so the server stops working when nobody waits any more.
//
// Deadlines travel as a relative timeout, which the server counts from when
// the call arrives: it sees the sender's deadline moved on by the call's
// time in transit, so no earlier than that deadline and no later than the
// deadline plus the whole call (give or take the rounding of the timeout
// on the wire). The bounds hold however long the transit takes on a busy
// machine, and the caller's minute and the one-hour cap are far apart.
func TestCallsCarryTheDeadline(t *testing.T) {
	t.Parallel()
	const limit, callerTimeout, rounding = time.Hour, time.Minute, time.Millisecond
	cat, addr := startCatalog(t, 0)
	c := newClient(t, addr, limit, products.Config{Concurrency: 1})
	check := func(what string, got, dl time.Time, took time.Duration) {
		t.Helper()
		if got.IsZero() || got.Before(dl.Add(-rounding)) || got.After(dl.Add(took+rounding)) {
			t.Errorf("%s the server saw the deadline %v, want %v or up to %v after it", what, got, dl, took)
		}
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), callerTimeout)
	defer cancel()
	callerDeadline, _ := ctx.Deadline()
	if _, err := c.Product(ctx, 1); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)

	start2 := time.Now()
	if _, err := c.Product(t.Context(), 2); err != nil {
		t.Fatal(err)
	}
	took2 := time.Since(start2)

	cat.mu.Lock()
	defer cat.mu.Unlock()
	check("with a 1m caller deadline", cat.deadlines[0], callerDeadline, took)
	// The cap starts when the call does, at start2 or a little later.
	check("without a caller deadline (the 1h cap)", cat.deadlines[1], start2.Add(limit), took2)
}

// A caller that joined a shared call whose starter had less time left than
// it does is not failed by the starter's deadline: it tries again on its own.
// TestJoinerOutlivesTheStartersDeadlineUnderTheRateLimit: the rate limiter
// refuses at once a wait that would pass the starter's short deadline; a
// joiner with time to wait must still get its product.
//
// Should the machine be so slow that the limiter has a token again by the
// time the starter asks, the starter's call goes out instead: the catalog
// never answers a call with as little time left as the starter's, so that
// call too runs out of the starter's deadline and the joiner tries again,
// as under the limiter.
func TestJoinerOutlivesTheStartersDeadlineUnderTheRateLimit(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	cat.hangShort = 10 * time.Second
	c := newClient(t, addr, time.Minute, products.Config{Concurrency: 8, RPS: 2})
	// Take the limiter's burst, so that the next call waits about 500ms.
	if _, err := c.Product(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	joined := make(chan struct{})
	go func() {
		close(joined)
		_, err := c.Product(short, 9)
		first <- err
	}()
	<-joined
	p, err := c.Product(t.Context(), 9)
	if err != nil || p.Price != 90 {
		t.Fatalf("joiner with time to spare: %+v, %v", p, err)
	}
	if err := <-first; connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("starter with 100ms: %v, want deadline_exceeded", err)
	}
}

// The starter's call never gets an answer (the catalog keeps calls with
// less than a minute left waiting), so it runs out of the starter's three
// seconds; the joiner, with the client's hour, tries again and is answered.
func TestJoinerOutlivesTheStartersDeadline(t *testing.T) {
	t.Parallel()
	cat, addr := startCatalog(t, 0)
	cat.hangShort = time.Minute
	c := newClient(t, addr, time.Hour, products.Config{Concurrency: 8})
	short, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	first := make(chan error, 1)
	go func() { _, err := c.Product(short, 9); first <- err }()
	for cat.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	p, err := c.Product(t.Context(), 9)
	if err != nil || p.Price != 90 {
		t.Fatalf("joiner with time to spare: %+v, %v", p, err)
	}
	if err := <-first; connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Fatalf("starter with 3s: %v, want deadline_exceeded", err)
	}
	if n := cat.calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: the joiner's retry", n)
	}
}
