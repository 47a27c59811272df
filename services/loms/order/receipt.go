package order

import (
	"context"
	"fmt"

	"github.com/minizon/minizon/internal/validate"
)

// Receipt is a delivery of units to one warehouse's stock.
type Receipt struct {
	Warehouse int64
	// Items are merged: one per sku, in sku order, each 1 to 65535 units.
	Items []Item
	// Key, when not empty, makes the delivery count once however often it
	// is received.
	Key string
}

// NewReceipt validates a delivery of items to warehouse under the same
// rules as an order's items (1 to 1000 items, a sku's total at most
// 65535) and merges repeated skus. Field names follow the API.
func NewReceipt(warehouse int64, items []Item, key string) (Receipt, error) {
	if err := validate.ID("warehouse_id", warehouse); err != nil {
		return Receipt{}, err
	}
	merged, err := ValidateItems(items)
	if err != nil {
		return Receipt{}, err
	}
	if err := ValidateIdempotencyKey(key); err != nil {
		return Receipt{}, err
	}
	return Receipt{Warehouse: warehouse, Items: merged, Key: key}, nil
}

// ReceiveStock adds a delivery's units to its warehouse's stock. A repeated
// idempotency key adds nothing and is no error.
func (s *Service) ReceiveStock(ctx context.Context, warehouse int64, items []Item, key string) error {
	r, err := NewReceipt(warehouse, items, key)
	if err != nil {
		return err
	}
	if err := s.repo.Receive(ctx, r); err != nil {
		return fmt.Errorf("receive stock in warehouse %d: %w", warehouse, err)
	}
	return nil
}
