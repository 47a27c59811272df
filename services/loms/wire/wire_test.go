package wire_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/wire"
)

// Every status of the proto enum, the one source of truth, is the wire
// form of exactly one domain status of the same name, and no domain status
// is lost on the wire.
func TestStatusEnumMatchesDomain(t *testing.T) {
	t.Parallel()
	from := map[lomsv1.OrderStatus]order.Status{}
	for s := order.StatusNew; s <= order.StatusCancelled; s++ {
		w := wire.Status(s)
		if prev, ok := from[w]; ok || w == lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
			t.Fatalf("status %s is %s on the wire, as is %s", s, w, prev)
		}
		from[w] = s
	}
	for n, name := range lomsv1.OrderStatus_name {
		w := lomsv1.OrderStatus(n)
		if w == lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
			continue
		}
		s, ok := from[w]
		if !ok || "ORDER_STATUS_"+strings.ToUpper(s.String()) != name {
			t.Errorf("the proto's %s is no domain status's wire form (got %v)", name, s)
		}
	}
	if len(from) != len(lomsv1.OrderStatus_name)-1 {
		t.Errorf("%d domain statuses for the proto's %d", len(from), len(lomsv1.OrderStatus_name)-1)
	}
	if wire.Status(order.StatusUnspecified) != lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED || wire.Status(order.Status(99)) != lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
		t.Fatal("unspecified and unknown statuses must be unspecified on the wire")
	}
}

func TestEncodeEventRoundTrips(t *testing.T) {
	t.Parallel()
	e := order.Event{
		ID: uuid.New(), OrderID: 42, User: 7, Status: order.StatusPayed, Previous: order.StatusAwaitingPayment,
		OccurredAt: time.Date(2026, 11, 26, 1, 2, 3, 4, time.UTC),
		Items:      []order.Item{{SKU: 773297411, Count: 2}, {SKU: 773587830, Count: 65535}},
	}
	b, err := wire.EncodeEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	var got lomsv1.OrderEvent
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.GetEventId() != e.ID.String() || got.GetOrderId() != 42 || got.GetUser() != 7 ||
		got.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_PAYED ||
		got.GetPreviousStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT ||
		!got.GetOccurredAt().AsTime().Equal(e.OccurredAt) || len(got.GetItems()) != 2 ||
		got.GetItems()[1].GetCount() != 65535 || got.GetItems()[0].GetSku() != 773297411 {
		t.Fatalf("decoded %v", &got)
	}
}
