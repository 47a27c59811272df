package loms_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/loms/order"
)

// fuzzOrders is an order.Repository without storage, so that the handlers
// can be fuzzed without a database. Its answers follow from the request:
// stock covers every order; Get knows the odd ids; Update knows the ids
// not divisible by 7, with a status and payment window that follow from
// the id.
type fuzzOrders struct{}

func (fuzzOrders) Create(_ context.Context, o *order.Order, _ string, reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	stocks := make([]order.Stock, len(o.Items))
	for i, it := range o.Items {
		stocks[i] = order.Stock{SKU: it.SKU, Warehouse: 1, Total: uint64(it.Count)}
	}
	if _, err := reserve(stocks); err != nil {
		return nil, err
	}
	o.ID = 1
	return o, nil
}

func (fuzzOrders) Get(_ context.Context, id int64) (*order.Order, error) {
	if id%2 == 0 {
		return nil, order.ErrNotFound
	}
	return &order.Order{ID: id, User: 1, Status: order.StatusAwaitingPayment, Items: []order.Item{{SKU: 1, Count: 1}}}, nil
}

func (fuzzOrders) Update(_ context.Context, id int64, fn func(*order.Order) error) error {
	if id%7 == 0 {
		return order.ErrNotFound
	}
	payBy := time.Now().Add(time.Hour)
	if id%3 == 0 {
		payBy = time.Now().Add(-time.Hour)
	}
	return fn(&order.Order{ID: id, User: 1, Status: order.Status(1 + id%5), PayBy: payBy})
}

func (fuzzOrders) UpdateExpired(context.Context, time.Time, int, func(*order.Order) error) (int, error) {
	return 0, nil
}

func (fuzzOrders) Available(_ context.Context, sku uint32) ([]order.Availability, error) {
	return []order.Availability{{Warehouse: 1, Count: uint64(sku)}}, nil
}

// ListByUser: user u has the orders 1 to u%50.
func (fuzzOrders) ListByUser(_ context.Context, user, before int64, max int) ([]*order.Order, error) {
	var out []*order.Order
	for id := min(before-1, user%50); id >= 1 && len(out) < max; id-- {
		out = append(out, &order.Order{ID: id, User: user, Status: order.StatusPayed, Items: []order.Item{{SKU: 1, Count: 1}}})
	}
	return out, nil
}

func (fuzzOrders) Receive(context.Context, order.Receipt) error { return nil }

// fuzzContentTypes are the Connect codecs every fuzzed body is sent with.
var fuzzContentTypes = []string{"application/proto", "application/json"}

// createOrderProblem is the field the contract rejects a CreateOrder
// request on, the first one in request order; "" for a valid request.
func createOrderProblem(req *lomsv1.CreateOrderRequest) string {
	if req.GetUser() <= 0 {
		return "user"
	}
	if n := len(req.GetItems()); n == 0 || n > 1000 {
		return "items"
	}
	totals := map[uint32]uint64{}
	for i, it := range req.GetItems() {
		switch {
		case it.GetSku() == 0:
			return fmt.Sprintf("items[%d].sku", i)
		case it.GetCount() == 0 || it.GetCount() > 65535:
			return fmt.Sprintf("items[%d].count", i)
		}
		if totals[it.GetSku()] += uint64(it.GetCount()); totals[it.GetSku()] > 65535 {
			return fmt.Sprintf("items[%d].count", i)
		}
	}
	if key := req.GetIdempotencyKey(); len(key) > 128 || strings.ContainsRune(key, 0) {
		return "idempotency_key"
	}
	return ""
}

// receiveStockProblem is the field the contract rejects a ReceiveStock
// request on: its items and key follow CreateOrder's rules.
func receiveStockProblem(req *lomsv1.ReceiveStockRequest) string {
	if req.GetWarehouseId() <= 0 {
		return "warehouse_id"
	}
	asOrder := &lomsv1.CreateOrderRequest{User: 1, IdempotencyKey: req.GetIdempotencyKey()}
	for _, it := range req.GetItems() {
		asOrder.Items = append(asOrder.Items, &lomsv1.OrderItem{Sku: it.GetSku(), Count: it.GetCount()})
	}
	return createOrderProblem(asOrder)
}

// FuzzLomsService sends arbitrary bodies, as binary and as JSON, to every
// LomsService RPC through the real handler tree (codecs, interceptors,
// Server, order.Service, error mapping) over a repository without storage.
// No answer is ever Internal or Unknown: a body that does not decode is
// invalid_argument; a decoded request is invalid_argument with a message
// naming the field exactly when the contract rejects it (ids and skus 0 or
// less, bad items, a bad idempotency key, a page size out of range, a page
// token the service did not issue for the user), and otherwise gets one of
// the RPC's documented outcomes.
func FuzzLomsService(f *testing.F) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := rpctest.NewServer(f, platform.Config{}, log)
	path, h := lomsv1connect.NewLomsServiceHandler(loms.NewServer(order.NewService(fuzzOrders{}, time.Minute, time.Now), nil, log), srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	handler := srv.Handler()

	seed := func(rpc uint8, m proto.Message) { f.Add(rpc, rpctest.Marshal(f, m)) }
	for _, req := range []*lomsv1.CreateOrderRequest{
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 773297411, Count: 2}}, IdempotencyKey: "k"},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 5, Count: 65000}, {Sku: 2, Count: 1}, {Sku: 5, Count: 535}}},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 5, Count: 65535}, {Sku: 5, Count: 1}}},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 0, Count: 1}}},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 65536}}},
		{User: 0, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 1}}},
		{User: 1},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 1}}, IdempotencyKey: strings.Repeat("k", 129)},
		{User: 1, Items: []*lomsv1.OrderItem{{Sku: 1, Count: 1}}, IdempotencyKey: "a\x00b"},
	} {
		seed(0, req)
	}
	for _, id := range []int64{1, 2, 3, 7, 15, 0, -1, math.MaxInt64} {
		seed(1, &lomsv1.ListOrderRequest{OrderId: id})
		seed(2, &lomsv1.OrderPayedRequest{OrderId: id})
		seed(3, &lomsv1.CancelOrderRequest{OrderId: id})
	}
	for _, sku := range []uint32{0, 1, math.MaxUint32} {
		seed(4, &lomsv1.StocksRequest{Sku: sku})
	}
	for _, s := range []string{
		`{"user":"1","items":[{"sku":1,"count":2}],"idempotencyKey":"k"}`,
		`{"user":1,"items":[{"sku":1,"count":65536}],"unknown":{}}`,
		`{"user":`, `null`, `[]`, `{"items":[{"sku":"x"}]}`, `{"user":1e3}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(2), []byte(`{"orderId":"15"}`))
	f.Add(uint8(4), []byte(`{"sku":-1}`))
	// A token the service issued, so that valid second pages are fuzzed too.
	svc := order.NewService(fuzzOrders{}, time.Minute, time.Now)
	first, err := svc.ListOrders(f.Context(), 45, 20, "")
	if err != nil || first.NextPageToken == "" {
		f.Fatalf("first page: %v, %v", first, err)
	}
	issued := first.NextPageToken
	for _, req := range []*lomsv1.ListOrdersRequest{
		{User: 45}, {User: 45, PageSize: 20, PageToken: issued}, {User: 46, PageToken: issued},
		{User: 45, PageSize: 101}, {User: 45, PageSize: -1}, {User: 0}, {User: 45, PageToken: "forged"},
	} {
		seed(5, req)
	}
	f.Add(uint8(5), []byte(`{"user":"45","pageSize":20,"pageToken":"`+issued+`"}`))
	for _, req := range []*lomsv1.ReceiveStockRequest{
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 773297411, Count: 100}}, IdempotencyKey: "delivery-1"},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 5, Count: 65535}, {Sku: 5, Count: 1}}},
		{WarehouseId: 0, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}},
		{WarehouseId: 1},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 0, Count: 1}}},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 65536}}},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}, IdempotencyKey: "a\x00b"},
	} {
		seed(6, req)
	}
	f.Add(uint8(6), []byte(`{"warehouseId":"2","items":[{"sku":1,"count":2}]}`))

	f.Fuzz(func(t *testing.T, rpc uint8, body []byte) {
		for _, ct := range fuzzContentTypes {
			var (
				procedure string
				msg       proto.Message
				problem   func() string
				outcomes  func() []string
			)
			switch rpc % 7 {
			case 0:
				req := new(lomsv1.CreateOrderRequest)
				procedure, msg = lomsv1connect.LomsServiceCreateOrderProcedure, req
				problem = func() string { return createOrderProblem(req) }
				outcomes = func() []string { return []string{"ok"} }
			case 1:
				req := new(lomsv1.ListOrderRequest)
				procedure, msg = lomsv1connect.LomsServiceListOrderProcedure, req
				problem = func() string { return idProblem(req.GetOrderId()) }
				outcomes = func() []string {
					if req.GetOrderId()%2 == 0 {
						return []string{"not_found"}
					}
					return []string{"ok"}
				}
			case 2, 3:
				var id func() int64
				if rpc%7 == 2 {
					req := new(lomsv1.OrderPayedRequest)
					procedure, msg, id = lomsv1connect.LomsServiceOrderPayedProcedure, req, req.GetOrderId
				} else {
					req := new(lomsv1.CancelOrderRequest)
					procedure, msg, id = lomsv1connect.LomsServiceCancelOrderProcedure, req, req.GetOrderId
				}
				problem = func() string { return idProblem(id()) }
				outcomes = func() []string { return []string{"ok", "not_found", "failed_precondition"} }
			case 4:
				req := new(lomsv1.StocksRequest)
				procedure, msg = lomsv1connect.LomsServiceStocksProcedure, req
				problem = func() string {
					if req.GetSku() == 0 {
						return "sku"
					}
					return ""
				}
				outcomes = func() []string { return []string{"ok"} }
			case 5:
				req := new(lomsv1.ListOrdersRequest)
				procedure, msg = lomsv1connect.LomsServiceListOrdersProcedure, req
				problem = func() string {
					switch {
					case req.GetUser() <= 0:
						return "user"
					case req.GetPageSize() < 0 || req.GetPageSize() > 100:
						return "page_size"
					case req.GetPageToken() != "" && (req.GetPageToken() != issued || req.GetUser() != 45):
						// A fuzzer cannot forge a token.
						return "page_token"
					}
					return ""
				}
				outcomes = func() []string { return []string{"ok"} }
			case 6:
				req := new(lomsv1.ReceiveStockRequest)
				procedure, msg = lomsv1connect.LomsServiceReceiveStockProcedure, req
				problem = func() string { return receiveStockProblem(req) }
				outcomes = func() []string { return []string{"ok"} }
			}
			code, message := rpctest.PostConnect(t, handler, procedure, ct, body)
			checkOutcome(t, procedure, ct, rpctest.DecodeAs(ct, body, msg), problem, outcomes, code, message)
		}
	})
}

func idProblem(id int64) string {
	if id <= 0 {
		return "order_id"
	}
	return ""
}

// checkOutcome fails unless code and message are what the contract gives
// the request: invalid_argument for a body that did not decode or a
// request with a problem (the message naming the field), one of outcomes
// otherwise.
func checkOutcome(t *testing.T, procedure, ct string, decoded bool, problem func() string, outcomes func() []string, code, message string) {
	t.Helper()
	if code == "internal" || code == "unknown" {
		t.Fatalf("%s %s: %s: %s", procedure, ct, code, message)
	}
	if !decoded {
		if code != "invalid_argument" {
			t.Fatalf("%s %s: undecodable body answered %s: %s", procedure, ct, code, message)
		}
		return
	}
	if field := problem(); field != "" {
		if code != "invalid_argument" || !strings.HasPrefix(message, field+": ") {
			t.Fatalf("%s %s: request bad in %s answered %s: %s", procedure, ct, field, code, message)
		}
		return
	}
	if !slices.Contains(outcomes(), code) {
		t.Fatalf("%s %s: valid request answered %s: %s, want one of %v", procedure, ct, code, message, outcomes())
	}
}
