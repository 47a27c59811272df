package checkout_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/checkout/cart"
)

// fuzzCheckoutDeps stand in for the database, LOMS and ProductService, so
// that the handlers can be fuzzed without them. They keep no state: user 1
// holds 5 units of sku 7 and every other user's cart is empty; every sku
// has 100 units in stock and is in the catalog; LOMS makes order 1,
// awaiting payment, of the cart's items.
type fuzzCheckoutDeps struct{}

func (fuzzCheckoutDeps) cart(user int64) *cart.Cart {
	c := &cart.Cart{User: user}
	if user == 1 {
		c.Items = []cart.Item{{SKU: 7, Count: 5}}
	}
	return c
}

func (d fuzzCheckoutDeps) Items(_ context.Context, user int64) ([]cart.Item, error) {
	return d.cart(user).Items, nil
}

func (d fuzzCheckoutDeps) Update(_ context.Context, user int64, fn func(*cart.Cart) error) error {
	return fn(d.cart(user))
}

func (fuzzCheckoutDeps) Available(context.Context, uint32) (uint64, error) { return 100, nil }

func (fuzzCheckoutDeps) Products(_ context.Context, skus []uint32) ([]cart.Product, error) {
	out := make([]cart.Product, len(skus))
	for i, sku := range skus {
		out[i] = cart.Product{Name: fmt.Sprint("product ", sku), Price: math.MaxUint32}
	}
	return out, nil
}

// fuzzCheckoutLOMS is cart.Orders, whose Items clashes with the
// repository's.
type fuzzCheckoutLOMS struct{}

func (fuzzCheckoutLOMS) Create(context.Context, int64, []cart.Item, string) (cart.Order, error) {
	return cart.Order{ID: 1, Status: cart.StatusAwaitingPayment}, nil
}

func (fuzzCheckoutLOMS) Items(context.Context, int64) ([]cart.Item, error) {
	return []cart.Item{{SKU: 7, Count: 5}}, nil
}

// FuzzCheckoutService sends arbitrary bodies, as binary and as JSON, to
// every CheckoutService RPC through the real handler tree (codecs,
// interceptors, Server, cart.Service, error mapping) over dependencies
// without I/O. No answer is ever Internal or Unknown: a body that does not
// decode is invalid_argument; a decoded request is invalid_argument with a
// message naming the first bad field exactly when the contract rejects it
// (user 0 or less, sku 0, count 0 or above 65535), and otherwise gets the
// documented outcome: AddToCart ok or failed_precondition beyond stock or
// 65535 units, DeleteFromCart and ListCart ok, Purchase ok or
// failed_precondition for an empty cart.
func FuzzCheckoutService(f *testing.F) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := rpctest.NewServer(f, platform.Config{}, log)
	deps := fuzzCheckoutDeps{}
	carts := cart.NewService(deps, deps, fuzzCheckoutLOMS{}, deps)
	path, h := checkoutv1connect.NewCheckoutServiceHandler(checkout.NewServer(carts, log), srv.HandlerOptions()...)
	srv.Mount(checkoutv1connect.CheckoutServiceName, path, h)
	handler := srv.Handler()

	seed := func(rpc uint8, m proto.Message) { f.Add(rpc, rpctest.Marshal(f, m)) }
	for _, r := range [][3]int64{{1, 7, 1}, {1, 7, 95}, {1, 7, 96}, {2, 8, 100}, {2, 8, 65536}, {0, 0, 0}, {-1, 1, math.MaxUint32}, {math.MaxInt64, math.MaxUint32, 1}} {
		seed(0, &checkoutv1.AddToCartRequest{User: r[0], Sku: uint32(r[1]), Count: uint32(r[2])})
		seed(1, &checkoutv1.DeleteFromCartRequest{User: r[0], Sku: uint32(r[1]), Count: uint32(r[2])})
	}
	for _, user := range []int64{1, 2, 0, -1, math.MinInt64} {
		seed(2, &checkoutv1.ListCartRequest{User: user})
		seed(3, &checkoutv1.PurchaseRequest{User: user})
	}
	for _, s := range []string{`{"user":"1","sku":7,"count":2}`, `{"user":1,"sku":7,"count":65535,"x":[]}`, `{"sku":`, `null`, `{"count":-1}`} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(3), []byte(`{"user":"2"}`))

	f.Fuzz(func(t *testing.T, rpc uint8, body []byte) {
		for _, ct := range []string{"application/proto", "application/json"} {
			var (
				procedure string
				msg       proto.Message
				bad       func() string
				outcomes  func() []string
			)
			userBad := func(user int64) string {
				if user <= 0 {
					return "user"
				}
				return ""
			}
			itemBad := func(user int64, sku, count uint32) string {
				switch {
				case user <= 0:
					return "user"
				case sku == 0:
					return "sku"
				case count == 0 || count > 65535:
					return "count"
				}
				return ""
			}
			switch rpc % 4 {
			case 0:
				req := new(checkoutv1.AddToCartRequest)
				procedure, msg = checkoutv1connect.CheckoutServiceAddToCartProcedure, req
				bad = func() string { return itemBad(req.GetUser(), req.GetSku(), req.GetCount()) }
				outcomes = func() []string {
					held := uint64(0)
					if req.GetUser() == 1 && req.GetSku() == 7 {
						held = 5
					}
					if held+uint64(req.GetCount()) > 100 {
						return []string{"failed_precondition"}
					}
					return []string{"ok"}
				}
			case 1:
				req := new(checkoutv1.DeleteFromCartRequest)
				procedure, msg = checkoutv1connect.CheckoutServiceDeleteFromCartProcedure, req
				bad = func() string { return itemBad(req.GetUser(), req.GetSku(), req.GetCount()) }
				outcomes = func() []string { return []string{"ok"} }
			case 2:
				req := new(checkoutv1.ListCartRequest)
				procedure, msg = checkoutv1connect.CheckoutServiceListCartProcedure, req
				bad = func() string { return userBad(req.GetUser()) }
				outcomes = func() []string { return []string{"ok"} }
			case 3:
				req := new(checkoutv1.PurchaseRequest)
				procedure, msg = checkoutv1connect.CheckoutServicePurchaseProcedure, req
				bad = func() string { return userBad(req.GetUser()) }
				outcomes = func() []string {
					if req.GetUser() == 1 {
						return []string{"ok"}
					}
					return []string{"failed_precondition"}
				}
			}
			code, message := rpctest.PostConnect(t, handler, procedure, ct, body)
			if code == "internal" || code == "unknown" {
				t.Fatalf("%s %s: %s: %s", procedure, ct, code, message)
			}
			decoded := rpctest.DecodeAs(ct, body, msg)
			switch field := bad(); {
			case !decoded:
				if code != "invalid_argument" {
					t.Fatalf("%s %s: undecodable body answered %s: %s", procedure, ct, code, message)
				}
			case field != "":
				if code != "invalid_argument" || !strings.HasPrefix(message, field+": ") {
					t.Fatalf("%s %s: request bad in %s answered %s: %s", procedure, ct, field, code, message)
				}
			case !slices.Contains(outcomes(), code):
				t.Fatalf("%s %s: valid request answered %s: %s, want one of %v", procedure, ct, code, message, outcomes())
			}
		}
	})
}
