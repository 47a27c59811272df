package product_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/services/product"
	"github.com/minizon/minizon/services/product/catalog"
)

// fuzzCatalog is a catalog.Repository without storage that knows the odd
// skus, so that the handlers can be fuzzed without a database.
type fuzzCatalog struct{}

func (fuzzCatalog) Get(_ context.Context, sku uint32) (catalog.Product, error) {
	if sku%2 == 0 {
		return catalog.Product{}, catalog.ErrNotFound
	}
	return catalog.Product{SKU: sku, Name: fmt.Sprint("product ", sku), Price: sku}, nil
}

func (fuzzCatalog) ListSKUs(_ context.Context, after uint32, limit int) ([]uint32, error) {
	var out []uint32
	for sku := uint64(after) + 1; sku <= math.MaxUint32 && len(out) < limit; sku++ {
		out = append(out, uint32(sku))
	}
	return out, nil
}

// FuzzProductService sends arbitrary bodies, as binary and as JSON, to
// GetProduct and ListSkus through the real handler tree (codecs,
// interceptors, the token check, catalog.Service, error mapping) over a
// catalog without storage. No answer is ever Internal or Unknown: a body
// that does not decode is invalid_argument; a decoded request without one
// of the accepted tokens is unauthenticated, whatever else it holds, with
// one of two fixed messages that never echo the token; with a token, sku 0 and a count
// above 1000 are invalid_argument naming the field, an unknown sku is
// not_found, and the rest is ok.
func FuzzProductService(f *testing.F) {
	const tokenA, tokenB = "token-a-3f9c", "token-b-77e1"
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := rpctest.NewServer(f, platform.Config{}, log)
	path, h := productconnect.NewProductServiceHandler(
		product.NewServer(catalog.NewService(fuzzCatalog{}), []string{tokenA, tokenB}, log), srv.HandlerOptions()...)
	srv.Mount(productconnect.ProductServiceName, path, h)
	handler := srv.Handler()

	seed := func(rpc uint8, m proto.Message) { f.Add(rpc, rpctest.Marshal(f, m)) }
	for _, token := range []string{tokenA, tokenB, "", "token-a-3f9", "token-a-3f9c ", "\x00"} {
		for _, sku := range []uint32{0, 1, 2, 773297411, math.MaxUint32} {
			seed(0, &productpb.GetProductRequest{Token: token, Sku: sku})
		}
		for _, c := range [][2]uint32{{0, 0}, {5, 1000}, {5, 1001}, {math.MaxUint32, 1}} {
			seed(1, &productpb.ListSkusRequest{Token: token, StartAfterSku: c[0], Count: c[1]})
		}
	}
	f.Add(uint8(0), []byte(`{"token":"token-a-3f9c","sku":773297411}`))
	f.Add(uint8(1), []byte(`{"token":"token-b-77e1","startAfterSku":1,"count":1001}`))
	f.Add(uint8(1), []byte(`{"token":"token-b-77e1","count":"x"}`))
	f.Add(uint8(0), []byte(`{"sku":1}`))

	f.Fuzz(func(t *testing.T, rpc uint8, body []byte) {
		for _, ct := range []string{"application/proto", "application/json"} {
			var (
				procedure string
				msg       interface {
					proto.Message
					GetToken() string
				}
				bad     func() string
				outcome func() string
			)
			if rpc%2 == 0 {
				req := new(productpb.GetProductRequest)
				procedure, msg = productconnect.ProductServiceGetProductProcedure, req
				bad = func() string {
					if req.GetSku() == 0 {
						return "sku"
					}
					return ""
				}
				outcome = func() string {
					if req.GetSku()%2 == 0 {
						return "not_found"
					}
					return "ok"
				}
			} else {
				req := new(productpb.ListSkusRequest)
				procedure, msg = productconnect.ProductServiceListSkusProcedure, req
				bad = func() string {
					if req.GetCount() > 1000 {
						return "count"
					}
					return ""
				}
				outcome = func() string { return "ok" }
			}

			code, message := rpctest.PostConnect(t, handler, procedure, ct, body)
			if code == "internal" || code == "unknown" {
				t.Fatalf("%s %s: %s: %s", procedure, ct, code, message)
			}

			decoded := rpctest.DecodeAs(ct, body, msg)
			token := msg.GetToken()
			switch field := bad(); {
			case !decoded:
				if code != "invalid_argument" {
					t.Fatalf("%s %s: undecodable body answered %s: %s", procedure, ct, code, message)
				}
			case token != tokenA && token != tokenB:
				want := "token: not accepted"
				if token == "" {
					want = "token: missing"
				}
				if code != "unauthenticated" || message != want {
					t.Fatalf("%s %s: token %q answered %s: %s; want unauthenticated: %s", procedure, ct, token, code, message, want)
				}
			case field != "":
				if code != "invalid_argument" || !strings.HasPrefix(message, field+": ") {
					t.Fatalf("%s %s: request bad in %s answered %s: %s", procedure, ct, field, code, message)
				}
			case code != outcome():
				t.Fatalf("%s %s: valid request answered %s: %s, want %s", procedure, ct, code, message, outcome())
			}
		}
	})
}
