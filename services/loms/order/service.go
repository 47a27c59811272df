package order

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/minizon/minizon/internal/validate"
)

// Repository stores orders and stock. Every method is one transaction.
type Repository interface {
	// Create stores the new order o. If the user already has an order with
	// the non-empty idempotency key, it returns that order and stores
	// nothing. Otherwise it locks the stock rows of o's skus in one global
	// order, calls reserve with them, stores the reservations it returns
	// and o with one event per status change.
	Create(ctx context.Context, o *Order, key string, reserve func([]Stock) ([]Reservation, error)) (*Order, error)
	// Get returns the order or ErrNotFound.
	Get(ctx context.Context, id int64) (*Order, error)
	// Update locks the order, calls fn and stores what fn changed: the
	// status, one event per change and each change's stock effect. If fn
	// fails nothing is stored. ErrNotFound for an unknown id.
	Update(ctx context.Context, id int64, fn func(*Order) error) error
	// UpdateExpired locks up to max orders awaiting payment whose window
	// ended before now, skipping orders locked by others, and applies fn to
	// each as Update does. It returns how many it updated.
	UpdateExpired(ctx context.Context, now time.Time, max int, fn func(*Order) error) (int, error)
	// Available lists what can be bought of sku per warehouse, by warehouse.
	Available(ctx context.Context, sku uint32) ([]Availability, error)
	// ListByUser returns up to max of user's orders whose ids are below
	// before, by id descending, with their items.
	ListByUser(ctx context.Context, user, before int64, max int) ([]*Order, error)
	// Receive adds the receipt's units to the total of its warehouse's stock
	// rows, creating the rows of skus the warehouse did not hold, in one
	// transaction that locks the rows in the global order. A receipt whose
	// non-empty key was received before adds nothing.
	Receive(ctx context.Context, r Receipt) error
}

// Event is one status change of an order as it is published.
type Event struct {
	ID         uuid.UUID
	OrderID    int64
	User       int64
	Status     Status
	Previous   Status
	OccurredAt time.Time
	Items      []Item
}

// Events turns the order's changes into events.
func (o *Order) Events(at time.Time) []Event {
	events := make([]Event, len(o.changes))
	for i, c := range o.changes {
		events[i] = Event{
			ID: uuid.New(), OrderID: o.ID, User: o.User, Status: c.To, Previous: c.From,
			OccurredAt: at, Items: o.Items,
		}
	}
	return events
}

// Service runs LOMS's use cases.
type Service struct {
	repo           Repository
	paymentTimeout time.Duration
	now            func() time.Time
}

// NewService returns a Service; now is the clock (time.Now outside tests).
func NewService(repo Repository, paymentTimeout time.Duration, now func() time.Time) *Service {
	return &Service{repo: repo, paymentTimeout: paymentTimeout, now: now}
}

// Create makes an order for user, reserving its items, or returns the
// user's earlier order with the same idempotency key. The order ends in
// AWAITING_PAYMENT or FAILED.
func (s *Service) Create(ctx context.Context, user int64, items []Item, key string) (*Order, error) {
	if err := validate.ID("user", user); err != nil {
		return nil, err
	}
	items, err := ValidateItems(items)
	if err != nil {
		return nil, err
	}
	if err := ValidateIdempotencyKey(key); err != nil {
		return nil, err
	}
	o := New(user, items, s.now(), s.paymentTimeout)
	stored, err := s.repo.Create(ctx, o, key, o.Reserve)
	if err != nil {
		return nil, fmt.Errorf("create order: %w", err)
	}
	return stored, nil
}

// Get returns an order.
func (s *Service) Get(ctx context.Context, id int64) (*Order, error) {
	if err := validate.ID("order_id", id); err != nil {
		return nil, err
	}
	o, err := s.repo.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("order_id %d: %w", id, err)
	}
	return o, nil
}

// Pay marks an order paid. After the payment window the order is cancelled
// instead and ErrPaymentExpired returned.
func (s *Service) Pay(ctx context.Context, id int64) error {
	if err := validate.ID("order_id", id); err != nil {
		return err
	}
	expired := false
	err := s.repo.Update(ctx, id, func(o *Order) error {
		if o.Expired(s.now()) {
			expired = true
			_, err := o.Cancel()
			return err
		}
		_, err := o.Pay()
		return err
	})
	if err != nil {
		return fmt.Errorf("order_id %d: %w", id, err)
	}
	if expired {
		return fmt.Errorf("order_id %d: %w", id, ErrPaymentExpired)
	}
	return nil
}

// Cancel cancels an order and releases its reservations.
func (s *Service) Cancel(ctx context.Context, id int64) error {
	if err := validate.ID("order_id", id); err != nil {
		return err
	}
	if err := s.repo.Update(ctx, id, cancel); err != nil {
		return fmt.Errorf("order_id %d: %w", id, err)
	}
	return nil
}

// CancelExpired cancels up to max orders whose payment window has passed
// and returns how many it cancelled. Any number of callers may run it at
// once: each order is cancelled once.
func (s *Service) CancelExpired(ctx context.Context, max int) (int, error) {
	n, err := s.repo.UpdateExpired(ctx, s.now(), max, cancel)
	if err != nil {
		return n, fmt.Errorf("cancel expired orders: %w", err)
	}
	return n, nil
}

func cancel(o *Order) error {
	_, err := o.Cancel()
	return err
}

// Stocks lists what can be bought of sku per warehouse.
func (s *Service) Stocks(ctx context.Context, sku uint32) ([]Availability, error) {
	if err := validate.SKU("sku", sku); err != nil {
		return nil, err
	}
	av, err := s.repo.Available(ctx, sku)
	if err != nil {
		return nil, fmt.Errorf("stocks of sku %d: %w", sku, err)
	}
	return av, nil
}
