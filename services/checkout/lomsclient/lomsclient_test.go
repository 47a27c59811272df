package lomsclient_test

import (
	"strings"
	"testing"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/lomsclient"
)

// Every status of LOMS's proto enum, the source of truth, converts to a
// distinct Checkout status and back; UNSPECIFIED and a status from a newer
// LOMS are StatusUnknown, which goes back as UNSPECIFIED.
func TestStatusConvertsEveryLOMSStatusBothWays(t *testing.T) {
	t.Parallel()
	seen := map[cart.Status]string{}
	for n, name := range lomsv1.OrderStatus_name {
		w := lomsv1.OrderStatus(n)
		s := lomsclient.Status(w)
		if w == lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
			if s != cart.StatusUnknown {
				t.Errorf("UNSPECIFIED is %v, want StatusUnknown", s)
			}
			continue
		}
		if s == cart.StatusUnknown {
			t.Errorf("%s is unknown to Checkout", name)
		}
		if other, ok := seen[s]; ok {
			t.Errorf("%s and %s are both Checkout's %v", name, other, s)
		}
		seen[s] = name
		if back := lomsclient.Wire(s); back != w {
			t.Errorf("%s comes back as %s", name, back)
		}
		if !strings.HasPrefix(name, "ORDER_STATUS_") {
			t.Errorf("odd enum name %s", name)
		}
	}
	if got := lomsclient.Status(lomsv1.OrderStatus(99)); got != cart.StatusUnknown {
		t.Errorf("a status from a newer LOMS is %v, want StatusUnknown", got)
	}
	if got := lomsclient.Wire(cart.StatusUnknown); got != lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
		t.Errorf("StatusUnknown goes to LOMS as %s", got)
	}
}
