package systest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
)

// BenchmarkListCart is ListCart of a 50-item cart over gRPC, end to end,
// against a ProductService that takes 50 ms per call: uncached (every
// listing looks every product up) and with the default 10 s cache.
func BenchmarkListCart(b *testing.B) {
	sys := start(b)
	c := clients(b, sys.checkout)["grpc"]
	for sku := uint32(3000); sku < 3050; sku++ {
		if _, err := c.AddToCart(b.Context(), &checkoutv1.AddToCartRequest{User: 1, Sku: sku, Count: 1}); err != nil {
			b.Fatal(err)
		}
	}
	sys.faults.productDelay.Store(int64(50 * time.Millisecond))
	uncached := clients(b, sys.startCheckoutWith(b, sys.cartDBURL, 0))["grpc"]
	for _, bc := range []struct {
		name string
		c    interface {
			ListCart(ctx context.Context, req *checkoutv1.ListCartRequest) (*checkoutv1.ListCartResponse, error)
		}
	}{{"uncached", uncached}, {"cached", c}} {
		b.Run(bc.name, func(b *testing.B) {
			// The first listing fills the cache, if there is one.
			if _, err := bc.c.ListCart(b.Context(), &checkoutv1.ListCartRequest{User: 1}); err != nil {
				b.Fatal(err)
			}
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				res, err := bc.c.ListCart(b.Context(), &checkoutv1.ListCartRequest{User: 1})
				took = append(took, time.Since(start))
				if err != nil || len(res.GetItems()) != 50 {
					b.Fatalf("ListCart: %d items, %v", len(res.GetItems()), err)
				}
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
