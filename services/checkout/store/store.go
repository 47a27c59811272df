// Package store keeps Checkout's carts in Postgres. Every method is one
// transaction; sqlc rows never leave this package.
package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/lomsclient"
	"github.com/minizon/minizon/services/checkout/store/internal/db"
)

// Store is the Postgres implementation of cart.Repository.
type Store struct {
	pool *pgxpool.Pool
}

var _ cart.Repository = (*Store)(nil)

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Items implements cart.Repository.
func (s *Store) Items(ctx context.Context, user int64) ([]cart.Item, error) {
	rows, err := db.New(s.pool).ListCartItems(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("list cart items: %w", err)
	}
	return items(rows), nil
}

func items(rows []db.ListCartItemsRow) []cart.Item {
	out := make([]cart.Item, len(rows))
	for i, r := range rows {
		out[i] = cart.Item{SKU: uint32(r.Sku), Count: uint32(r.Count)}
	}
	return out
}

// Update implements cart.Repository: the cart row is locked first, so
// concurrent changes to one cart apply one after the other, and only the
// lines fn changed are written.
func (s *Store) Update(ctx context.Context, user int64, fn func(*cart.Cart) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		q := db.New(tx)
		row, err := q.LockCart(ctx, user)
		if err != nil {
			return fmt.Errorf("lock cart: %w", err)
		}
		rows, err := q.ListCartItems(ctx, user)
		if err != nil {
			return fmt.Errorf("list cart items: %w", err)
		}
		before := items(rows)
		c := &cart.Cart{User: user, Items: append([]cart.Item(nil), before...), PurchaseKey: row.PurchaseKey.String}
		if row.LastOrderID.Valid {
			c.LastOrder = &cart.Order{ID: row.LastOrderID.Int64, Status: statusOf(row.LastOrderStatus.Int16)}
		}
		was := purchase(c)
		if err := fn(c); err != nil {
			return err
		}
		if c.Empty() && c.PurchaseKey == "" && c.LastOrder == nil {
			if err := q.DeleteCart(ctx, user); err != nil {
				return fmt.Errorf("delete cart: %w", err)
			}
			return nil
		}
		if now := purchase(c); now != was {
			if err := q.SetPurchase(ctx, now); err != nil {
				return fmt.Errorf("save purchase state: %w", err)
			}
		}
		return writeChanges(ctx, q, user, before, c.Items)
	})
}

// statusCode is how an order's status is stored: its number in LOMS's
// proto enum, the one source of truth, whatever Checkout's own numbering.
func statusCode(s cart.Status) int16 { return int16(lomsclient.Wire(s)) }

// statusOf reads a stored status.
func statusOf(code int16) cart.Status { return lomsclient.Status(lomsv1.OrderStatus(code)) }

// purchase is the cart's purchase state as stored.
func purchase(c *cart.Cart) db.SetPurchaseParams {
	p := db.SetPurchaseParams{UserID: c.User, PurchaseKey: pgtype.Text{String: c.PurchaseKey, Valid: c.PurchaseKey != ""}}
	if o := c.LastOrder; o != nil {
		p.LastOrderID = pgtype.Int8{Int64: o.ID, Valid: true}
		p.LastOrderStatus = pgtype.Int2{Int16: statusCode(o.Status), Valid: true}
	}
	return p
}

// writeChanges stores the difference between two sorted item lists in at
// most two statements.
func writeChanges(ctx context.Context, q *db.Queries, user int64, before, after []cart.Item) error {
	old := make(map[uint32]uint32, len(before))
	for _, it := range before {
		old[it.SKU] = it.Count
	}
	var up db.UpsertCartItemsParams
	for _, it := range after {
		if n, ok := old[it.SKU]; !ok || n != it.Count {
			up.Skus = append(up.Skus, int64(it.SKU))
			up.Counts = append(up.Counts, int32(it.Count))
		}
		delete(old, it.SKU)
	}
	if len(up.Skus) > 0 {
		up.UserID = user
		if err := q.UpsertCartItems(ctx, up); err != nil {
			return fmt.Errorf("write cart items: %w", err)
		}
	}
	if len(old) > 0 {
		del := db.DeleteCartItemsParams{UserID: user}
		for sku := range old {
			del.Skus = append(del.Skus, int64(sku))
		}
		if err := q.DeleteCartItems(ctx, del); err != nil {
			return fmt.Errorf("delete cart items: %w", err)
		}
	}
	return nil
}
