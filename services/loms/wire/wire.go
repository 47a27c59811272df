// Package wire converts LOMS's domain values to their protobuf messages,
// for the RPC responses and the Kafka events alike.
package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms/order"
)

// Status converts a status for the wire, by name: the proto enum is the
// one source of truth for statuses on the wire and in events, and the
// domain's numbers are its own. An unknown status is UNSPECIFIED.
func Status(s order.Status) lomsv1.OrderStatus {
	switch s {
	case order.StatusNew:
		return lomsv1.OrderStatus_ORDER_STATUS_NEW
	case order.StatusAwaitingPayment:
		return lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT
	case order.StatusFailed:
		return lomsv1.OrderStatus_ORDER_STATUS_FAILED
	case order.StatusPayed:
		return lomsv1.OrderStatus_ORDER_STATUS_PAYED
	case order.StatusCancelled:
		return lomsv1.OrderStatus_ORDER_STATUS_CANCELLED
	}
	return lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
}

// Items converts order items.
func Items(items []order.Item) []*lomsv1.OrderItem {
	out := make([]*lomsv1.OrderItem, len(items))
	for i, it := range items {
		out[i] = &lomsv1.OrderItem{Sku: it.SKU, Count: it.Count}
	}
	return out
}

// Summary converts an order for a page of ListOrders.
func Summary(o *order.Order) *lomsv1.OrderSummary {
	return &lomsv1.OrderSummary{
		OrderId:   o.ID,
		Status:    Status(o.Status),
		Items:     Items(o.Items),
		CreatedAt: timestamppb.New(o.CreatedAt),
		PayBy:     timestamppb.New(o.PayBy),
	}
}

// State converts a watched order's state for WatchOrder.
func State(s order.State) *lomsv1.WatchOrderResponse {
	return &lomsv1.WatchOrderResponse{
		OrderId:   s.ID,
		Status:    Status(s.Status),
		ChangedAt: timestamppb.New(s.ChangedAt),
		PayBy:     timestamppb.New(s.PayBy),
	}
}

// EncodeEvent is the Kafka record value of an event: a
// minizon.loms.v1.OrderEvent in protobuf binary.
func EncodeEvent(e order.Event) ([]byte, error) {
	b, err := proto.Marshal(&lomsv1.OrderEvent{
		EventId:        e.ID.String(),
		OrderId:        e.OrderID,
		User:           e.User,
		Status:         Status(e.Status),
		PreviousStatus: Status(e.Previous),
		OccurredAt:     timestamppb.New(e.OccurredAt),
		Items:          Items(e.Items),
	})
	if err != nil {
		return nil, fmt.Errorf("encode order event: %w", err)
	}
	return b, nil
}
