package seed_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
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

// TestStocksAreUnchanged pins the demo stock: LOMS databases seeded by
// earlier versions must keep matching it, so adding other demo data must
// not move its random stream.
func TestStocksAreUnchanged(t *testing.T) {
	t.Parallel()
	seed.Products(seed.SKUs(seed.CatalogSize))
	h := sha256.New()
	for _, s := range seed.Stocks(seed.SKUs(seed.CatalogSize)) {
		fmt.Fprintf(h, "%d,%d,%d\n", s.SKU, s.Warehouse, s.Units)
	}
	const want = "c04284fa1661ee2048aaf6fabe8d7acaebc3724b495574fb36cfc013a1c7e0bf"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("demo stock checksum %s, want %s", got, want)
	}
}

func TestProductsAreDeterministicReadableAndPriced(t *testing.T) {
	t.Parallel()
	skus := seed.SKUs(seed.CatalogSize)
	products := seed.Products(skus)
	if !slices.Equal(products, seed.Products(skus)) {
		t.Fatal("products differ between calls")
	}
	names := map[string]bool{}
	for i, p := range products {
		if p.SKU != skus[i] {
			t.Fatalf("product %d has sku %d, want %d", i, p.SKU, skus[i])
		}
		if p.Price < seed.MinPrice || p.Price > seed.MaxPrice {
			t.Fatalf("%+v: price outside %d..%d", p, seed.MinPrice, seed.MaxPrice)
		}
		if words := strings.Fields(p.Name); len(words) < 3 || len(p.Name) > 200 || p.Name != strings.TrimSpace(p.Name) {
			t.Fatalf("%+v: want a name of three or more words", p)
		}
		names[p.Name] = true
	}
	if len(names) < len(products)*9/10 {
		t.Fatalf("%d distinct names for %d products, want mostly distinct", len(names), len(products))
	}
	// A sku's product does not depend on the list it is asked in, so any
	// service or test can derive the catalog's entry for a sample sku.
	for _, p := range seed.Products(seed.SampleSKUs()) {
		i, ok := slices.BinarySearch(skus, p.SKU)
		if !ok || products[i] != p {
			t.Fatalf("sample %+v differs from the catalog's", p)
		}
	}
	t.Logf("e.g. %q for %d, %q for %d", products[0].Name, products[0].Price, products[1].Name, products[1].Price)
}
