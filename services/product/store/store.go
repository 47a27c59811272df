// Package store keeps ProductService's catalog in Postgres. sqlc rows never
// leave this package.
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/product/catalog"
	"github.com/minizon/minizon/services/product/store/internal/db"
)

// chunkSize is how many products one statement writes: large enough that
// round trips do not dominate a million-row import, small enough to keep
// each statement's parameters a few hundred kilobytes.
const chunkSize = 5000

// Store is the Postgres implementation of catalog.Repository, plus the
// bulk writes of imports and seeding.
type Store struct {
	pool *pgxpool.Pool
}

var _ catalog.Repository = (*Store)(nil)

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// inTx runs fn in a transaction, committed if fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// A no-op once committed; after a failure the error that matters is fn's.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(db.New(tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Get implements catalog.Repository.
func (s *Store) Get(ctx context.Context, sku uint32) (catalog.Product, error) {
	row, err := db.New(s.pool).GetProduct(ctx, int64(sku))
	if errors.Is(err, pgx.ErrNoRows) {
		return catalog.Product{}, catalog.ErrNotFound
	}
	if err != nil {
		return catalog.Product{}, fmt.Errorf("get product: %w", err)
	}
	// The table's checks keep sku and price within uint32.
	return catalog.Product{SKU: uint32(row.Sku), Name: row.Name, Price: uint32(row.Price)}, nil
}

// ListSKUs implements catalog.Repository.
func (s *Store) ListSKUs(ctx context.Context, after uint32, limit int) ([]uint32, error) {
	if limit <= 0 {
		return []uint32{}, nil
	}
	rows, err := db.New(s.pool).ListSkus(ctx, db.ListSkusParams{StartAfterSku: int64(after), MaxSkus: int32(min(limit, 1<<31-1))})
	if err != nil {
		return nil, fmt.Errorf("list skus: %w", err)
	}
	out := make([]uint32, len(rows))
	for i, sku := range rows {
		out[i] = uint32(sku)
	}
	return out, nil
}

// Import stores products in one transaction, adding new skus and updating
// the name and price of known ones, and returns how many it inserted and
// how many it changed; products already stored as given count as neither.
// The skus must be distinct (catalog.ParseCSV guarantees it). If anything
// fails, nothing is stored.
func (s *Store) Import(ctx context.Context, products []catalog.Product) (inserted, updated int64, err error) {
	err = s.inTx(ctx, func(q *db.Queries) error {
		for chunk := range chunks(products) {
			skus, names, prices := columns(chunk)
			n, err := q.UpsertProducts(ctx, db.UpsertProductsParams{Skus: skus, Names: names, Prices: prices})
			if err != nil {
				return fmt.Errorf("upsert products: %w", err)
			}
			inserted += n.Inserted
			updated += n.Updated
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return inserted, updated, nil
}

// SeedMissing adds the products whose skus are not stored yet, in one
// transaction, and returns how many it added; stored products keep their
// name and price.
func (s *Store) SeedMissing(ctx context.Context, products []catalog.Product) (int64, error) {
	var added int64
	err := s.inTx(ctx, func(q *db.Queries) error {
		for chunk := range chunks(products) {
			skus, names, prices := columns(chunk)
			n, err := q.InsertMissingProducts(ctx, db.InsertMissingProductsParams{Skus: skus, Names: names, Prices: prices})
			if err != nil {
				return fmt.Errorf("insert missing products: %w", err)
			}
			added += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return added, nil
}

// chunks yields products sorted by sku in slices of at most chunkSize. The
// sort gives concurrent imports and seeds one global order in which they
// lock rows, so they wait for each other instead of deadlocking.
func chunks(products []catalog.Product) iter.Seq[[]catalog.Product] {
	sorted := slices.SortedFunc(slices.Values(products), func(a, b catalog.Product) int { return cmp.Compare(a.SKU, b.SKU) })
	return slices.Chunk(sorted, chunkSize)
}

func columns(products []catalog.Product) (skus []int64, names []string, prices []int64) {
	skus, names, prices = make([]int64, len(products)), make([]string, len(products)), make([]int64, len(products))
	for i, p := range products {
		skus[i], names[i], prices[i] = int64(p.SKU), p.Name, int64(p.Price)
	}
	return skus, names, prices
}
