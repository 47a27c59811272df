package cart_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/checkout/cart"
)

func TestAdd(t *testing.T) {
	t.Parallel()
	full := &cart.Cart{}
	for i := range cart.MaxItems {
		full.Items = append(full.Items, cart.Item{SKU: uint32(i + 1), Count: 1})
	}
	tests := []struct {
		name    string
		items   []cart.Item
		sku     uint32
		count   uint32
		inStock uint64
		want    []cart.Item
		wantErr error
	}{
		{"new sku goes in sku order", []cart.Item{item(1, 1), item(9, 1)}, 5, 2, 2, []cart.Item{item(1, 1), item(5, 2), item(9, 1)}, nil},
		{"existing sku adds up", []cart.Item{item(5, 2)}, 5, 3, 5, []cart.Item{item(5, 5)}, nil},
		{"what the cart would hold is checked", []cart.Item{item(5, 2)}, 5, 3, 4, []cart.Item{item(5, 2)}, cart.ErrOutOfStock},
		{"no stock at all", nil, 5, 1, 0, nil, cart.ErrOutOfStock},
		{"more than a count can be", []cart.Item{item(5, validate.MaxCount)}, 5, 1, math.MaxUint64, []cart.Item{item(5, validate.MaxCount)}, cart.ErrCartFull},
		{"full cart refuses a new sku", full.Items, cart.MaxItems + 1, 1, 10, nil, cart.ErrCartFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &cart.Cart{Items: slices.Clone(tt.items)}
			err := c.Add(tt.sku, tt.count, tt.inStock)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Add: %v, want %v", err, tt.wantErr)
			}
			if tt.want != nil && !slices.Equal(c.Items, tt.want) {
				t.Fatalf("items %v, want %v", c.Items, tt.want)
			}
			if err != nil && !slices.Equal(c.Items, tt.items) {
				t.Fatalf("a refused Add changed the cart: %v", c.Items)
			}
		})
	}
}

func TestAddToFullCartKeepsCountOfHeldSku(t *testing.T) {
	t.Parallel()
	c := &cart.Cart{}
	for i := range cart.MaxItems {
		if err := c.Add(uint32(i+1), 1, 10); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(7, 2, 10); err != nil || c.Count(7) != 3 {
		t.Fatalf("Add to held sku in full cart: %v, count %d", err, c.Count(7))
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sku   uint32
		count uint32
		want  []cart.Item
	}{
		{"some units", 5, 1, []cart.Item{item(1, 1), item(5, 2)}},
		{"all units", 5, 3, []cart.Item{item(1, 1)}},
		{"more than held", 5, 100, []cart.Item{item(1, 1)}},
		{"absent sku is a no-op", 4, 1, []cart.Item{item(1, 1), item(5, 3)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &cart.Cart{Items: []cart.Item{item(1, 1), item(5, 3)}}
			c.Remove(tt.sku, tt.count)
			if !slices.Equal(c.Items, tt.want) {
				t.Fatalf("items %v, want %v", c.Items, tt.want)
			}
		})
	}
}

func TestListingTotalDoesNotOverflow(t *testing.T) {
	t.Parallel()
	items := []cart.Item{item(1, validate.MaxCount), item(2, 2)}
	l := cart.NewListing(items, []cart.Product{{Name: "a", Price: math.MaxUint32}, {Name: "b", Price: 10}})
	want := uint64(validate.MaxCount)*math.MaxUint32 + 20
	if l.Total != want {
		t.Fatalf("total %d, want %d", l.Total, want)
	}
	if l.Lines[1].Name != "b" || l.Lines[1].Count != 2 || l.Lines[1].Price != 10 {
		t.Fatalf("line %+v", l.Lines[1])
	}
}

func item(sku, count uint32) cart.Item { return cart.Item{SKU: sku, Count: count} }

// The last order is forgotten when, and only when, the items change.
func TestChangesForgetTheLastOrder(t *testing.T) {
	t.Parallel()
	last := &cart.Order{ID: 9, Status: cart.StatusAwaitingPayment}
	c := &cart.Cart{Items: []cart.Item{item(5, 2)}, LastOrder: last}
	c.Remove(6, 1)
	if err := c.Add(5, 100, 10); err == nil {
		t.Fatal("Add beyond stock succeeded")
	}
	if c.LastOrder != last {
		t.Fatal("a no-op or refused change forgot the last order")
	}
	c.Remove(5, 1)
	if c.LastOrder != nil {
		t.Fatal("Remove kept the last order")
	}
	c.LastOrder = last
	if err := c.Add(7, 1, 10); err != nil || c.LastOrder != nil {
		t.Fatalf("Add: %v, last order %v", err, c.LastOrder)
	}
}
