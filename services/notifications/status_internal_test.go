package notifications

import (
	"strings"
	"testing"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/notifications/notification"
)

// Every status of LOMS's proto enum, the source of truth, is a distinct
// notification status of the same name; UNSPECIFIED and a status from a
// newer LOMS are "", which Validate refuses.
func TestStatusConvertsEveryLOMSStatus(t *testing.T) {
	t.Parallel()
	seen := map[notification.Status]string{}
	for n, name := range lomsv1.OrderStatus_name {
		got := status(lomsv1.OrderStatus(n))
		if n == 0 {
			if got != "" {
				t.Errorf("UNSPECIFIED is %q, want none", got)
			}
			continue
		}
		if want := notification.Status(strings.ToLower(strings.TrimPrefix(name, "ORDER_STATUS_"))); got != want {
			t.Errorf("%s is %q, want %q", name, got, want)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%s and %s are both %q", name, other, got)
		}
		seen[got] = name
	}
	if got := status(lomsv1.OrderStatus(99)); got != "" {
		t.Errorf("a status from a newer LOMS is %q, want none", got)
	}
}
