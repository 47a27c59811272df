package notification_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/minizon/minizon/services/notifications/notification"
)

func valid() notification.Notification {
	return notification.Notification{EventID: uuid.New(), OrderID: 42, User: 7, Status: notification.StatusAwaitingPayment,
		Previous: notification.StatusNew}
}

func TestText(t *testing.T) {
	t.Parallel()
	for status, want := range map[notification.Status]string{
		notification.StatusNew:             "Order 42 has been placed",
		notification.StatusAwaitingPayment: "Order 42 is awaiting payment",
		notification.StatusFailed:          "Order 42 could not be placed: some items are out of stock",
		notification.StatusPayed:           "Order 42 is paid",
		notification.StatusCancelled:       "Order 42 has been cancelled",
	} {
		n := valid()
		n.Status = status
		if got := n.Text(); got != want {
			t.Errorf("%s: Text() = %q, want %q", status, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid notification: %v", err)
	}
	for name, mutate := range map[string]func(*notification.Notification){
		"no event id":    func(n *notification.Notification) { n.EventID = uuid.Nil },
		"no order":       func(n *notification.Notification) { n.OrderID = 0 },
		"negative user":  func(n *notification.Notification) { n.User = -1 },
		"unknown status": func(n *notification.Notification) { n.Status = "shipped" },
		"no status":      func(n *notification.Notification) { n.Status = "" },
	} {
		n := valid()
		mutate(&n)
		if err := n.Validate(); !errors.Is(err, notification.ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
}
