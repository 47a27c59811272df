// Package order holds LOMS's business rules: the order state machine, item
// validation and the planning of reservations across warehouses. It does no
// I/O; Service drives it through a Repository.
package order

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/minizon/minizon/internal/validate"
)

// Status is where an order stands.
type Status int

// The order statuses. The zero value is never stored.
const (
	StatusUnspecified Status = iota
	StatusNew
	StatusAwaitingPayment
	StatusFailed
	StatusPayed
	StatusCancelled
)

var statusNames = [...]string{"unspecified", "new", "awaiting_payment", "failed", "payed", "cancelled"}

// String is the status's name as stored ("awaiting_payment").
func (s Status) String() string {
	if s < 0 || int(s) >= len(statusNames) {
		return fmt.Sprintf("status(%d)", int(s))
	}
	return statusNames[s]
}

// ParseStatus is the inverse of Status.String.
func ParseStatus(s string) (Status, error) {
	if i := slices.Index(statusNames[:], s); i > 0 {
		return Status(i), nil
	}
	return StatusUnspecified, fmt.Errorf("unknown order status %q", s)
}

// Final tells whether no change can follow s.
func (s Status) Final() bool {
	return s == StatusFailed || s == StatusPayed || s == StatusCancelled
}

// Later tells whether s comes after t in every order's life: new, then
// awaiting payment, then a final status. Each order goes through a stage
// at most once, so a later stage is a newer state of the same order.
func (s Status) Later(t Status) bool { return s.stage() > t.stage() }

func (s Status) stage() int {
	switch {
	case s == StatusNew:
		return 1
	case s == StatusAwaitingPayment:
		return 2
	case s.Final():
		return 3
	}
	return 0
}

// State is an order's status at a moment: what a watcher is told.
type State struct {
	ID     int64
	Status Status
	// ChangedAt is when the order entered Status.
	ChangedAt time.Time
	PayBy     time.Time
}

// Limits on one order.
const (
	MaxItems             = 1000
	MaxIdempotencyKeyLen = 128
)

// Domain errors. Transports map them to codes; stores return ErrNotFound.
var (
	// ErrNotFound: no order with that id.
	ErrNotFound = errors.New("order not found")
	// ErrPaymentExpired: the payment window passed; the order was cancelled.
	ErrPaymentExpired = errors.New("payment window has passed; the order was cancelled")
)

// TransitionError is a status change the state machine does not allow.
type TransitionError struct {
	From   Status
	Action string
}

// Error says which action the status forbids.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s an order that is %s", e.Action, e.From)
}

// Item is a number of units of one sku.
type Item struct {
	SKU   uint32
	Count uint32
}

// Change is one status change, which becomes one event.
type Change struct {
	From, To Status
}

// StockEffect is what a status change does to the order's reservations.
type StockEffect int

// The stock effects of a change.
const (
	// KeepStock leaves reservations as they are.
	KeepStock StockEffect = iota
	// ReleaseStock returns reserved units to what can be bought.
	ReleaseStock
	// WriteOffStock ships reserved units: they leave the stock.
	WriteOffStock
)

// StockEffect says what the change does to the order's reservations.
func (c Change) StockEffect() StockEffect {
	if c.From != StatusAwaitingPayment {
		return KeepStock
	}
	switch c.To {
	case StatusCancelled:
		return ReleaseStock
	case StatusPayed:
		return WriteOffStock
	}
	return KeepStock
}

// Order is the aggregate. Its status changes only through its methods, which
// record every change for the outbox.
type Order struct {
	ID        int64
	User      int64
	Status    Status
	Items     []Item
	CreatedAt time.Time
	// PayBy is the end of the payment window.
	PayBy time.Time

	changes []Change
}

// Clone returns a copy of o that changes independently of it.
func (o *Order) Clone() *Order {
	c := *o
	c.Items = slices.Clone(o.Items)
	c.changes = slices.Clone(o.changes)
	return &c
}

// Changes are the status changes made since the order was loaded, in order.
func (o *Order) Changes() []Change { return o.changes }

func (o *Order) setStatus(s Status) {
	o.changes = append(o.changes, Change{From: o.Status, To: s})
	o.Status = s
}

// New starts an order for user with validated items.
func New(user int64, items []Item, now time.Time, paymentTimeout time.Duration) *Order {
	o := &Order{User: user, Items: items, CreatedAt: now, PayBy: now.Add(paymentTimeout)}
	o.setStatus(StatusNew)
	return o
}

// Reserve plans the reservation of the order's items from the locked stock
// rows and moves the order to AWAITING_PAYMENT, or to FAILED with an empty
// plan when any sku is short.
func (o *Order) Reserve(stocks []Stock) ([]Reservation, error) {
	if o.Status != StatusNew {
		return nil, &TransitionError{From: o.Status, Action: "reserve stock for"}
	}
	plan, ok := Plan(o.Items, stocks)
	if !ok {
		o.setStatus(StatusFailed)
		return nil, nil
	}
	o.setStatus(StatusAwaitingPayment)
	return plan, nil
}

// Expired reports whether the payment window has passed at now.
func (o *Order) Expired(now time.Time) bool {
	return o.Status == StatusAwaitingPayment && now.After(o.PayBy)
}

// Pay moves an order awaiting payment to PAYED. It reports whether the
// status changed: paying a PAYED order is a no-op. The caller checks Expired
// first: an expired order is cancelled, not paid.
func (o *Order) Pay() (bool, error) {
	switch o.Status {
	case StatusPayed:
		return false, nil
	case StatusAwaitingPayment:
		o.setStatus(StatusPayed)
		return true, nil
	}
	return false, &TransitionError{From: o.Status, Action: "pay"}
}

// Cancel moves a NEW or AWAITING_PAYMENT order to CANCELLED. It reports
// whether the status changed: cancelling a CANCELLED order is a no-op.
func (o *Order) Cancel() (bool, error) {
	switch o.Status {
	case StatusCancelled:
		return false, nil
	case StatusNew, StatusAwaitingPayment:
		o.setStatus(StatusCancelled)
		return true, nil
	}
	return false, &TransitionError{From: o.Status, Action: "cancel"}
}

// ValidateItems checks the request's items and merges repeated skus, in sku
// order. A sku's total over all its items must stay within one item's
// limit. Field names follow the API ("items[2].count").
func ValidateItems(items []Item) ([]Item, error) {
	if len(items) == 0 {
		return nil, validate.Errorf("items", "must not be empty")
	}
	if len(items) > MaxItems {
		return nil, validate.Errorf("items", "must hold at most %d items, got %d", MaxItems, len(items))
	}
	totals := make(map[uint32]uint32, len(items))
	merged := make([]Item, 0, len(items))
	for i, it := range items {
		// Field paths are built only for an error: every CreateOrder checks
		// every item.
		if err := validate.SKU("sku", it.SKU); err != nil {
			return nil, atItem(i, err)
		}
		if err := validate.Count("count", it.Count); err != nil {
			return nil, atItem(i, err)
		}
		total, seen := totals[it.SKU]
		if total+it.Count > validate.MaxCount {
			return nil, atItem(i, validate.Errorf("count", "sku %d totals %d units over all items; at most %d",
				it.SKU, total+it.Count, validate.MaxCount))
		}
		totals[it.SKU] = total + it.Count
		if !seen {
			merged = append(merged, Item{SKU: it.SKU})
		}
	}
	for i := range merged {
		merged[i].Count = totals[merged[i].SKU]
	}
	slices.SortFunc(merged, func(a, b Item) int { return cmp.Compare(a.SKU, b.SKU) })
	return merged, nil
}

// atItem puts a field error of one item under its path in the request
// ("count" of item 2 becomes "items[2].count").
func atItem(i int, err error) error {
	var ve *validate.Error
	if !errors.As(err, &ve) {
		return err
	}
	return &validate.Error{Field: fmt.Sprintf("items[%d].%s", i, ve.Field), Reason: ve.Reason}
}

// ValidateIdempotencyKey checks the optional CreateOrder key.
func ValidateIdempotencyKey(key string) error {
	if len(key) > MaxIdempotencyKeyLen {
		return validate.Errorf("idempotency_key", "must be at most %d bytes, got %d", MaxIdempotencyKeyLen, len(key))
	}
	// Postgres text cannot hold NUL.
	if strings.ContainsRune(key, 0) {
		return validate.Errorf("idempotency_key", "must not contain NUL characters")
	}
	return nil
}
