// Package products is Checkout's view of ProductService: product lookups
// fanned out on a bounded pool, under a client-side rate limit, behind a
// short-lived cache, with identical in-flight lookups coalesced into one.
package products

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/maypok86/otter/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/services/checkout/cart"
)

// Config tunes the lookups.
type Config struct {
	// Token is sent with every call (PRODUCT_TOKEN).
	Token string
	// Concurrency bounds the lookups of one ListCart in flight at once
	// (PRODUCT_CONCURRENCY).
	Concurrency int
	// RPS caps calls per second to ProductService from this process, 0 for
	// no limit (PRODUCT_RPS).
	RPS int
	// CacheTTL is how long a product is served from memory, 0 for no cache
	// (PRODUCT_CACHE_TTL).
	CacheTTL time.Duration
	// CacheSize bounds the cached products (PRODUCT_CACHE_SIZE).
	CacheSize int
}

// Client implements cart.Catalog.
type Client struct {
	dep     *rpcclient.Dependency
	rpc     productconnect.ProductServiceClient
	cfg     Config
	limiter *rate.Limiter                      // nil: no limit
	cache   *otter.Cache[uint32, cart.Product] // nil: no cache
	flight  singleflight.Group
}

var _ cart.Catalog = (*Client)(nil)

// New returns a client of the ProductService that dep points at. Close it.
func New(dep *rpcclient.Dependency, cfg Config) *Client {
	c := &Client{
		dep: dep,
		rpc: productconnect.NewProductServiceClient(dep.HTTP, dep.BaseURL, dep.Options...),
		cfg: cfg,
	}
	if cfg.RPS > 0 {
		// A burst of one spaces calls evenly: a server that asks for at most
		// N calls a second gets no more in any second.
		c.limiter = rate.NewLimiter(rate.Limit(cfg.RPS), 1)
	}
	if cfg.CacheTTL > 0 {
		c.cache = otter.Must(&otter.Options[uint32, cart.Product]{
			MaximumSize:      max(cfg.CacheSize, 1),
			ExpiryCalculator: otter.ExpiryWriting[uint32, cart.Product](cfg.CacheTTL),
		})
	}
	return c
}

// Close stops the cache's background work.
func (c *Client) Close() {
	if c.cache != nil {
		c.cache.StopAllGoroutines()
	}
}

// Products implements cart.Catalog. Cached products are answered at once;
// the rest are looked up concurrently, at most cfg.Concurrency at a time, and
// the first failure cancels the others.
func (c *Client) Products(ctx context.Context, skus []uint32) ([]cart.Product, error) {
	out := make([]cart.Product, len(skus))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(c.cfg.Concurrency, 1))
	for i, sku := range skus {
		if p, ok := c.cached(sku); ok {
			out[i] = p
			continue
		}
		if gctx.Err() != nil {
			break // a lookup failed or the caller left: start no more
		}
		g.Go(func() error {
			p, err := c.Product(gctx, sku)
			out[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			// Report the caller's deadline, not the cancellation errgroup
			// caused.
			return nil, c.dep.Error(ctx, ctx.Err())
		}
		return nil, err
	}
	return out, nil
}

func (c *Client) cached(sku uint32) (cart.Product, bool) {
	if c.cache == nil {
		return cart.Product{}, false
	}
	return c.cache.GetIfPresent(sku)
}

// Product looks one product up. Concurrent lookups of one sku share a single
// call; it carries the deadline of the caller that started it but not its
// cancellation, so one caller giving up does not fail the others. A caller
// with time left when a shared call ran out of its starter's time tries once
// more under its own deadline.
func (c *Client) Product(ctx context.Context, sku uint32) (cart.Product, error) {
	for attempt := 0; ; attempt++ {
		if p, ok := c.cached(sku); ok {
			return p, nil
		}
		if ctx.Err() != nil {
			return cart.Product{}, c.dep.Error(ctx, ctx.Err())
		}
		ch := c.flight.DoChan(strconv.FormatUint(uint64(sku), 10), func() (any, error) {
			fctx := context.WithoutCancel(ctx)
			if dl, ok := ctx.Deadline(); ok {
				var cancel context.CancelFunc
				fctx, cancel = context.WithDeadline(fctx, dl)
				defer cancel()
			}
			p, err := c.fetch(fctx, sku)
			var sd *starterDeadlineError
			if err != nil && (fctx.Err() != nil || rpcclient.DeadlineDue(fctx, err)) && !errors.As(err, &sd) {
				dl, _ := ctx.Deadline()
				err = &starterDeadlineError{err: err, deadline: dl}
			}
			return p, err
		})
		select {
		case r := <-ch:
			if r.Err == nil {
				return r.Val.(cart.Product), nil
			}
			var sd *starterDeadlineError
			if !errors.As(r.Err, &sd) {
				return cart.Product{}, r.Err
			}
			// Only a caller with more time than the starter had tries again
			// (a shared call it joins next may be another short one: a few
			// times at most).
			if attempt < 3 && !deadlinePassed(ctx) && outlasts(ctx, sd.deadline) {
				continue
			}
			return cart.Product{}, sd.err
		case <-ctx.Done():
			return cart.Product{}, c.dep.Error(ctx, ctx.Err())
		}
	}
}

// starterDeadlineError is the failure of a shared call that ran out of the
// deadline of the caller that started it, rather than out of the timeout:
// only then may a caller with time left try again, as a second call under
// the same timeout would fail the same way.
type starterDeadlineError struct {
	err error
	// deadline is the starter's.
	deadline time.Time
}

// outlasts tells whether ctx's deadline is later than d (or it has none).
func outlasts(ctx context.Context, d time.Time) bool {
	dl, ok := ctx.Deadline()
	return !ok || dl.After(d)
}

func (e *starterDeadlineError) Error() string { return e.err.Error() }
func (e *starterDeadlineError) Unwrap() error { return e.err }

// deadlinePassed tells whether ctx is done or its deadline has come. The
// second matters right at the deadline: the shared call's own timer for the
// same instant may have fired before ctx's, and the caller that started the
// call must not then start another under a deadline already gone, which
// callers with time left would join and fail with.
func deadlinePassed(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// fetch makes the call, waiting for the rate limiter first; the timeout
// covers the wait too, so lookups nobody waits for any more cannot pile up
// in front of the limiter.
func (c *Client) fetch(ctx context.Context, sku uint32) (cart.Product, error) {
	cctx, cancel := c.dep.Context(ctx)
	defer cancel()
	if c.limiter != nil {
		if err := c.limiter.Wait(cctx); err != nil {
			// Wait fails at once when the deadline would pass first.
			err := error(connect.NewError(connect.CodeDeadlineExceeded,
				fmt.Errorf("%s rate limit (%d/s) leaves no time before the deadline", c.dep.Name, c.cfg.RPS)))
			// When that deadline is the caller's own, not the cap, a
			// caller sharing this lookup with more time may try again.
			if dl, ok := ctx.Deadline(); ok {
				if capped, _ := cctx.Deadline(); !dl.After(capped) {
					err = &starterDeadlineError{err: err, deadline: dl}
				}
			}
			return cart.Product{}, err
		}
	}
	res, err := c.rpc.GetProduct(cctx, &product.GetProductRequest{Token: c.cfg.Token, Sku: sku})
	if err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return cart.Product{}, fmt.Errorf("sku %d is %w", sku, cart.ErrUnknownProduct)
		}
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			// Not the caller's fault, and nothing a retry fixes: an operator
			// must set the right token.
			c.dep.Log().ErrorContext(ctx, "product service refused the token", "dependency", c.dep.Name, "error", err.Error())
			return cart.Product{}, connect.NewError(connect.CodeInternal,
				errors.New(c.dep.Name+" refused Checkout's token; check PRODUCT_TOKEN"))
		}
		return cart.Product{}, c.dep.Error(ctx, err)
	}
	p := cart.Product{Name: res.GetName(), Price: res.GetPrice()}
	if c.cache != nil {
		c.cache.Set(sku, p)
	}
	return p, nil
}
