package product

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"

	"connectrpc.com/connect"

	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/product/catalog"
)

// Server translates ProductService RPCs to catalog.Service calls and errors
// to Connect codes, after checking the caller's token. It holds no business
// logic.
type Server struct {
	products *catalog.Service
	// tokens are the SHA-256 digests of the accepted tokens: comparing
	// fixed-size digests keeps a token's length from showing in timing.
	tokens [][sha256.Size]byte
	log    *slog.Logger
}

var _ productconnect.ProductServiceHandler = (*Server)(nil)

// NewServer returns the RPC handler for products that accepts any of
// tokens.
func NewServer(products *catalog.Service, tokens []string, log *slog.Logger) *Server {
	s := &Server{products: products, log: log, tokens: make([][sha256.Size]byte, len(tokens))}
	for i, t := range tokens {
		s.tokens[i] = sha256.Sum256([]byte(t))
	}
	return s
}

// Token errors. Neither echoes the token: it is a secret, and error texts
// end up in logs.
var (
	errTokenMissing     = errors.New("token: missing")
	errTokenNotAccepted = errors.New("token: not accepted")
)

// authorize checks a request's token against every accepted one in
// constant time, with no early exit, so that timing reveals neither how
// much of a token matched nor which one.
func (s *Server) authorize(token string) error {
	if token == "" {
		return connect.NewError(connect.CodeUnauthenticated, errTokenMissing)
	}
	got := sha256.Sum256([]byte(token))
	ok := 0
	for _, want := range s.tokens {
		ok |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	if ok != 1 {
		return connect.NewError(connect.CodeUnauthenticated, errTokenNotAccepted)
	}
	return nil
}

// GetProduct implements ProductService.GetProduct.
func (s *Server) GetProduct(ctx context.Context, req *productpb.GetProductRequest) (*productpb.GetProductResponse, error) {
	if err := s.authorize(req.GetToken()); err != nil {
		return nil, err
	}
	p, err := s.products.Get(ctx, req.GetSku())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &productpb.GetProductResponse{Name: p.Name, Price: p.Price}, nil
}

// ListSkus implements ProductService.ListSkus.
func (s *Server) ListSkus(ctx context.Context, req *productpb.ListSkusRequest) (*productpb.ListSkusResponse, error) {
	if err := s.authorize(req.GetToken()); err != nil {
		return nil, err
	}
	skus, err := s.products.ListSKUs(ctx, req.GetStartAfterSku(), req.GetCount())
	if err != nil {
		return nil, s.toConnect(ctx, err)
	}
	return &productpb.ListSkusResponse{Skus: skus}, nil
}

// toConnect maps domain errors to codes; the rest are infrastructure faults.
func (s *Server) toConnect(ctx context.Context, err error) error {
	var invalid *validate.Error
	switch {
	case errors.As(err, &invalid):
		return connect.NewError(connect.CodeInvalidArgument, invalid)
	case errors.Is(err, catalog.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	}
	return platform.InfraError(ctx, s.log, "database", err)
}
