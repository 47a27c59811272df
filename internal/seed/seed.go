// Package seed makes the deterministic demo data of `minizon dev`: the same
// catalog of skus for every service, and stock for it in three warehouses.
package seed

import (
	"math/rand/v2"
	"slices"
)

// SampleSKUs are the original public ProductService's sample skus; they are
// always in the catalog and in stock in every warehouse.
func SampleSKUs() []uint32 { return []uint32{773297411, 773587830, 773596051} }

// Warehouses are the demo warehouse ids.
func Warehouses() []int64 { return []int64{1, 2, 3} }

// CatalogSize is the number of skus `minizon dev` seeds.
const CatalogSize = 10000

// Stock is a number of units of a sku in a warehouse.
type Stock struct {
	SKU       uint32
	Warehouse int64
	Units     uint64
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(20261126, 773297411)) }

// SKUs returns n distinct skus (n ≥ len(SampleSKUs)) in ascending order, the
// same on every call.
func SKUs(n int) []uint32 {
	r := newRand()
	seen := make(map[uint32]bool, n)
	out := make([]uint32, 0, n)
	for _, s := range SampleSKUs() {
		seen[s] = true
		out = append(out, s)
	}
	for len(out) < n {
		s := 1_000_000 + r.Uint32N(999_000_000)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Stocks returns stock for every sku: 10 to 1,000 units in each of one to
// three warehouses, and in all three for the sample skus.
func Stocks(skus []uint32) []Stock {
	r := newRand()
	all, samples := Warehouses(), SampleSKUs()
	var out []Stock
	for _, sku := range skus {
		whs := all
		if !slices.Contains(samples, sku) {
			// A random non-empty subset, in warehouse order.
			mask := 1 + r.IntN(1<<len(all)-1)
			whs = nil
			for i, w := range all {
				if mask&(1<<i) != 0 {
					whs = append(whs, w)
				}
			}
		}
		for _, w := range whs {
			out = append(out, Stock{SKU: sku, Warehouse: w, Units: uint64(10 + r.IntN(991))})
		}
	}
	return out
}
