package loms

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/wire"
)

// Server translates LomsService RPCs to order.Service calls and errors to
// Connect codes. It holds no business logic.
type Server struct {
	orders *order.Service
	log    *slog.Logger
}

var _ lomsv1connect.LomsServiceHandler = (*Server)(nil)

// NewServer returns the RPC handler for orders.
func NewServer(orders *order.Service, log *slog.Logger) *Server {
	return &Server{orders: orders, log: log}
}

// CreateOrder implements LomsService.CreateOrder.
func (s *Server) CreateOrder(ctx context.Context, req *lomsv1.CreateOrderRequest) (*lomsv1.CreateOrderResponse, error) {
	items := make([]order.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = order.Item{SKU: it.GetSku(), Count: it.GetCount()}
	}
	o, err := s.orders.Create(ctx, req.GetUser(), items, req.GetIdempotencyKey())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &lomsv1.CreateOrderResponse{OrderId: o.ID, Status: wire.Status(o.Status)}, nil
}

// ListOrder implements LomsService.ListOrder.
func (s *Server) ListOrder(ctx context.Context, req *lomsv1.ListOrderRequest) (*lomsv1.ListOrderResponse, error) {
	o, err := s.orders.Get(ctx, req.GetOrderId())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &lomsv1.ListOrderResponse{
		Status: wire.Status(o.Status), User: o.User, Items: wire.Items(o.Items),
		CreatedAt: timestamppb.New(o.CreatedAt), PayBy: timestamppb.New(o.PayBy),
	}, nil
}

// ListOrders implements LomsService.ListOrders.
func (s *Server) ListOrders(ctx context.Context, req *lomsv1.ListOrdersRequest) (*lomsv1.ListOrdersResponse, error) {
	page, err := s.orders.ListOrders(ctx, req.GetUser(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	res := &lomsv1.ListOrdersResponse{Orders: make([]*lomsv1.OrderSummary, len(page.Orders)), NextPageToken: page.NextPageToken}
	for i, o := range page.Orders {
		res.Orders[i] = wire.Summary(o)
	}
	return res, nil
}

// OrderPayed implements LomsService.OrderPayed.
func (s *Server) OrderPayed(ctx context.Context, req *lomsv1.OrderPayedRequest) (*lomsv1.OrderPayedResponse, error) {
	if err := s.orders.Pay(ctx, req.GetOrderId()); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &lomsv1.OrderPayedResponse{}, nil
}

// CancelOrder implements LomsService.CancelOrder.
func (s *Server) CancelOrder(ctx context.Context, req *lomsv1.CancelOrderRequest) (*lomsv1.CancelOrderResponse, error) {
	if err := s.orders.Cancel(ctx, req.GetOrderId()); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &lomsv1.CancelOrderResponse{}, nil
}

// Stocks implements LomsService.Stocks.
func (s *Server) Stocks(ctx context.Context, req *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	av, err := s.orders.Stocks(ctx, req.GetSku())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	res := &lomsv1.StocksResponse{Stocks: make([]*lomsv1.Stock, len(av))}
	for i, a := range av {
		res.Stocks[i] = &lomsv1.Stock{WarehouseId: a.Warehouse, Count: a.Count}
	}
	return res, nil
}

// ReceiveStock implements LomsService.ReceiveStock.
func (s *Server) ReceiveStock(ctx context.Context, req *lomsv1.ReceiveStockRequest) (*lomsv1.ReceiveStockResponse, error) {
	items := make([]order.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = order.Item{SKU: it.GetSku(), Count: it.GetCount()}
	}
	if err := s.orders.ReceiveStock(ctx, req.GetWarehouseId(), items, req.GetIdempotencyKey()); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &lomsv1.ReceiveStockResponse{}, nil
}

// toConnect maps domain errors to codes; the rest are infrastructure faults.
func (s *Server) toConnect(ctx context.Context, err error) error {
	var invalid *validate.Error
	var transition *order.TransitionError
	switch {
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, invalid)
	case errors.Is(err, order.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, order.ErrPaymentExpired), errors.As(err, &transition):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return platform.InfraError(ctx, s.log, "database", err)
}
