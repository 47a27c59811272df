// Package notification is what Notifications tells a user about their
// order: one notification per order event, worded for a person.
package notification

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Status is an order status as LOMS names it in its events.
type Status string

// The statuses an order event can report.
const (
	StatusNew             Status = "new"
	StatusAwaitingPayment Status = "awaiting_payment"
	StatusFailed          Status = "failed"
	StatusPayed           Status = "payed"
	StatusCancelled       Status = "cancelled"
)

// Notification is one message to one user about one order event.
type Notification struct {
	// EventID is the event's id; a notification is sent once per event.
	EventID uuid.UUID
	OrderID int64
	User    int64
	Status  Status
	// Previous is the status before; empty for a new order.
	Previous   Status
	OccurredAt time.Time
}

// ErrInvalid marks an event that cannot become a notification.
var ErrInvalid = errors.New("invalid order event")

// Validate checks what a notification needs, and that it describes an
// event LOMS could have written. What it rejects goes to the dead-letter
// topic; what it lets through must be recordable, or the record would be
// retried forever.
func (n Notification) Validate() error {
	switch {
	case n.EventID == uuid.Nil:
		return fmt.Errorf("%w: event_id missing", ErrInvalid)
	case n.OrderID <= 0:
		return fmt.Errorf("%w: order_id %d is not positive", ErrInvalid, n.OrderID)
	case n.User <= 0:
		return fmt.Errorf("%w: user %d is not positive", ErrInvalid, n.User)
	}
	if _, ok := phrases[n.Status]; !ok {
		return fmt.Errorf("%w: unknown status %q", ErrInvalid, n.Status)
	}
	if _, ok := phrases[n.Previous]; n.Previous != "" && !ok {
		return fmt.Errorf("%w: unknown previous_status %q", ErrInvalid, n.Previous)
	}
	// Protobuf's Timestamp spans years 1 to 9999. A time beyond is no time
	// LOMS wrote, and the store cannot keep all of them: Postgres refuses
	// years before 4713 BC (the record would be retried forever), and the
	// encoding of times after about 294,000 AD overflows and stores a wrong
	// one.
	if y := n.OccurredAt.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: occurred_at %s is outside years 1 to 9999", ErrInvalid, n.OccurredAt.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// phrases say what an order's new status means to its user.
var phrases = map[Status]string{
	StatusNew:             "has been placed",
	StatusAwaitingPayment: "is awaiting payment",
	StatusFailed:          "could not be placed: some items are out of stock",
	StatusPayed:           "is paid",
	StatusCancelled:       "has been cancelled",
}

// Text is the message the user reads, e.g. "Order 42 is awaiting payment".
func (n Notification) Text() string {
	return fmt.Sprintf("Order %d %s", n.OrderID, phrases[n.Status])
}

// ErrRejected marks a delivery the receiver refused for good (a webhook's
// 4xx answer): retrying cannot help, so the notification is recorded as
// failed, with the reason, and the next one goes ahead.
var ErrRejected = errors.New("notification rejected")

// Outcome is what became of one event.
type Outcome int

// Outcomes of Deliver.
const (
	// Sent: the user was notified now.
	Sent Outcome = iota + 1
	// Duplicate: the event was notified about before; nothing was sent.
	Duplicate
	// Failed: the receiver rejected the notification for good.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Duplicate:
		return "duplicate"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Record is a notification as recorded, for reading back.
type Record struct {
	Notification
	Text    string
	Outcome Outcome
	// Failure is the receiver's reason when Outcome is Failed.
	Failure string
}
