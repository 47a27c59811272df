package notification_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/minizon/minizon/services/notifications/notification"
)

// FuzzValidate checks Validate against the contract: it accepts exactly
// the notifications with an event id, positive order and user ids, a known
// status, an empty or known previous status and a time inside protobuf's
// Timestamp range; its errors wrap ErrInvalid; and an accepted
// notification's text names the order and says something about it.
func FuzzValidate(f *testing.F) {
	id := []byte("0123456789abcdef")
	f.Add(id, int64(42), int64(7), "awaiting_payment", "new", int64(1795654923), int64(4))
	f.Add(id, int64(1), int64(1), "new", "", int64(0), int64(0))
	f.Add(id, int64(math.MaxInt64), int64(math.MaxInt64), "cancelled", "payed", int64(253402300799), int64(999999999))
	f.Add(id, int64(1), int64(1), "failed", "new", int64(-62135596800), int64(0))
	f.Add(id, int64(1), int64(1), "payed", "awaiting_payment", int64(253402300800), int64(0))
	f.Add(id, int64(1), int64(1), "payed", "awaiting_payment", int64(-62135596801), int64(0))
	f.Add(id, int64(1), int64(1), "new", "6", int64(0), int64(0))
	f.Add(id, int64(1), int64(1), "NEW", "", int64(0), int64(0))
	f.Add(id, int64(1), int64(1), "", "", int64(0), int64(0))
	f.Add(id, int64(0), int64(1), "new", "", int64(0), int64(0))
	f.Add(id, int64(1), int64(-1), "new", "", int64(0), int64(0))
	f.Add([]byte{}, int64(1), int64(1), "new", "", int64(0), int64(0))
	f.Add(id, int64(1), int64(1), "new", "", int64(math.MinInt64), int64(math.MinInt64))
	f.Fuzz(func(t *testing.T, id []byte, orderID, user int64, status, previous string, sec, nsec int64) {
		var eventID uuid.UUID
		copy(eventID[:], id)
		at := time.Unix(sec, nsec)
		n := notification.Notification{
			EventID: eventID, OrderID: orderID, User: user, Status: notification.Status(status),
			Previous: notification.Status(previous), OccurredAt: at,
		}
		known := func(s string) bool {
			switch notification.Status(s) {
			case notification.StatusNew, notification.StatusAwaitingPayment, notification.StatusFailed,
				notification.StatusPayed, notification.StatusCancelled:
				return true
			}
			return false
		}
		valid := eventID != uuid.Nil && orderID > 0 && user > 0 && known(status) &&
			(previous == "" || known(previous)) && timestamppb.New(at).CheckValid() == nil
		err := n.Validate()
		if valid != (err == nil) {
			t.Fatalf("Validate(%+v) = %v, want valid=%v", n, err, valid)
		}
		if err != nil {
			if !errors.Is(err, notification.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		prefix := fmt.Sprintf("Order %d ", orderID)
		if text := n.Text(); !strings.HasPrefix(text, prefix) || len(text) == len(prefix) {
			t.Fatalf("text %q", text)
		}
	})
}
