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
func Plan(items []Item, stocks []Stock) ([]Reservation, bool) {
	bySKU := make(map[uint32][]Stock, len(items))
	for _, s := range stocks {
		if s.Available() > 0 {
			bySKU[s.SKU] = append(bySKU[s.SKU], s)
		}
	}
	var plan []Reservation
	for _, it := range items {
		candidates := bySKU[it.SKU]
		sortByAvailableDesc(candidates)
		need := uint64(it.Count)
		for _, s := range candidates {
			if need == 0 {
				break
			}
			take := min(need, s.Available())
			plan = append(plan, Reservation{SKU: it.SKU, Warehouse: s.Warehouse, Count: take})
			need -= take
		}
		if need > 0 {
			return nil, false
		}
	}
	return plan, true
}

func sortByAvailableDesc(s []Stock) {
	slices.SortFunc(s, func(a, b Stock) int {
		if c := cmp.Compare(b.Available(), a.Available()); c != 0 {
			return c
		}
		return cmp.Compare(a.Warehouse, b.Warehouse)
	})
}

// Availability is what can be bought of a sku in one warehouse.
type Availability struct {
	Warehouse int64
	Count     uint64
}
