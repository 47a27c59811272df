package loms_test

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
)

// listAll pages through user's orders with pageSize and returns the
// orders and the size of each page.
func listAll(t *testing.T, c lomsv1connect.LomsServiceClient, user int64, pageSize int32) ([]*lomsv1.OrderSummary, []int) {
	t.Helper()
	var orders []*lomsv1.OrderSummary
	var sizes []int
	token := ""
	for range 100 {
		res, err := c.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: user, PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		orders = append(orders, res.GetOrders()...)
		sizes = append(sizes, len(res.GetOrders()))
		if token = res.GetNextPageToken(); token == "" {
			return orders, sizes
		}
	}
	t.Fatal("ListOrders never returned an empty next_page_token")
	return nil, nil
}

// TestListOrdersOverEveryProtocol pages through 45 orders of a user, made
// between other users' orders: 20, 20 and 5, newest first, each order once
// with its status, items and times, and no token after the last page.
func TestListOrdersOverEveryProtocol(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["connect"]
	ctx := t.Context()
	start := time.Now()
	var want []int64
	for i := range 60 {
		user := int64(21)
		if i%4 == 3 {
			user = 22
		}
		// sku 5050 holds 50 units: the later orders fail, and are listed too.
		res, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: user, Items: []*lomsv1.OrderItem{{Sku: 5050, Count: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if user == 21 {
			want = append(want, res.GetOrderId())
		}
	}
	slices.Reverse(want)
	if _, err := c.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: want[44]}); err != nil {
		t.Fatal(err)
	}
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			orders, sizes := listAll(t, c, 21, 20)
			if !slices.Equal(sizes, []int{20, 20, 5}) {
				t.Fatalf("pages of %v orders, want 20, 20, 5", sizes)
			}
			for i, o := range orders {
				if o.GetOrderId() != want[i] {
					t.Fatalf("order %d of the history is %d, want %d (newest first, no gap, no repeat)", i, o.GetOrderId(), want[i])
				}
				created, payBy := o.GetCreatedAt().AsTime(), o.GetPayBy().AsTime()
				if created.Before(start.Add(-time.Second)) || created.After(time.Now()) || payBy.Sub(created) != time.Minute {
					t.Fatalf("order %d: created_at %v, pay_by %v", o.GetOrderId(), created, payBy)
				}
				if len(o.GetItems()) != 1 || o.GetItems()[0].GetSku() != 5050 || o.GetItems()[0].GetCount() != 1 {
					t.Fatalf("order %d: items %v", o.GetOrderId(), o.GetItems())
				}
			}
			if got := orders[0].GetStatus(); got != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
				t.Fatalf("newest order %v, want FAILED", got)
			}
			if got := orders[43].GetStatus(); got != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
				t.Fatalf("second oldest order %v, want AWAITING_PAYMENT", got)
			}
			if got := orders[44].GetStatus(); got != lomsv1.OrderStatus_ORDER_STATUS_CANCELLED {
				t.Fatalf("oldest order %v, want CANCELLED", got)
			}

			res, err := c.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: 21})
			if err != nil || len(res.GetOrders()) != 20 || res.GetNextPageToken() == "" {
				t.Fatalf("page_size 0: %d orders, token %q, %v; want the default 20 and a token", len(res.GetOrders()), res.GetNextPageToken(), err)
			}
			res, err = c.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: 99})
			if err != nil || len(res.GetOrders()) != 0 || res.GetNextPageToken() != "" {
				t.Fatalf("a user without orders: %v, %v; want an empty page", res, err)
			}
			if orders, sizes := listAll(t, c, 21, 100); len(orders) != 45 || len(sizes) != 1 {
				t.Fatalf("page_size 100: pages of %v", sizes)
			}
		})
	}
}

// TestListOrdersRejectsBadRequests: a page size out of range, or a token
// that is forged, altered or another user's, is invalid_argument naming
// the field, over every protocol.
func TestListOrdersRejectsBadRequests(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	ctx := t.Context()
	c := clients(t, e.base)["connect"]
	for range 3 {
		if _, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 5, Items: []*lomsv1.OrderItem{{Sku: 5050, Count: 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.ListOrders(ctx, &lomsv1.ListOrdersRequest{User: 5, PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	token := first.GetNextPageToken()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	tampered := slices.Clone(raw)
	tampered[len(tampered)/2] ^= 0x40
	cases := []struct {
		name  string
		req   *lomsv1.ListOrdersRequest
		field string
	}{
		{"user 0", &lomsv1.ListOrdersRequest{PageSize: 10}, "user"},
		{"page_size 101", &lomsv1.ListOrdersRequest{User: 5, PageSize: 101}, "page_size"},
		{"page_size -1", &lomsv1.ListOrdersRequest{User: 5, PageSize: -1}, "page_size"},
		{"forged token", &lomsv1.ListOrdersRequest{User: 5, PageToken: "eyJ1c2VyIjo1LCJsYXN0IjoyfQ"}, "page_token"},
		{"tampered token", &lomsv1.ListOrdersRequest{User: 5, PageToken: base64.RawURLEncoding.EncodeToString(tampered)}, "page_token"},
		{"another user's token", &lomsv1.ListOrdersRequest{User: 6, PageToken: token}, "page_token"},
		{"token of garbage", &lomsv1.ListOrdersRequest{User: 5, PageToken: strings.Repeat("\x00", 3)}, "page_token"},
	}
	for name, c := range clients(t, e.base) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				_, err := c.ListOrders(t.Context(), tc.req)
				wantCode(t, err, connect.CodeInvalidArgument, tc.field)
			})
		}
		t.Run(name+"/the token itself", func(t *testing.T) {
			res, err := c.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: 5, PageSize: 1, PageToken: token})
			if err != nil || len(res.GetOrders()) != 1 || res.GetOrders()[0].GetOrderId() >= first.GetOrders()[0].GetOrderId() {
				t.Fatalf("second page: %v, %v", res, err)
			}
		})
	}
}

// TestListOrdersAnswersGET: ListOrders has no side effects, so Connect
// clients may page with GET.
func TestListOrdersAnswersGET(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	for range 3 {
		if _, err := clients(t, e.base)["grpc"].CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{
			User: 4, Items: []*lomsv1.OrderItem{{Sku: 1001, Count: 1}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	var methods []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		methods = append(methods, r.Method)
		return http.DefaultTransport.RoundTrip(r)
	})
	c := lomsv1connect.NewLomsServiceClient(&http.Client{Transport: rt}, e.base, connect.WithHTTPGet())
	orders, sizes := listAll(t, c, 4, 2)
	if len(orders) != 3 || !slices.Equal(sizes, []int{2, 1}) {
		t.Fatalf("pages of %v", sizes)
	}
	_, err := c.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: 4, PageSize: 101})
	wantCode(t, err, connect.CodeInvalidArgument, "page_size")
	if len(methods) != 3 || slices.ContainsFunc(methods, func(m string) bool { return m != http.MethodGet }) {
		t.Fatalf("methods %v, want three GETs", methods)
	}
}

// TestListOrderReturnsCreatedAtAndPayBy: the creation time and the end of
// the payment window, a payment timeout apart.
func TestListOrderReturnsCreatedAtAndPayBy(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, 3*time.Minute)
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			res, err := c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: 3, Items: []*lomsv1.OrderItem{{Sku: 5050, Count: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			o, err := c.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: res.GetOrderId()})
			if err != nil {
				t.Fatal(err)
			}
			created, payBy := o.GetCreatedAt().AsTime(), o.GetPayBy().AsTime()
			if created.Before(before.Truncate(time.Microsecond)) || created.After(after) || payBy.Sub(created) != 3*time.Minute {
				t.Fatalf("created_at %v, pay_by %v; want a time between %v and %v, and 3m after it", created, payBy, before, after)
			}
		})
	}
}

// TestReceiveStockOverEveryProtocol: units add to existing rows and new
// skus get rows; a repeated key adds nothing; duplicate skus are merged.
func TestReceiveStockOverEveryProtocol(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	// A new sku of its own per protocol.
	newSKU := map[string]uint32{"connect": 9001, "grpc": 9002, "grpcweb": 9003}
	for name, c := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			sku := newSKU[name]
			req := &lomsv1.ReceiveStockRequest{WarehouseId: 2, IdempotencyKey: "truck-" + name, Items: []*lomsv1.StockItem{
				{Sku: 1001, Count: 3}, {Sku: sku, Count: 4}, {Sku: sku, Count: 6},
			}}
			before := stocks(t, c, 1001)
			for range 2 {
				if _, err := c.ReceiveStock(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			if got := stocks(t, c, 1001); got[2] != before[2]+3 || got[1] != before[1] {
				t.Fatalf("sku 1001: %v -> %v, want 3 more in warehouse 2 only", before, got)
			}
			if got := stocks(t, c, sku); len(got) != 1 || got[2] != 10 {
				t.Fatalf("new sku %d: %v, want 10 in warehouse 2", sku, got)
			}
			// Without a key every call counts.
			req.IdempotencyKey = ""
			req.Items = req.Items[1:2]
			for range 2 {
				if _, err := c.ReceiveStock(ctx, req); err != nil {
					t.Fatal(err)
				}
			}
			if got := stocks(t, c, sku); got[2] != 18 {
				t.Fatalf("new sku %d: %v, want 18 in warehouse 2", sku, got)
			}
		})
	}
}

// TestReceiveStockValidationWritesNothing: every rejected delivery is
// invalid_argument naming the field, and writes no row and no key.
func TestReceiveStockValidationWritesNothing(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	items := func(skuCounts ...uint32) []*lomsv1.StockItem {
		var out []*lomsv1.StockItem
		for i := 0; i+1 < len(skuCounts); i += 2 {
			out = append(out, &lomsv1.StockItem{Sku: skuCounts[i], Count: skuCounts[i+1]})
		}
		return out
	}
	tooMany := make([]*lomsv1.StockItem, 1001)
	for i := range tooMany {
		tooMany[i] = &lomsv1.StockItem{Sku: uint32(i + 1), Count: 1}
	}
	cases := []struct {
		name  string
		req   *lomsv1.ReceiveStockRequest
		field string
	}{
		{"warehouse 0", &lomsv1.ReceiveStockRequest{Items: items(1001, 1)}, "warehouse_id"},
		{"negative warehouse", &lomsv1.ReceiveStockRequest{WarehouseId: -2, Items: items(1001, 1)}, "warehouse_id"},
		{"no items", &lomsv1.ReceiveStockRequest{WarehouseId: 1}, "items"},
		{"1001 items", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: tooMany}, "items"},
		{"sku 0", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 1, 0, 1)}, "items[1].sku"},
		{"count 0", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 1, 1002, 0)}, "items[1].count"},
		{"count 65536", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 65536)}, "items[0].count"},
		{"merged total 65536", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 1, 2002, 65535, 2002, 1)}, "items[2].count"},
		{"key of 129 bytes", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 1), IdempotencyKey: strings.Repeat("k", 129)}, "idempotency_key"},
		{"key with NUL", &lomsv1.ReceiveStockRequest{WarehouseId: 1, Items: items(1001, 1), IdempotencyKey: "a\x00b"}, "idempotency_key"},
	}
	for name, c := range clients(t, e.base) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				_, err := c.ReceiveStock(t.Context(), tc.req)
				wantCode(t, err, connect.CodeInvalidArgument, tc.field)
			})
		}
	}
	var rows, total, receipts int64
	if err := e.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM stocks), (SELECT sum(total) FROM stocks)::bigint,
		(SELECT count(*) FROM stock_receipts)`).Scan(&rows, &total, &receipts); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || total != 61 || receipts != 0 {
		t.Fatalf("bad deliveries wrote: %d stock rows (want 5), %d units (want 61), %d receipts", rows, total, receipts)
	}
}

// TestFailedOrderSucceedsAfterReceiveStock: an order that FAILED for want
// of stock is AWAITING_PAYMENT when placed again after a delivery.
func TestFailedOrderSucceedsAfterReceiveStock(t *testing.T) {
	t.Parallel()
	e := startLOMS(t, time.Minute)
	c := clients(t, e.base)["grpc"]
	ctx := t.Context()
	items := []*lomsv1.OrderItem{{Sku: 2002, Count: 3}, {Sku: 1001, Count: 1}}
	res, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 8, Items: items, IdempotencyKey: "cart-8-v1"})
	if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("first attempt: %v, %v; want FAILED (sku 2002 holds 1 unit)", res, err)
	}
	if _, err := c.ReceiveStock(ctx, &lomsv1.ReceiveStockRequest{WarehouseId: 1, IdempotencyKey: "truck-1",
		Items: []*lomsv1.StockItem{{Sku: 2002, Count: 2}}}); err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 8, Items: items, IdempotencyKey: "cart-8-v2"})
	if err != nil || again.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		t.Fatalf("after the delivery: %v, %v; want AWAITING_PAYMENT", again, err)
	}
	if got := stocks(t, c, 2002); len(got) != 0 {
		t.Fatalf("sku 2002 left: %v, want none", got)
	}
	listed, err := c.ListOrders(ctx, &lomsv1.ListOrdersRequest{User: 8})
	if err != nil || len(listed.GetOrders()) != 2 ||
		listed.GetOrders()[0].GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT ||
		listed.GetOrders()[1].GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_FAILED {
		t.Fatalf("history %v, %v; want the new order, then the failed one", listed, err)
	}
}

// TestReceiveStockNeedsTheBearerToken: with MINIZON_AUTH_TOKENS set,
// ReceiveStock changes state and needs a token; ListOrders is a read and
// stays open.
func TestReceiveStockNeedsTheBearerToken(t *testing.T) {
	t.Parallel()
	const token = "receive-stock-test-token"
	e := startLOMSWith(t, time.Minute, platform.Config{MaxBodyBytes: maxBody, ShutdownTimeout: 5 * time.Second, AuthTokens: []string{token}})
	authed := rpctest.Clients(t, e.base, func(h connect.HTTPClient, base string, opts ...connect.ClientOption) lomsv1connect.LomsServiceClient {
		return lomsv1connect.NewLomsServiceClient(h, base, append(opts, connect.WithInterceptors(rpcclient.BearerToken(token)))...)
	})
	for name, anon := range clients(t, e.base) {
		t.Run(name, func(t *testing.T) {
			req := &lomsv1.ReceiveStockRequest{WarehouseId: 3, Items: []*lomsv1.StockItem{{Sku: 2002, Count: 1}}}
			_, err := anon.ReceiveStock(t.Context(), req)
			if connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("ReceiveStock without a token: %v, want unauthenticated", err)
			}
			if _, err := anon.ListOrders(t.Context(), &lomsv1.ListOrdersRequest{User: 1}); err != nil {
				t.Fatalf("ListOrders without a token: %v", err)
			}
			if _, err := authed[name].ReceiveStock(t.Context(), req); err != nil {
				t.Fatalf("ReceiveStock with the token: %v", err)
			}
		})
	}
	if got := stocks(t, clients(t, e.base)["connect"], 2002); got[3] != 4 {
		t.Fatalf("sku 2002 in warehouse 3: %v, want 1 + 3 deliveries with the token", got)
	}
}
