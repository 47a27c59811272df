// Package lomsclient is Checkout's view of LOMS: stock, order creation and
// order contents, over a generated Connect client.
package lomsclient

import (
	"context"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/services/checkout/cart"
)

// Client implements cart.Stock and cart.Orders.
type Client struct {
	dep *rpcclient.Dependency
	rpc lomsv1connect.LomsServiceClient
}

var (
	_ cart.Stock  = (*Client)(nil)
	_ cart.Orders = (*Client)(nil)
)

// New returns a client of the LOMS that dep points at.
func New(dep *rpcclient.Dependency) *Client {
	return &Client{dep: dep, rpc: lomsv1connect.NewLomsServiceClient(dep.HTTP, dep.BaseURL, dep.Options...)}
}

// Available implements cart.Stock: the units of sku over all warehouses.
func (c *Client) Available(ctx context.Context, sku uint32) (uint64, error) {
	cctx, cancel := c.dep.Context(ctx)
	defer cancel()
	res, err := c.rpc.Stocks(cctx, &lomsv1.StocksRequest{Sku: sku})
	if err != nil {
		return 0, c.dep.Error(ctx, err)
	}
	var n uint64
	for _, s := range res.GetStocks() {
		n += s.GetCount()
	}
	return n, nil
}

// Create implements cart.Orders.
func (c *Client) Create(ctx context.Context, user int64, items []cart.Item, key string) (cart.Order, error) {
	req := &lomsv1.CreateOrderRequest{User: user, IdempotencyKey: key, Items: make([]*lomsv1.OrderItem, len(items))}
	for i, it := range items {
		req.Items[i] = &lomsv1.OrderItem{Sku: it.SKU, Count: it.Count}
	}
	cctx, cancel := c.dep.Context(ctx)
	defer cancel()
	res, err := c.rpc.CreateOrder(cctx, req)
	if err != nil {
		return cart.Order{}, c.dep.Error(ctx, err)
	}
	return cart.Order{ID: res.GetOrderId(), Status: Status(res.GetStatus())}, nil
}

// Items implements cart.Orders.
func (c *Client) Items(ctx context.Context, id int64) ([]cart.Item, error) {
	cctx, cancel := c.dep.Context(ctx)
	defer cancel()
	res, err := c.rpc.ListOrder(cctx, &lomsv1.ListOrderRequest{OrderId: id})
	if err != nil {
		return nil, c.dep.Error(ctx, err)
	}
	out := make([]cart.Item, len(res.GetItems()))
	for i, it := range res.GetItems() {
		out[i] = cart.Item{SKU: it.GetSku(), Count: it.GetCount()}
	}
	return out, nil
}

// Status converts a LOMS status (the proto enum, the source of truth) by
// name, never by number; one Checkout does not know is StatusUnknown.
func Status(s lomsv1.OrderStatus) cart.Status {
	switch s {
	case lomsv1.OrderStatus_ORDER_STATUS_NEW:
		return cart.StatusNew
	case lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT:
		return cart.StatusAwaitingPayment
	case lomsv1.OrderStatus_ORDER_STATUS_FAILED:
		return cart.StatusFailed
	case lomsv1.OrderStatus_ORDER_STATUS_PAYED:
		return cart.StatusPayed
	case lomsv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return cart.StatusCancelled
	}
	return cart.StatusUnknown
}

// Wire converts a status back to LOMS's enum; StatusUnknown is
// UNSPECIFIED.
func Wire(s cart.Status) lomsv1.OrderStatus {
	switch s {
	case cart.StatusNew:
		return lomsv1.OrderStatus_ORDER_STATUS_NEW
	case cart.StatusAwaitingPayment:
		return lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT
	case cart.StatusFailed:
		return lomsv1.OrderStatus_ORDER_STATUS_FAILED
	case cart.StatusPayed:
		return lomsv1.OrderStatus_ORDER_STATUS_PAYED
	case cart.StatusCancelled:
		return lomsv1.OrderStatus_ORDER_STATUS_CANCELLED
	}
	return lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
}
