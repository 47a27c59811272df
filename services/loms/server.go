package loms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/watch"
	"github.com/minizon/minizon/services/loms/wire"
)

// Server translates LomsService RPCs to order.Service calls and errors to
// Connect codes. It holds no business logic.
type Server struct {
	orders   *order.Service
	watchers *watch.Hub
	log      *slog.Logger
}

var _ lomsv1connect.LomsServiceHandler = (*Server)(nil)

// NewServer returns the RPC handler for orders, whose watchers are held by
// watchers.
func NewServer(orders *order.Service, watchers *watch.Hub, log *slog.Logger) *Server {
	return &Server{orders: orders, watchers: watchers, log: log}
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

// WatchOrder implements LomsService.WatchOrder.
func (s *Server) WatchOrder(ctx context.Context, req *lomsv1.WatchOrderRequest, stream *connect.ServerStream[lomsv1.WatchOrderResponse]) error {
	w, err := s.watchers.Watch(ctx, req.GetOrderId())
	if err != nil {
		return s.watchError(ctx, err)
	}
	defer w.Close()
	for {
		st, err := w.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return s.watchError(ctx, err)
		}
		if err := stream.Send(wire.State(st)); err != nil {
			// The client went away; nobody reads a code now.
			return err
		}
	}
}

// watchError maps what ends a watch: the server's limits and the hub's end
// tell the client where it stands. A context's end is left as it is: the
// platform codes it by its cause (the caller's deadline or leaving, or
// unavailable when the server's shutdown ended the stream).
func (s *Server) watchError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return err
	case errors.Is(err, watch.ErrTooManyWatchers):
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("%w; watch again later or on another replica", err))
	case errors.Is(err, watch.ErrStopped):
		return connect.NewError(connect.CodeUnavailable, errors.New("the server is shutting down; watch again"))
	}
	return s.toConnect(ctx, err)
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
