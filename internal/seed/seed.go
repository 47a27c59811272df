// Package seed makes the deterministic demo data of `minizon dev`: the same
// catalog of skus for every service, its names and prices, and stock for it
// in three warehouses.
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

// Product is a demo catalog entry.
type Product struct {
	SKU uint32
	// Name is an English product name, such as "Compact Walnut Desk Lamp".
	Name string
	// Price is from MinPrice to MaxPrice.
	Price uint32
}

// Demo prices are between these bounds, inclusive.
const (
	MinPrice = 50
	MaxPrice = 50000
)

// productSeed keys the name and price streams; it is not newRand's seed, so
// Products and Stocks never share random numbers.
const productSeed = 0x70726f6475637473 // "products" in ASCII

// Products returns a product for every sku, in the given order: an English
// name such as "Compact Walnut Desk Lamp" and a price from MinPrice to
// MaxPrice. Both are derived from the sku alone, so a sku has the same name
// and price in whatever list it is asked for.
func Products(skus []uint32) []Product {
	// Adjective, material or colour, and item: 40 × 40 × 60 combinations
	// keep the names of the 10,000-sku catalog mostly distinct. Local, not
	// package variables, so that nothing can change them between calls.
	var (
		nameAdjectives = [...]string{
			"Compact", "Classic", "Modern", "Rustic", "Minimal", "Vintage", "Deluxe", "Slim", "Sturdy", "Foldable",
			"Portable", "Handmade", "Premium", "Everyday", "Nordic", "Urban", "Cozy", "Elegant", "Lightweight", "Heavy-Duty",
			"Ergonomic", "Stackable", "Oversized", "Mini", "Travel", "Studio", "Garden", "Heritage", "Essential", "Signature",
			"Weatherproof", "Adjustable", "Soft-Touch", "Retro", "Industrial", "Coastal", "Alpine", "Pocket", "Grand", "Artisan",
		}
		nameMaterials = [...]string{
			"Walnut", "Oak", "Bamboo", "Steel", "Copper", "Brass", "Ceramic", "Glass", "Linen", "Cotton",
			"Wool", "Leather", "Marble", "Slate", "Graphite", "Ivory", "Crimson", "Navy", "Olive", "Teal",
			"Amber", "Charcoal", "Sage", "Coral", "Indigo", "Sand", "Pearl", "Cedar", "Birch", "Concrete",
			"Terracotta", "Cobalt", "Mint", "Rust", "Silver", "Golden", "Matte Black", "Arctic White", "Forest Green", "Sky Blue",
		}
		nameItems = [...]string{
			"Desk Lamp", "Coffee Mug", "Water Bottle", "Notebook", "Backpack", "Chair", "Side Table", "Bookshelf", "Throw Pillow", "Blanket",
			"Cutting Board", "Teapot", "Wall Clock", "Picture Frame", "Plant Pot", "Tote Bag", "Wallet", "Watch Strap", "Phone Stand", "Headphone Stand",
			"Desk Organizer", "Pen Holder", "Serving Bowl", "Salad Bowl", "Dinner Plate", "Wine Glass", "Candle Holder", "Vase", "Mirror", "Doormat",
			"Rug", "Laundry Basket", "Storage Box", "Shelf Bracket", "Coat Hook", "Umbrella", "Scarf", "Beanie", "Sneakers", "Lunch Box",
			"Thermos", "Kettle", "Frying Pan", "Saucepan", "Spice Rack", "Knife Block", "Bread Bin", "Coaster Set", "Table Runner", "Napkin Set",
			"Bath Towel", "Soap Dish", "Toothbrush Holder", "Shower Caddy", "Floor Lamp", "Pendant Light", "Bar Stool", "Footstool", "Keyboard Tray", "Monitor Riser",
		}
	)
	out := make([]Product, len(skus))
	for i, sku := range skus {
		r := rand.New(rand.NewPCG(productSeed, uint64(sku)))
		name := nameAdjectives[r.IntN(len(nameAdjectives))] + " " +
			nameMaterials[r.IntN(len(nameMaterials))] + " " +
			nameItems[r.IntN(len(nameItems))]
		out[i] = Product{SKU: sku, Name: name, Price: uint32(MinPrice + r.IntN(MaxPrice-MinPrice+1))}
	}
	return out
}
