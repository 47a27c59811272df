package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/lomsclient"
	"github.com/minizon/minizon/services/checkout/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pg.NewPool(t, "checkout", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "checkout")
	})
	return store.New(pool), pool
}

func items(t *testing.T, s *store.Store, user int64) []cart.Item {
	t.Helper()
	got, err := s.Items(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestUpdateKeepsWhatFnMade(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	if got := items(t, s, 7); len(got) != 0 {
		t.Fatalf("new user's cart: %v", got)
	}
	add := func(sku, n uint32) {
		t.Helper()
		if err := s.Update(ctx, 7, func(c *cart.Cart) error { return c.Add(sku, n, 100) }); err != nil {
			t.Fatal(err)
		}
	}
	add(30, 1)
	add(10, 2)
	add(30, 4)
	if got, want := items(t, s, 7), []cart.Item{item(10, 2), item(30, 5)}; !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	if got := items(t, s, 8); len(got) != 0 {
		t.Fatalf("another user's cart: %v", got)
	}

	err := s.Update(ctx, 7, func(c *cart.Cart) error {
		if c.User != 7 || c.PurchaseKey != "" {
			t.Errorf("loaded cart %+v", c)
		}
		c.Remove(10, 2)
		c.Remove(30, 1)
		c.PurchaseKey = "key-1"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := items(t, s, 7), []cart.Item{item(30, 4)}; !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	var key string
	err = s.Update(ctx, 7, func(c *cart.Cart) error {
		key = c.PurchaseKey
		c.Remove(30, 4)
		return nil
	})
	if err != nil || key != "key-1" {
		t.Fatalf("purchase key %q (%v), want key-1", key, err)
	}
	// An empty cart keeps its row while a purchase is in progress ...
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM carts").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d cart rows (%v), want 1", rows, err)
	}
	// ... and loses it with the key.
	if err := s.Update(ctx, 7, func(c *cart.Cart) error { c.PurchaseKey = ""; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM carts").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d cart rows (%v), want 0", rows, err)
	}
}

func TestUpdateErrorChangesNothing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := t.Context()
	if err := s.Update(ctx, 1, func(c *cart.Cart) error { return c.Add(5, 1, 10) }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Update(ctx, 1, func(c *cart.Cart) error {
		c.Remove(5, 1)
		_ = c.Add(6, 3, 10)
		c.PurchaseKey = "k"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v, want fn's error", err)
	}
	if got, want := items(t, s, 1), []cart.Item{item(5, 1)}; !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	if err := s.Update(ctx, 1, func(c *cart.Cart) error {
		if c.PurchaseKey != "" {
			t.Errorf("purchase key %q survived a failed update", c.PurchaseKey)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Concurrent changes of one cart apply one after the other: none is lost
// and the stock check sees every earlier change.
func TestConcurrentUpdatesOfOneCartSerialise(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const workers, inStock = 30, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			errs <- s.Update(context.Background(), 3, func(c *cart.Cart) error { return c.Add(9, 1, inStock) })
		})
	}
	wg.Wait()
	close(errs)
	var ok, refused int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, cart.ErrOutOfStock):
			refused++
		default:
			t.Fatal(err)
		}
	}
	if ok != inStock || refused != workers-inStock {
		t.Fatalf("%d added, %d refused; want %d and %d", ok, refused, inStock, workers-inStock)
	}
	if got := items(t, s, 3); !slices.Equal(got, []cart.Item{item(9, inStock)}) {
		t.Fatalf("items %v", got)
	}
}

func item(sku, count uint32) cart.Item { return cart.Item{SKU: sku, Count: count} }

func TestLastOrderIsKept(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	err := s.Update(ctx, 4, func(c *cart.Cart) error {
		c.LastOrder = &cart.Order{ID: 77, Status: cart.StatusAwaitingPayment}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got *cart.Order
	if err := s.Update(ctx, 4, func(c *cart.Cart) error { got = c.LastOrder; return c.Add(1, 1, 1) }); err != nil {
		t.Fatal(err)
	}
	if got == nil || *got != (cart.Order{ID: 77, Status: cart.StatusAwaitingPayment}) {
		t.Fatalf("last order %v, want 77 awaiting payment", got)
	}
	if err := s.Update(ctx, 4, func(c *cart.Cart) error { got = c.LastOrder; c.Remove(1, 1); return nil }); err != nil {
		t.Fatal(err)
	}
	if got != nil {
		t.Fatalf("last order %v survived a change of the items", got)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM carts").Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("%d cart rows (%v), want none left", rows, err)
	}
}

// The stored status is LOMS's enum number, whatever Checkout's own
// numbering, and every status reads back as itself.
func TestLastOrderStatusIsStoredAsLOMSNumbers(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := t.Context()
	for i, st := range []cart.Status{cart.StatusNew, cart.StatusAwaitingPayment, cart.StatusFailed, cart.StatusPayed, cart.StatusCancelled} {
		user := int64(100 + i)
		if err := s.Update(ctx, user, func(c *cart.Cart) error {
			// A change of the items forgets the last order: add first.
			if err := c.Add(1, 1, 1); err != nil {
				return err
			}
			c.LastOrder = &cart.Order{ID: user, Status: st}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var stored int16
		if err := pool.QueryRow(ctx, "SELECT last_order_status FROM carts WHERE user_id = $1", user).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if want := lomsclient.Wire(st); lomsv1.OrderStatus(stored) != want || want == lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
			t.Errorf("status %v stored as %d, want %s's number", st, stored, want)
		}
		var got *cart.Order
		if err := s.Update(ctx, user, func(c *cart.Cart) error { got = c.LastOrder; return nil }); err != nil {
			t.Fatal(err)
		}
		if got == nil || got.Status != st {
			t.Errorf("status %v read back as %v", st, got)
		}
	}
}
