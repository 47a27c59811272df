// Package cart is Checkout's domain: a user's cart, the rules for changing
// it, and the purchase that turns it into a LOMS order. It does no I/O of its
// own; the store, LOMS and ProductService are reached through the interfaces
// declared here.
package cart

import (
	"errors"
	"fmt"
	"slices"

	"github.com/minizon/minizon/internal/validate"
)

// MaxItems is the most distinct skus a cart holds: LOMS takes at most 1000
// items per order, so a bigger cart could never be bought.
const MaxItems = 1000

// Errors a caller can act on; all mean the request does not fit the cart's
// or the warehouses' state.
var (
	// ErrEmptyCart: Purchase of a cart with nothing in it.
	ErrEmptyCart = errors.New("the cart is empty")
	// ErrOutOfStock: the warehouses together hold fewer units than the cart
	// would.
	ErrOutOfStock = errors.New("not enough stock")
	// ErrCartFull: the cart would exceed MaxItems skus or validate.MaxCount
	// units of one sku.
	ErrCartFull = errors.New("the cart is full")
	// ErrUnknownProduct: ProductService does not know a sku in the cart.
	ErrUnknownProduct = errors.New("not in the catalog")
)

// Item is a number of units of one sku.
type Item struct {
	SKU   uint32
	Count uint32
}

// Cart is a user's cart.
type Cart struct {
	User int64
	// Items are ordered by sku, one per sku, each with a positive count.
	Items []Item
	// PurchaseKey is the idempotency key of the purchase in progress, empty
	// when there is none. It lives until the purchase's outcome is known,
	// so that every retry sends LOMS the same key.
	PurchaseKey string
	// LastOrder is the order the last purchase placed, nil once the items
	// changed since: a Purchase repeated meanwhile, such as a retry after a
	// lost answer, gets this order back instead of buying anything again.
	LastOrder *Order
}

// Count returns the units of sku in the cart.
func (c *Cart) Count(sku uint32) uint32 {
	if i, ok := c.find(sku); ok {
		return c.Items[i].Count
	}
	return 0
}

// Empty reports whether the cart holds nothing.
func (c *Cart) Empty() bool { return len(c.Items) == 0 }

func (c *Cart) find(sku uint32) (int, bool) {
	return slices.BinarySearchFunc(c.Items, sku, func(it Item, sku uint32) int {
		return int(int64(it.SKU) - int64(sku))
	})
}

// Add puts count more units of sku in the cart if inStock, the units the
// warehouses hold together, covers what the cart will then hold.
func (c *Cart) Add(sku, count uint32, inStock uint64) error {
	i, found := c.find(sku)
	var have uint32
	if found {
		have = c.Items[i].Count
	}
	want := uint64(have) + uint64(count)
	switch {
	case !found && len(c.Items) >= MaxItems:
		return fmt.Errorf("%w: it already holds %d different skus", ErrCartFull, MaxItems)
	case want > validate.MaxCount:
		return fmt.Errorf("%w: sku %d would have %d units, more than %d", ErrCartFull, sku, want, validate.MaxCount)
	case want > inStock:
		return fmt.Errorf("%w: sku %d: the cart would hold %d units, the warehouses have %d", ErrOutOfStock, sku, want, inStock)
	}
	if found {
		c.Items[i].Count = uint32(want)
	} else {
		c.Items = slices.Insert(c.Items, i, Item{SKU: sku, Count: count})
	}
	c.LastOrder = nil
	return nil
}

// Remove takes up to count units of sku out of the cart; taking more than it
// holds, or a sku it does not hold, empties that line.
func (c *Cart) Remove(sku, count uint32) {
	i, found := c.find(sku)
	if !found {
		return
	}
	c.LastOrder = nil
	if c.Items[i].Count <= count {
		c.Items = slices.Delete(c.Items, i, i+1)
		return
	}
	c.Items[i].Count -= count
}

// Product is what ProductService says about a sku.
type Product struct {
	Name  string
	Price uint32
}

// Line is one cart item with its catalog data.
type Line struct {
	Item
	Product
}

// Listing is a cart with names, prices and the total.
type Listing struct {
	Lines []Line
	// Total is the sum of count × price; uint64 because 65535 units at a
	// uint32 price overflow 32 bits.
	Total uint64
}

// NewListing prices items; products[i] is the product of items[i].
func NewListing(items []Item, products []Product) Listing {
	l := Listing{Lines: make([]Line, len(items))}
	for i, it := range items {
		l.Lines[i] = Line{Item: it, Product: products[i]}
		l.Total += uint64(it.Count) * uint64(products[i].Price)
	}
	return l
}

// Status is a LOMS order's status as far as Checkout cares.
type Status int

// Statuses of an order.
const (
	StatusUnknown Status = iota
	StatusNew
	StatusAwaitingPayment
	StatusFailed
	StatusPayed
	StatusCancelled
)

// Order is a LOMS order made from a cart.
type Order struct {
	ID     int64
	Status Status
}
