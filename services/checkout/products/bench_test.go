package products_test

import (
	"testing"
	"time"

	"github.com/minizon/minizon/services/checkout/products"
)

// BenchmarkProducts measures the fan-out of one 50-item cart against a
// ProductService that answers in 50 ms: uncached at several pool widths
// (one call per item; sequential would be 2.5 s), and from a warm cache.
func BenchmarkProducts(b *testing.B) {
	cases := []struct {
		name string
		cfg  products.Config
		warm bool
	}{
		{"uncached/concurrency=1", products.Config{Concurrency: 1}, false},
		{"uncached/concurrency=8", products.Config{Concurrency: 8}, false},
		{"uncached/concurrency=50", products.Config{Concurrency: 50}, false},
		{"cached", products.Config{Concurrency: 8, CacheTTL: time.Hour, CacheSize: 100}, true},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			if bc.cfg.Concurrency == 1 && testing.Short() {
				b.Skip("2.5 s per op")
			}
			_, addr := startCatalog(b, 50*time.Millisecond)
			c := newClient(b, addr, 10*time.Second, bc.cfg)
			items := skus(1, 50)
			if bc.warm {
				if _, err := c.Products(b.Context(), items); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if _, err := c.Products(b.Context(), items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/cart")
		})
	}
}
