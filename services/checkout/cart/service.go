package cart

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/minizon/minizon/internal/validate"
)

// Repository keeps carts.
type Repository interface {
	// Items returns the user's cart items ordered by sku; none for a user
	// without a cart.
	Items(ctx context.Context, user int64) ([]Item, error)
	// Update loads the user's cart (empty if there is none) under a lock,
	// lets fn change it and saves the result, all in one transaction; an
	// error from fn leaves the cart unchanged and is returned as it is.
	Update(ctx context.Context, user int64, fn func(*Cart) error) error
}

// Stock tells how many units of a sku the warehouses hold together.
type Stock interface {
	Available(ctx context.Context, sku uint32) (uint64, error)
}

// Orders creates and reads LOMS orders.
type Orders interface {
	// Create makes an order; a repeated key returns the first order made
	// with it.
	Create(ctx context.Context, user int64, items []Item, key string) (Order, error)
	// Items returns an order's items.
	Items(ctx context.Context, id int64) ([]Item, error)
}

// Catalog looks products up.
type Catalog interface {
	// Products returns the product of each sku, in the same order; a sku
	// the catalog does not know is an error wrapping ErrUnknownProduct.
	Products(ctx context.Context, skus []uint32) ([]Product, error)
}

// Service carries out Checkout's use cases.
type Service struct {
	carts   Repository
	stock   Stock
	orders  Orders
	catalog Catalog
}

// NewService returns a Service.
func NewService(carts Repository, stock Stock, orders Orders, catalog Catalog) *Service {
	return &Service{carts: carts, stock: stock, orders: orders, catalog: catalog}
}

func validateItem(user int64, sku, count uint32) error {
	return errors.Join(validate.ID("user", user), validate.SKU("sku", sku), validate.Count("count", count))
}

// Add puts count units of sku in the user's cart if the warehouses hold
// what the cart will then hold. Stock is asked before the cart is locked, so
// no transaction waits on LOMS; the check is advisory anyway, as LOMS
// reserves only at purchase.
func (s *Service) Add(ctx context.Context, user int64, sku, count uint32) error {
	if err := validateItem(user, sku, count); err != nil {
		return err
	}
	inStock, err := s.stock.Available(ctx, sku)
	if err != nil {
		return fmt.Errorf("check stock: %w", err)
	}
	return s.carts.Update(ctx, user, func(c *Cart) error { return c.Add(sku, count, inStock) })
}

// Remove takes up to count units of sku out of the user's cart.
func (s *Service) Remove(ctx context.Context, user int64, sku, count uint32) error {
	if err := validateItem(user, sku, count); err != nil {
		return err
	}
	return s.carts.Update(ctx, user, func(c *Cart) error {
		c.Remove(sku, count)
		return nil
	})
}

// List returns the user's cart with every item's name and price.
func (s *Service) List(ctx context.Context, user int64) (Listing, error) {
	if err := validate.ID("user", user); err != nil {
		return Listing{}, err
	}
	items, err := s.carts.Items(ctx, user)
	if err != nil {
		return Listing{}, err
	}
	skus := make([]uint32, len(items))
	for i, it := range items {
		skus[i] = it.SKU
	}
	products, err := s.catalog.Products(ctx, skus)
	if err != nil {
		return Listing{}, fmt.Errorf("look up products: %w", err)
	}
	return NewListing(items, products), nil
}

// settleTimeout bounds the steps of a Purchase after LOMS made the order.
// They run even when the caller has gone away, so that the cart learns the
// outcome instead of keeping a purchase in progress.
const settleTimeout = 10 * time.Second

// Purchase turns the user's cart into a LOMS order.
//
// It is safe to retry and to run concurrently: the first attempt gives the
// cart a purchase key, and every attempt sends LOMS that key until one of
// them learns the outcome, so LOMS makes one order. That attempt, in one
// step, takes the order's items out of the cart (when the order reserved
// them), forgets the key and remembers the order; an attempt after that
// gets the remembered order back until the cart's items change. The order's
// items are read back from LOMS because a retry may carry a cart changed
// since the attempt that made the order.
func (s *Service) Purchase(ctx context.Context, user int64) (Order, error) {
	if err := validate.ID("user", user); err != nil {
		return Order{}, err
	}
	o, again, err := s.purchase(ctx, user)
	if again {
		// The key's order was cancelled before anyone learned of it: its
		// answer was lost and the payment window passed. It is forgotten,
		// and the cart is bought afresh, once.
		o, again, err = s.purchase(ctx, user)
		if again {
			return Order{}, fmt.Errorf("order %d was cancelled before the purchase completed", o.ID)
		}
	}
	return o, err
}

// purchase makes one attempt; again reports that the key's order had been
// cancelled, which the key is now forgotten for.
func (s *Service) purchase(ctx context.Context, user int64) (o Order, again bool, err error) {
	var items []Item
	var key string
	var done *Order
	empty := false
	err = s.carts.Update(ctx, user, func(c *Cart) error {
		switch {
		case c.PurchaseKey == "" && c.LastOrder != nil:
			done = c.LastOrder
		case c.Empty():
			// An order made under a key whose cart was emptied since is
			// left to the payment timeout.
			c.PurchaseKey, empty = "", true
		default:
			if c.PurchaseKey == "" {
				c.PurchaseKey = uuid.NewString()
			}
			items, key = append([]Item(nil), c.Items...), c.PurchaseKey
		}
		return nil
	})
	switch {
	case err != nil:
		return Order{}, false, err
	case done != nil:
		return *done, false, nil
	case empty:
		return Order{}, false, ErrEmptyCart
	}
	if o, err = s.orders.Create(ctx, user, items, key); err != nil {
		return Order{}, false, fmt.Errorf("create order: %w", err)
	}
	placed := o.Status == StatusAwaitingPayment || o.Status == StatusPayed
	if !placed && o.Status != StatusFailed && o.Status != StatusCancelled {
		return Order{}, false, fmt.Errorf("LOMS answered order %d with status %d", o.ID, o.Status)
	}
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	var ordered []Item
	if placed {
		if ordered, err = s.orders.Items(settle, o.ID); err != nil {
			return Order{}, false, fmt.Errorf("read order %d: %w", o.ID, err)
		}
	}
	err = s.carts.Update(settle, user, func(c *Cart) error {
		if c.PurchaseKey != key {
			return nil // another attempt already settled this purchase
		}
		// A FAILED or CANCELLED order holds nothing: the cart stays, and
		// the key goes so that the next Purchase tries again.
		c.PurchaseKey = ""
		if placed {
			for _, it := range ordered {
				c.Remove(it.SKU, it.Count)
			}
			c.LastOrder = &o
		}
		return nil
	})
	if err != nil {
		return Order{}, false, err
	}
	return o, o.Status == StatusCancelled, nil
}
