// Package catalog is ProductService's domain: products, the rules for
// reading the catalog, and the validation of an import file. It does no I/O
// of its own; a Repository stores the products.
package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/minizon/minizon/internal/validate"
)

// Product is one catalog entry.
type Product struct {
	// SKU is the stock keeping unit, never 0.
	SKU uint32
	// Name is the display name: trimmed, non-empty, at most MaxNameLen
	// characters.
	Name string
	// Price is the unit price.
	Price uint32
}

// ErrNotFound means the sku is not in the catalog. Repositories return it
// as is; Service wraps it with the sku.
var ErrNotFound = errors.New("not in the catalog")

// Page sizes of ListSKUs.
const (
	// DefaultPage is the page size when the caller asks for 0 skus.
	DefaultPage = 100
	// MaxPage is the largest page a caller may ask for.
	MaxPage = 1000
)

// Repository reads the stored catalog.
type Repository interface {
	// Get returns the product or ErrNotFound.
	Get(ctx context.Context, sku uint32) (Product, error)
	// ListSKUs returns up to limit skus greater than after, ascending.
	ListSKUs(ctx context.Context, after uint32, limit int) ([]uint32, error)
}

// Service answers ProductService's questions.
type Service struct {
	repo Repository
}

// NewService returns a Service over repo.
func NewService(repo Repository) *Service { return &Service{repo: repo} }

// Get returns a product. An unknown sku is an error wrapping ErrNotFound
// whose text is "sku N is not in the catalog", fit for the caller.
func (s *Service) Get(ctx context.Context, sku uint32) (Product, error) {
	if err := validate.SKU("sku", sku); err != nil {
		return Product{}, err
	}
	p, err := s.repo.Get(ctx, sku)
	if errors.Is(err, ErrNotFound) {
		return Product{}, fmt.Errorf("sku %d is %w", sku, err)
	}
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", sku, err)
	}
	return p, nil
}

// ListSKUs returns one page of skus greater than after, ascending: count
// of them (DefaultPage for 0), fewer at the end of the catalog.
func (s *Service) ListSKUs(ctx context.Context, after, count uint32) ([]uint32, error) {
	if count > MaxPage {
		return nil, validate.Errorf("count", "must be at most %d, got %d", MaxPage, count)
	}
	if count == 0 {
		count = DefaultPage
	}
	skus, err := s.repo.ListSKUs(ctx, after, int(count))
	if err != nil {
		return nil, fmt.Errorf("list skus: %w", err)
	}
	return skus, nil
}
