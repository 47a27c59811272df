package order

import (
	"cmp"
	"slices"
)

// Stock is one sku's stock in one warehouse.
type Stock struct {
	SKU       uint32
	Warehouse int64
	Total     uint64
	Reserved  uint64
}

// Available is what can still be reserved.
func (s Stock) Available() uint64 {
	if s.Reserved >= s.Total {
		return 0
	}
	return s.Total - s.Reserved
}

// Reservation takes Count units of a sku in one warehouse for an order.
type Reservation struct {
	SKU       uint32
	Warehouse int64
	Count     uint64
}

// Plan spreads each item over the warehouses holding its sku, taking from
// the warehouse with the most available units first so that an order touches
// as few warehouses as it can; ties go to the lower warehouse id. It reports
// false when any sku is short. items must be merged (one per sku); stocks
// may be in any order.
//
// It runs while the order's stock rows are locked, so it sorts one copy of
// the rows instead of building a map of slices.
func Plan(items []Item, stocks []Stock) ([]Reservation, bool) {
	candidates := make([]Stock, 0, len(stocks))
	for _, s := range stocks {
		if s.Available() > 0 {
			candidates = append(candidates, s)
		}
	}
	slices.SortFunc(candidates, func(a, b Stock) int {
		if c := cmp.Compare(a.SKU, b.SKU); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Available(), a.Available()); c != 0 {
			return c
		}
		return cmp.Compare(a.Warehouse, b.Warehouse)
	})
	plan := make([]Reservation, 0, len(items))
	for _, it := range items {
		i, _ := slices.BinarySearchFunc(candidates, it.SKU, func(s Stock, sku uint32) int { return cmp.Compare(s.SKU, sku) })
		need := uint64(it.Count)
		for ; i < len(candidates) && candidates[i].SKU == it.SKU && need > 0; i++ {
			take := min(need, candidates[i].Available())
			plan = append(plan, Reservation{SKU: it.SKU, Warehouse: candidates[i].Warehouse, Count: take})
			need -= take
		}
		if need > 0 {
			return nil, false
		}
	}
	return plan, true
}

// Availability is what can be bought of a sku in one warehouse.
type Availability struct {
	Warehouse int64
	Count     uint64
}
