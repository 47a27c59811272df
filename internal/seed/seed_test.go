package seed_test

import (
	"slices"
	"testing"

	"github.com/minizon/minizon/internal/seed"
)

func TestCatalogIsDeterministicAndHoldsTheSamples(t *testing.T) {
	t.Parallel()
	skus := seed.SKUs(seed.CatalogSize)
	if len(skus) != seed.CatalogSize || !slices.IsSorted(skus) || len(slices.Compact(slices.Clone(skus))) != len(skus) {
		t.Fatalf("%d skus, sorted %v: want %d distinct in order", len(skus), slices.IsSorted(skus), seed.CatalogSize)
	}
	if !slices.Equal(skus, seed.SKUs(seed.CatalogSize)) {
		t.Fatal("the catalog differs between calls")
	}
	stocks := seed.Stocks(skus)
	if !slices.Equal(stocks, seed.Stocks(skus)) {
		t.Fatal("stock differs between calls")
	}
	per := map[uint32][]int64{}
	for _, s := range stocks {
		if s.Units < 10 || s.Units > 1000 {
			t.Fatalf("%+v: units outside 10..1000", s)
		}
		per[s.SKU] = append(per[s.SKU], s.Warehouse)
	}
	for _, sku := range skus {
		if n := len(per[sku]); n < 1 || n > 3 {
			t.Fatalf("sku %d in %d warehouses", sku, n)
		}
	}
	for _, sku := range seed.SampleSKUs() {
		if !slices.Equal(per[sku], seed.Warehouses()) {
			t.Fatalf("sample sku %d in warehouses %v, want all", sku, per[sku])
		}
	}
}
