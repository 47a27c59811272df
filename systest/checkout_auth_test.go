package systest_test

import (
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
)

const authToken = "s3cret-token-for-tests"

// TestBearerTokenGuardsEveryRPCThatChangesState runs LOMS and Checkout with
// MINIZON_AUTH_TOKENS set, and Checkout configured with LOMS_AUTH_TOKEN:
// reads stay open, every write asks for the token and changes nothing
// without it, and a purchase made with it reaches LOMS.
func TestBearerTokenGuardsEveryRPCThatChangesState(t *testing.T) {
	t.Parallel()
	sys := startWithAuth(t, authToken)
	lomsBase := "http://" + sys.lomsAddr
	for name, anon := range clients(t, sys.checkout) {
		t.Run(name, func(t *testing.T) {
			user := 70 + users[name]
			authed := rpctest.Clients(t, sys.checkout, func(h connect.HTTPClient, base string, opts ...connect.ClientOption) checkoutv1connect.CheckoutServiceClient {
				return checkoutv1connect.NewCheckoutServiceClient(h, base, append(opts,
					connect.WithInterceptors(rpcclient.BearerToken(authToken)))...)
			})[name]
			wrong := rpctest.Clients(t, sys.checkout, func(h connect.HTTPClient, base string, opts ...connect.ClientOption) checkoutv1connect.CheckoutServiceClient {
				return checkoutv1connect.NewCheckoutServiceClient(h, base, append(opts,
					connect.WithInterceptors(rpcclient.BearerToken(authToken+"x")))...)
			})[name]

			for who, c := range map[string]checkoutv1connect.CheckoutServiceClient{"no token": anon, "a wrong token": wrong} {
				_, err := c.AddToCart(t.Context(), &checkoutv1.AddToCartRequest{User: user, Sku: 1001, Count: 1})
				wantUnauthenticated(t, "AddToCart with "+who, err)
				_, err = c.DeleteFromCart(t.Context(), &checkoutv1.DeleteFromCartRequest{User: user, Sku: 1001, Count: 1})
				wantUnauthenticated(t, "DeleteFromCart with "+who, err)
				_, err = c.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
				wantUnauthenticated(t, "Purchase with "+who, err)
				// Reading needs no token.
				if got := list(t, c, user); len(got.GetItems()) != 0 {
					t.Fatalf("%s changed the cart: %s", who, cartString(got))
				}
			}

			add(t, authed, user, 1001, 2)
			if got := cartString(list(t, anon, user)); got != "1001×2 Walnut Desk Lamp @2500; = 5000" {
				t.Fatalf("cart %q", got)
			}
			// Checkout's own call to LOMS carries LOMS_AUTH_TOKEN.
			res, err := authed.Purchase(t.Context(), &checkoutv1.PurchaseRequest{User: user})
			if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("Purchase with the token: %v, %v", res, err)
			}
			id := res.GetOrderId()

			// LOMS: the same rule, over the same protocol.
			lomsAnon := rpctest.Clients(t, lomsBase, lomsv1connect.NewLomsServiceClient)[name]
			lomsAuthed := rpctest.Clients(t, lomsBase, func(h connect.HTTPClient, base string, opts ...connect.ClientOption) lomsv1connect.LomsServiceClient {
				return lomsv1connect.NewLomsServiceClient(h, base, append(opts,
					connect.WithInterceptors(rpcclient.BearerToken(authToken)))...)
			})[name]
			_, err = lomsAnon.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: user,
				Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 1}}})
			wantUnauthenticated(t, "CreateOrder without a token", err)
			_, err = lomsAnon.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id})
			wantUnauthenticated(t, "OrderPayed without a token", err)
			_, err = lomsAnon.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: id})
			wantUnauthenticated(t, "CancelOrder without a token", err)
			got, err := lomsAnon.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: id})
			if err != nil || got.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("ListOrder without a token: %v, %v (the refused calls must change nothing)", got, err)
			}
			if _, err := lomsAnon.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1001}); err != nil {
				t.Fatalf("Stocks without a token: %v", err)
			}
			if _, err := lomsAuthed.OrderPayed(t.Context(), &lomsv1.OrderPayedRequest{OrderId: id}); err != nil {
				t.Fatalf("OrderPayed with the token: %v", err)
			}
		})
	}
	// The token is checked before the body is read: a malformed request
	// without one learns only that it needs one.
	res, err := http.Post(lomsBase+"/minizon.loms.v1.LomsService/CreateOrder", "application/json", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("malformed CreateOrder without a token: %s, WWW-Authenticate %q; want 401 with a challenge",
			res.Status, res.Header.Get("WWW-Authenticate"))
	}
	var orders int
	if err := sys.lomsPool.QueryRow(t.Context(), "SELECT count(*) FROM orders").Scan(&orders); err != nil {
		t.Fatal(err)
	}
	if want := len(users); orders != want {
		t.Fatalf("%d orders in LOMS, want %d: one per protocol, none from a refused call", orders, want)
	}
}

func wantUnauthenticated(t *testing.T, what string, err error) {
	t.Helper()
	if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("%s: %v, want unauthenticated", what, err)
	}
}
