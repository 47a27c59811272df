package systest_test

import (
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/checkout/cart"
	cartstore "github.com/minizon/minizon/services/checkout/store"
	"github.com/minizon/minizon/services/loms/order"
	lomsstore "github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/wire"
)

// The cart's two limits through the real handler over every protocol, with
// stock to spare so that only the limit can refuse: cart.MaxItems distinct
// skus (LOMS takes no bigger order) and validate.MaxCount units of one sku.
// Both refusals are failed_precondition, as ARCHITECTURE.md's table says for
// AddToCart beyond what the cart may hold, and leave the cart as it was.
func TestCartLimits(t *testing.T) {
	t.Parallel()
	sys := start(t)
	carts := cartstore.New(sys.cartPool)
	// A sku LOMS holds more of than one cart line may.
	const plentySKU = 4000
	if _, err := lomsstore.New(sys.lomsPool, wire.EncodeEvent, time.Now).SeedStocks(t.Context(),
		[]order.Stock{{SKU: plentySKU, Warehouse: 1, Total: 2 * validate.MaxCount}}); err != nil {
		t.Fatal(err)
	}

	for name, c := range clients(t, sys.checkout) {
		t.Run(name+"/distinct skus", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			user := 100 + users[name]
			// All but one line are put in through the store: a thousand
			// AddToCart calls would test nothing more.
			if err := carts.Update(ctx, user, func(c *cart.Cart) error {
				for i := range cart.MaxItems - 1 {
					c.Items = append(c.Items, cart.Item{SKU: 200_000 + uint32(i), Count: 1})
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			add(t, c, user, 3000, 1) // the last line that fits
			_, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: user, Sku: 1001, Count: 1})
			wantCode(t, err, connect.CodeFailedPrecondition, "already holds 1000 different skus")
			add(t, c, user, 3000, 1) // a line the full cart holds may still grow

			items, err := carts.Items(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != cart.MaxItems || slices.Contains(items, cart.Item{SKU: 1001, Count: 1}) {
				t.Fatalf("the full cart has %d lines, want %d without sku 1001", len(items), cart.MaxItems)
			}
			if !slices.Contains(items, cart.Item{SKU: 3000, Count: 2}) {
				t.Fatal("sku 3000 does not have its 2 units")
			}
		})
		t.Run(name+"/units of one sku", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			user := 200 + users[name]
			add(t, c, user, plentySKU, validate.MaxCount)
			_, err := c.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: user, Sku: plentySKU, Count: 1})
			wantCode(t, err, connect.CodeFailedPrecondition, "would have 65536 units, more than 65535")
			if _, err := c.DeleteFromCart(ctx, &checkoutv1.DeleteFromCartRequest{User: user, Sku: plentySKU, Count: 1}); err != nil {
				t.Fatal(err)
			}
			add(t, c, user, plentySKU, 1) // back to the limit, not over it

			items, err := carts.Items(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if want := []cart.Item{{SKU: plentySKU, Count: validate.MaxCount}}; !slices.Equal(items, want) {
				t.Fatalf("cart %v, want %v", items, want)
			}
		})
	}
}
