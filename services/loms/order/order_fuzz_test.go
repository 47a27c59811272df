package order_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
)

// The limits of the API contract (ARCHITECTURE.md), spelled out rather than
// taken from the package, so that a changed constant fails here.
const (
	contractMaxCount = 65535
	contractMaxItems = 1000
	contractMaxKey   = 128
)

// requestItems converts a CreateOrder request's items as the server does.
func requestItems(req *lomsv1.CreateOrderRequest) []order.Item {
	items := make([]order.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = order.Item{SKU: it.GetSku(), Count: it.GetCount()}
	}
	return items
}

// referenceItems is ValidateItems written from the contract: it returns the
// merged items, or the field of the first problem in request order.
func referenceItems(items []order.Item) ([]order.Item, string) {
	if len(items) == 0 || len(items) > contractMaxItems {
		return nil, "items"
	}
	totals := map[uint32]uint64{}
	for i, it := range items {
		switch {
		case it.SKU == 0:
			return nil, fmt.Sprintf("items[%d].sku", i)
		case it.Count == 0 || it.Count > contractMaxCount:
			return nil, fmt.Sprintf("items[%d].count", i)
		}
		totals[it.SKU] += uint64(it.Count)
		if totals[it.SKU] > contractMaxCount {
			return nil, fmt.Sprintf("items[%d].count", i)
		}
	}
	merged := make([]order.Item, 0, len(totals))
	for sku, n := range totals {
		merged = append(merged, order.Item{SKU: sku, Count: uint32(n)})
	}
	slices.SortFunc(merged, func(a, b order.Item) int { return cmp.Compare(a.SKU, b.SKU) })
	return merged, ""
}

// expectField fails unless err is a *validate.Error on field, the error the
// server maps to InvalidArgument with a message naming the field.
func expectField(t *testing.T, err error, field string) {
	t.Helper()
	var ve *validate.Error
	if !errors.As(err, &ve) {
		t.Fatalf("want a validation error on %s, got %T %v", field, err, err)
	}
	if ve.Field != field || !strings.HasPrefix(err.Error(), field+": ") {
		t.Fatalf("validation error %q, want it on field %s", err, field)
	}
}

// checkMerged fails unless items satisfy the documented limits of a
// validated order: 1 to 1000 items, one per sku in sku order, no sku 0,
// counts from 1 to 65535.
func checkMerged(t *testing.T, items []order.Item) {
	t.Helper()
	if len(items) == 0 || len(items) > contractMaxItems {
		t.Fatalf("%d merged items", len(items))
	}
	for i, it := range items {
		if it.SKU == 0 || it.Count == 0 || it.Count > contractMaxCount {
			t.Fatalf("merged item %d out of limits: %+v", i, it)
		}
		if i > 0 && items[i-1].SKU >= it.SKU {
			t.Fatalf("merged items not in strict sku order at %d: %v", i, items)
		}
	}
}

func createRequest(user int64, key string, skuCounts ...uint32) *lomsv1.CreateOrderRequest {
	req := &lomsv1.CreateOrderRequest{User: user, IdempotencyKey: key}
	for i := 0; i+1 < len(skuCounts); i += 2 {
		req.Items = append(req.Items, &lomsv1.OrderItem{Sku: skuCounts[i], Count: skuCounts[i+1]})
	}
	return req
}

// distinctItems is a request with n items of distinct skus, count 1 each.
func distinctItems(n int) *lomsv1.CreateOrderRequest {
	req := &lomsv1.CreateOrderRequest{User: 1}
	for i := range n {
		req.Items = append(req.Items, &lomsv1.OrderItem{Sku: uint32(i + 1), Count: 1})
	}
	return req
}

// addCreateOrderSeeds adds CreateOrder requests at and around the limits,
// in binary and in JSON; wrap turns a request's bytes into the target's
// arguments.
func addCreateOrderSeeds(f *testing.F, wrap func([]byte) []any) {
	for _, req := range []*lomsv1.CreateOrderRequest{
		createRequest(1, "", 773297411, 2),
		createRequest(7, "cart-7-v1", 5, 65000, 2, 1, 5, 535),                   // merges to 65535
		createRequest(7, "", 5, 65535, 2, 1, 5, 1),                              // merged total 65536
		createRequest(1, "", 1, 1, 0, 1),                                        // sku 0
		createRequest(1, "", 1, 0),                                              // count 0
		createRequest(1, "", 1, 65536),                                          // count above 65535
		createRequest(1, "", math.MaxUint32, math.MaxUint32),                    // count far above
		createRequest(0, "", 1, 1),                                              // no user
		createRequest(-5, "", 1, 1),                                             // negative user
		createRequest(math.MaxInt64, strings.Repeat("k", contractMaxKey), 2, 3), // longest key
		createRequest(1, strings.Repeat("k", contractMaxKey+1), 2, 3),           // key too long
		createRequest(1, "a\x00b", 2, 3),                                        // NUL in key
		{User: 1},                                                               // no items
		distinctItems(contractMaxItems),
		distinctItems(contractMaxItems + 1),
	} {
		f.Add(wrap(rpctest.Marshal(f, req))...)
	}
	for _, js := range []string{
		`{"user":"1","items":[{"sku":1,"count":2}],"idempotency_key":"k"}`,
		`{"user":1,"items":[{"sku":4294967295,"count":65535},{"sku":4294967295,"count":1}]}`,
		`{"user":"9223372036854775807","items":[{"sku":2,"count":65535},{"sku":1}],"extra":true}`,
		`{"items":[{"sku":-1,"count":1}]}`,
		`{}`,
	} {
		f.Add(wrap([]byte(js))...)
	}
}

// FuzzValidateItems decodes CreateOrder requests from raw bytes (binary and
// JSON) and checks ValidateItems against referenceItems: it accepts exactly
// the item lists within the contract's limits, returning the duplicates
// merged with their counts summed in sku order, and otherwise names the
// first offending field. It never changes its argument.
func FuzzValidateItems(f *testing.F) {
	addCreateOrderSeeds(f, func(b []byte) []any { return []any{b} })
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.CreateOrderRequest { return new(lomsv1.CreateOrderRequest) }) {
			items := requestItems(req)
			before := slices.Clone(items)
			got, err := order.ValidateItems(items)
			if !slices.Equal(items, before) {
				t.Fatalf("ValidateItems changed its argument: %v -> %v", before, items)
			}
			want, field := referenceItems(items)
			if field != "" {
				expectField(t, err, field)
				if got != nil {
					t.Fatalf("rejected items came back: %v", got)
				}
				continue
			}
			if err != nil {
				t.Fatalf("items %v rejected: %v", items, err)
			}
			checkMerged(t, got)
			if !slices.Equal(got, want) {
				t.Fatalf("ValidateItems(%v) = %v, want %v", items, got, want)
			}
		}
	})
}

// fuzzRepo is an order.Repository without storage whose answers follow
// from the ids and skus it is asked about, and which records what it was
// asked.
type fuzzRepo struct {
	calls   int
	created *order.Order
	key     string
	plan    []order.Reservation
	id      int64
	sku     uint32
	// status and expired are the state of the order Update handed out.
	status  order.Status
	expired bool
	// user, before and max are what ListByUser was asked.
	user, before int64
	max          int
	receipt      order.Receipt
}

var fuzzNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// Create reserves from stock that covers odd skus exactly and leaves even
// skus one unit short, so an order with an even sku fails.
func (r *fuzzRepo) Create(_ context.Context, o *order.Order, key string, reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	r.calls++
	r.created, r.key = o, key
	var stocks []order.Stock
	for _, it := range o.Items {
		total := uint64(it.Count)
		if it.SKU%2 == 0 {
			total--
		}
		// Split over two warehouses so that a plan may take from both.
		stocks = append(stocks, order.Stock{SKU: it.SKU, Warehouse: 1, Total: total / 2},
			order.Stock{SKU: it.SKU, Warehouse: 2, Total: total - total/2})
	}
	plan, err := reserve(stocks)
	if err != nil {
		return nil, err
	}
	r.plan = plan
	o.ID = 1
	return o, nil
}

// Get knows the odd ids.
func (r *fuzzRepo) Get(_ context.Context, id int64) (*order.Order, error) {
	r.calls++
	r.id = id
	if id%2 == 0 {
		return nil, order.ErrNotFound
	}
	return &order.Order{ID: id, User: 1, Status: order.StatusAwaitingPayment, Items: []order.Item{{SKU: 1, Count: 1}}}, nil
}

// Update knows every id not divisible by 7; the order's status and
// whether its payment window has passed follow from the id.
func (r *fuzzRepo) Update(_ context.Context, id int64, fn func(*order.Order) error) error {
	r.calls++
	r.id = id
	if id%7 == 0 {
		return order.ErrNotFound
	}
	r.status = order.Status(1 + id%5)
	r.expired = id%3 == 0
	payBy := fuzzNow.Add(time.Minute)
	if r.expired {
		payBy = fuzzNow.Add(-time.Minute)
	}
	return fn(&order.Order{ID: id, User: 1, Status: r.status, PayBy: payBy})
}

func (r *fuzzRepo) UpdateExpired(context.Context, time.Time, int, func(*order.Order) error) (int, error) {
	return 0, errors.New("UpdateExpired is no request's")
}

func (r *fuzzRepo) Available(_ context.Context, sku uint32) ([]order.Availability, error) {
	r.calls++
	r.sku = sku
	return []order.Availability{{Warehouse: 1, Count: uint64(sku)}}, nil
}

// fuzzUserOrders is how many orders user has in fuzzRepo: ids 1 to
// user%50.
func fuzzUserOrders(user int64) int64 { return user % 50 }

// ListByUser lists user's orders by id descending, as the store does.
func (r *fuzzRepo) ListByUser(_ context.Context, user, before int64, max int) ([]*order.Order, error) {
	r.calls++
	r.user, r.before, r.max = user, before, max
	var out []*order.Order
	for id := min(before-1, fuzzUserOrders(user)); id >= 1 && len(out) < max; id-- {
		out = append(out, &order.Order{ID: id, User: user, Status: order.StatusPayed})
	}
	return out, nil
}

func (r *fuzzRepo) Receive(_ context.Context, rc order.Receipt) error {
	r.calls++
	r.receipt = rc
	return nil
}

// The LOMS RPCs FuzzServiceRequests picks from. New RPCs go at the end, so
// that the corpus keeps its meaning.
const (
	rpcCreateOrder = iota
	rpcListOrder
	rpcOrderPayed
	rpcCancelOrder
	rpcStocks
	rpcListOrders
	rpcReceiveStock
	lomsRPCs
)

// FuzzServiceRequests decodes each LOMS request from raw bytes (binary and
// JSON) and passes it to the order.Service method its handler calls. A
// request is accepted exactly when it is within the contract (ids > 0,
// sku != 0, valid items, an idempotency key of at most 128 bytes without
// NUL), and then the repository gets exactly the validated values; it is
// otherwise rejected, before the repository is asked, with a
// *validate.Error naming the field. Every error is one the server maps to
// a code other than Internal.
func FuzzServiceRequests(f *testing.F) {
	addCreateOrderSeeds(f, func(b []byte) []any { return []any{uint8(rpcCreateOrder), b} })
	for _, id := range []int64{1, 2, 3, 7, 9, 15, 0, -1, math.MaxInt64, math.MinInt64} {
		f.Add(uint8(rpcListOrder), rpctest.Marshal(f, &lomsv1.ListOrderRequest{OrderId: id}))
		f.Add(uint8(rpcOrderPayed), rpctest.Marshal(f, &lomsv1.OrderPayedRequest{OrderId: id}))
		f.Add(uint8(rpcCancelOrder), rpctest.Marshal(f, &lomsv1.CancelOrderRequest{OrderId: id}))
	}
	for _, sku := range []uint32{0, 1, 773297411, math.MaxUint32} {
		f.Add(uint8(rpcStocks), rpctest.Marshal(f, &lomsv1.StocksRequest{Sku: sku}))
	}
	f.Add(uint8(rpcOrderPayed), []byte(`{"order_id":"15"}`))
	f.Add(uint8(rpcCancelOrder), []byte(`{"orderId":-3}`))
	f.Add(uint8(rpcStocks), []byte(`{"sku":0}`))
	tokens := issuedTokens(f)
	for token, c := range tokens {
		for _, user := range []int64{c.user, c.user + 1} {
			for _, size := range []int32{0, 1, 20} {
				f.Add(uint8(rpcListOrders), rpctest.Marshal(f, &lomsv1.ListOrdersRequest{User: user, PageSize: size, PageToken: token}))
			}
		}
	}
	for _, req := range []*lomsv1.ListOrdersRequest{
		{User: 1}, {User: 49, PageSize: 100}, {User: 49, PageSize: 101}, {User: 7, PageSize: -1},
		{User: 0, PageSize: 5}, {User: math.MaxInt64, PageSize: math.MaxInt32}, {User: 3, PageToken: "AQ"},
	} {
		f.Add(uint8(rpcListOrders), rpctest.Marshal(f, req))
	}
	f.Add(uint8(rpcListOrders), []byte(`{"user":"45","pageSize":20}`))
	for _, req := range []*lomsv1.ReceiveStockRequest{
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 773297411, Count: 100}}, IdempotencyKey: "delivery-1"},
		{WarehouseId: 2, Items: []*lomsv1.StockItem{{Sku: 5, Count: 65000}, {Sku: 2, Count: 1}, {Sku: 5, Count: 535}}},
		{WarehouseId: 2, Items: []*lomsv1.StockItem{{Sku: 5, Count: 65535}, {Sku: 5, Count: 1}}},
		{WarehouseId: 0, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}},
		{WarehouseId: -1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}},
		{WarehouseId: 1},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 0, Count: 1}}},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 0}}},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}, IdempotencyKey: strings.Repeat("k", contractMaxKey+1)},
		{WarehouseId: 1, Items: []*lomsv1.StockItem{{Sku: 1, Count: 1}}, IdempotencyKey: "a\x00b"},
	} {
		f.Add(uint8(rpcReceiveStock), rpctest.Marshal(f, req))
	}
	f.Add(uint8(rpcReceiveStock), []byte(`{"warehouseId":"3","items":[{"sku":1,"count":2}],"idempotencyKey":"k"}`))
	f.Fuzz(func(t *testing.T, rpc uint8, data []byte) {
		ctx := context.Background()
		switch rpc % lomsRPCs {
		case rpcCreateOrder:
			for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.CreateOrderRequest { return new(lomsv1.CreateOrderRequest) }) {
				checkCreate(ctx, t, req)
			}
		case rpcListOrder:
			for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.ListOrderRequest { return new(lomsv1.ListOrderRequest) }) {
				repo := new(fuzzRepo)
				o, err := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow }).Get(ctx, req.GetOrderId())
				if !checkID(t, repo, "order_id", req.GetOrderId(), err) {
					continue
				}
				if notFound := req.GetOrderId()%2 == 0; notFound != errors.Is(err, order.ErrNotFound) || (err == nil) == (o == nil) {
					t.Fatalf("order %d: got %v, %v", req.GetOrderId(), o, err)
				}
			}
		case rpcOrderPayed, rpcCancelOrder:
			pay := rpc%lomsRPCs == rpcOrderPayed
			for _, id := range orderIDs(data, pay) {
				repo := new(fuzzRepo)
				svc := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow })
				var err error
				if pay {
					err = svc.Pay(ctx, id)
				} else {
					err = svc.Cancel(ctx, id)
				}
				if !checkID(t, repo, "order_id", id, err) {
					continue
				}
				if want := wantUpdate(id, repo, pay); !sameKind(err, want) {
					t.Fatalf("pay=%v order %d (%s, expired %v): error %v, want %v", pay, id, repo.status, repo.expired, err, want)
				}
			}
		case rpcStocks:
			for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.StocksRequest { return new(lomsv1.StocksRequest) }) {
				repo := new(fuzzRepo)
				_, err := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow }).Stocks(ctx, req.GetSku())
				if req.GetSku() == 0 {
					expectField(t, err, "sku")
					if repo.calls != 0 {
						t.Fatal("a rejected request reached the repository")
					}
					continue
				}
				if err != nil || repo.calls != 1 || repo.sku != req.GetSku() {
					t.Fatalf("sku %d: error %v, repository asked %d times about %d", req.GetSku(), err, repo.calls, repo.sku)
				}
			}
		case rpcListOrders:
			for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.ListOrdersRequest { return new(lomsv1.ListOrdersRequest) }) {
				checkListOrders(ctx, t, tokens, req)
			}
		case rpcReceiveStock:
			for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.ReceiveStockRequest { return new(lomsv1.ReceiveStockRequest) }) {
				checkReceiveStock(ctx, t, req)
			}
		}
	})
}

// cursor is where an issued page token continues: below order id before
// of user's orders.
type cursor struct{ user, before int64 }

// issuedTokens pages through the orders of a few users as a client would
// and returns the tokens the service issued, with where they continue.
func issuedTokens(f *testing.F) map[string]cursor {
	tokens := map[string]cursor{}
	for _, user := range []int64{3, 45, 49} {
		svc := order.NewService(new(fuzzRepo), time.Minute, func() time.Time { return fuzzNow })
		token := ""
		for {
			page, err := svc.ListOrders(f.Context(), user, 20, token)
			if err != nil {
				f.Fatal(err)
			}
			if token = page.NextPageToken; token == "" {
				break
			}
			tokens[token] = cursor{user, page.Orders[len(page.Orders)-1].ID}
		}
	}
	return tokens
}

// checkListOrders runs one decoded ListOrders request through
// Service.ListOrders. The request is rejected, on the field the contract
// names, before the repository is asked, unless user > 0, page_size is 0
// to 100 and page_token is empty or one the service issued for the user
// (tokens: a fuzzer cannot forge one). A valid request asks the
// repository for one order more than the page size (the default for 0)
// from where the token continues, and the page is the newest of those,
// with a token exactly when more are left.
func checkListOrders(ctx context.Context, t *testing.T, tokens map[string]cursor, req *lomsv1.ListOrdersRequest) {
	t.Helper()
	repo := new(fuzzRepo)
	svc := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow })
	page, err := svc.ListOrders(ctx, req.GetUser(), req.GetPageSize(), req.GetPageToken())
	field := ""
	c, issued := tokens[req.GetPageToken()]
	switch size := req.GetPageSize(); {
	case req.GetUser() <= 0:
		field = "user"
	case size < 0 || size > 100:
		field = "page_size"
	case req.GetPageToken() != "" && (!issued || c.user != req.GetUser()):
		field = "page_token"
	}
	if field != "" {
		expectField(t, err, field)
		if repo.calls != 0 || page != nil {
			t.Fatal("a rejected request reached the repository")
		}
		return
	}
	if err != nil {
		t.Fatalf("valid request %v rejected: %v", req, err)
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 20
	}
	before := int64(math.MaxInt64)
	if req.GetPageToken() != "" {
		before = c.before
	}
	if repo.calls != 1 || repo.user != req.GetUser() || repo.before != before || repo.max != size+1 {
		t.Fatalf("request %v: repository asked %d times for user %d, %d orders below %d", req, repo.calls, repo.user, repo.max, repo.before)
	}
	left := min(before-1, fuzzUserOrders(req.GetUser()))
	if want := min(int64(size), left); int64(len(page.Orders)) != want || (want > 0 && page.Orders[0].ID != left) {
		t.Fatalf("request %v: page %v, want the newest %d of %d orders", req, page.Orders, want, left)
	}
	if (page.NextPageToken != "") != (left > int64(size)) {
		t.Fatalf("request %v: next page token %q with %d orders left after a page of %d", req, page.NextPageToken, left, size)
	}
}

// checkReceiveStock runs one decoded ReceiveStock request through
// Service.ReceiveStock: rejected on the field the contract names before
// the repository is asked, or received with the items merged.
func checkReceiveStock(ctx context.Context, t *testing.T, req *lomsv1.ReceiveStockRequest) {
	t.Helper()
	repo := new(fuzzRepo)
	svc := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow })
	items := make([]order.Item, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = order.Item{SKU: it.GetSku(), Count: it.GetCount()}
	}
	err := svc.ReceiveStock(ctx, req.GetWarehouseId(), items, req.GetIdempotencyKey())
	merged, field := referenceItems(items)
	key := req.GetIdempotencyKey()
	switch {
	case req.GetWarehouseId() <= 0:
		field = "warehouse_id"
	case field != "":
	case len(key) > contractMaxKey || strings.ContainsRune(key, 0):
		field = "idempotency_key"
	}
	if field != "" {
		expectField(t, err, field)
		if repo.calls != 0 {
			t.Fatal("a rejected receipt reached the repository")
		}
		return
	}
	if err != nil {
		t.Fatalf("valid receipt rejected: %v", err)
	}
	if r := repo.receipt; repo.calls != 1 || r.Warehouse != req.GetWarehouseId() || r.Key != key || !slices.Equal(r.Items, merged) {
		t.Fatalf("repository got %+v (%d calls); want warehouse %d, key %q, items %v", r, repo.calls, req.GetWarehouseId(), key, merged)
	}
}

// orderIDs decodes an OrderPayed or CancelOrder request's order id.
func orderIDs(data []byte, pay bool) []int64 {
	var ids []int64
	if pay {
		for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.OrderPayedRequest { return new(lomsv1.OrderPayedRequest) }) {
			ids = append(ids, req.GetOrderId())
		}
		return ids
	}
	for _, req := range rpctest.DecodeRequests(data, func() *lomsv1.CancelOrderRequest { return new(lomsv1.CancelOrderRequest) }) {
		ids = append(ids, req.GetOrderId())
	}
	return ids
}

// checkID checks the handling of a request's id: a non-positive one is
// rejected on field before the repository is asked, a positive one asks
// the repository about exactly that id. It reports whether the id was
// valid.
func checkID(t *testing.T, repo *fuzzRepo, field string, id int64, err error) bool {
	t.Helper()
	if id <= 0 {
		expectField(t, err, field)
		if repo.calls != 0 {
			t.Fatal("a rejected request reached the repository")
		}
		return false
	}
	var ve *validate.Error
	if errors.As(err, &ve) {
		t.Fatalf("%s %d rejected: %v", field, id, err)
	}
	if repo.calls != 1 || repo.id != id {
		t.Fatalf("%s %d: repository asked %d times, about %d", field, id, repo.calls, repo.id)
	}
	if err != nil && !strings.Contains(err.Error(), fmt.Sprint(id)) {
		t.Fatalf("error %q does not name %s %d", err, field, id)
	}
	return true
}

// wantUpdate is the outcome the contract gives OrderPayed (pay) or
// CancelOrder on the order fuzzRepo.Update handed out.
func wantUpdate(id int64, repo *fuzzRepo, pay bool) error {
	transition := &order.TransitionError{}
	switch {
	case id%7 == 0:
		return order.ErrNotFound
	case pay && repo.status == order.StatusAwaitingPayment && repo.expired:
		return order.ErrPaymentExpired
	case pay && (repo.status == order.StatusAwaitingPayment || repo.status == order.StatusPayed):
		return nil
	case !pay && (repo.status == order.StatusNew || repo.status == order.StatusAwaitingPayment || repo.status == order.StatusCancelled):
		return nil
	}
	return transition
}

// sameKind reports whether err is of want's kind: nil, a sentinel, or a
// *order.TransitionError.
func sameKind(err, want error) bool {
	var te *order.TransitionError
	switch {
	case want == nil:
		return err == nil
	case errors.As(want, &te):
		return errors.As(err, &te)
	}
	return errors.Is(err, want)
}

// checkCreate runs one decoded CreateOrder request through Service.Create.
func checkCreate(ctx context.Context, t *testing.T, req *lomsv1.CreateOrderRequest) {
	t.Helper()
	repo := new(fuzzRepo)
	svc := order.NewService(repo, time.Minute, func() time.Time { return fuzzNow })
	items := requestItems(req)
	o, err := svc.Create(ctx, req.GetUser(), items, req.GetIdempotencyKey())

	merged, field := referenceItems(items)
	key := req.GetIdempotencyKey()
	switch {
	case req.GetUser() <= 0:
		field = "user"
	case field != "":
	case len(key) > contractMaxKey || strings.ContainsRune(key, 0):
		field = "idempotency_key"
	}
	if field != "" {
		expectField(t, err, field)
		if repo.calls != 0 || o != nil {
			t.Fatal("a rejected order reached the repository")
		}
		return
	}
	if err != nil {
		t.Fatalf("valid order rejected: %v", err)
	}
	if repo.calls != 1 || repo.created.User != req.GetUser() || repo.key != key || !slices.Equal(repo.created.Items, merged) {
		t.Fatalf("repository got user %d, key %q, items %v; want %d, %q, %v",
			repo.created.User, repo.key, repo.created.Items, req.GetUser(), key, merged)
	}
	checkMerged(t, repo.created.Items)
	short := slices.ContainsFunc(merged, func(it order.Item) bool { return it.SKU%2 == 0 })
	switch {
	case short && (o.Status != order.StatusFailed || repo.plan != nil):
		t.Fatalf("order with a short sku: status %s, plan %v", o.Status, repo.plan)
	case !short && o.Status != order.StatusAwaitingPayment:
		t.Fatalf("order with enough stock: status %s", o.Status)
	case !short:
		reserved := map[uint32]uint64{}
		for _, r := range repo.plan {
			reserved[r.SKU] += r.Count
		}
		for _, it := range merged {
			if reserved[it.SKU] != uint64(it.Count) {
				t.Fatalf("sku %d: reserved %d of %d", it.SKU, reserved[it.SKU], it.Count)
			}
		}
	}
	if !o.PayBy.Equal(fuzzNow.Add(time.Minute)) {
		t.Fatalf("payment window ends %s", o.PayBy)
	}
}
