package checkout

import (
	"context"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/lomsclient"
)

// Server translates CheckoutService RPCs to cart.Service calls and errors
// to Connect codes. It holds no business logic.
type Server struct {
	carts *cart.Service
	log   *slog.Logger
}

var _ checkoutv1connect.CheckoutServiceHandler = (*Server)(nil)

// NewServer returns the RPC handler for carts.
func NewServer(carts *cart.Service, log *slog.Logger) *Server {
	return &Server{carts: carts, log: log}
}

// AddToCart implements CheckoutService.AddToCart.
func (s *Server) AddToCart(ctx context.Context, req *checkoutv1.AddToCartRequest) (*checkoutv1.AddToCartResponse, error) {
	if err := s.carts.Add(ctx, req.GetUser(), req.GetSku(), req.GetCount()); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &checkoutv1.AddToCartResponse{}, nil
}

// DeleteFromCart implements CheckoutService.DeleteFromCart.
func (s *Server) DeleteFromCart(ctx context.Context, req *checkoutv1.DeleteFromCartRequest) (*checkoutv1.DeleteFromCartResponse, error) {
	if err := s.carts.Remove(ctx, req.GetUser(), req.GetSku(), req.GetCount()); err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &checkoutv1.DeleteFromCartResponse{}, nil
}

// ListCart implements CheckoutService.ListCart.
func (s *Server) ListCart(ctx context.Context, req *checkoutv1.ListCartRequest) (*checkoutv1.ListCartResponse, error) {
	l, err := s.carts.List(ctx, req.GetUser())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	res := &checkoutv1.ListCartResponse{Items: make([]*checkoutv1.CartItem, len(l.Lines)), TotalPrice: l.Total}
	for i, ln := range l.Lines {
		res.Items[i] = &checkoutv1.CartItem{Sku: ln.SKU, Count: ln.Count, Name: ln.Name, Price: ln.Price}
	}
	return res, nil
}

// Purchase implements CheckoutService.Purchase.
func (s *Server) Purchase(ctx context.Context, req *checkoutv1.PurchaseRequest) (*checkoutv1.PurchaseResponse, error) {
	o, err := s.carts.Purchase(ctx, req.GetUser())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &checkoutv1.PurchaseResponse{OrderId: o.ID, Status: lomsclient.Wire(o.Status)}, nil
}

// toConnect maps domain errors to codes. Errors of LOMS and ProductService
// arrive as Connect errors already (see rpcclient) and pass through; the
// rest are database faults.
func (s *Server) toConnect(ctx context.Context, err error) error {
	var invalid *validate.Error
	switch {
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, invalid)
	case errors.Is(err, cart.ErrEmptyCart), errors.Is(err, cart.ErrOutOfStock),
		errors.Is(err, cart.ErrCartFull), errors.Is(err, cart.ErrUnknownProduct):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	return platform.InfraError(ctx, s.log, "database", err)
}
