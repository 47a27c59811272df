package order_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minizon/minizon/services/loms/order"
)

// historyRepo holds orders 1..n of one user (every order of user u is
// u's); it answers ListByUser as the store does and records the call.
type historyRepo struct {
	fuzzRepo
	n      int64
	user   int64
	before int64
	max    int
}

func (r *historyRepo) ListByUser(_ context.Context, user, before int64, max int) ([]*order.Order, error) {
	r.calls++
	r.user, r.before, r.max = user, before, max
	var out []*order.Order
	for id := min(before-1, r.n); id >= 1 && len(out) < max; id-- {
		out = append(out, &order.Order{ID: id, User: user, Status: order.StatusPayed})
	}
	return out, nil
}

func newHistory(n int64) (*order.Service, *historyRepo) {
	repo := &historyRepo{n: n}
	return order.NewService(repo, time.Minute, func() time.Time { return fuzzNow }), repo
}

func ids(orders []*order.Order) []int64 {
	out := make([]int64, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

func TestListOrdersPagesNewestFirstWithoutGapsOrOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		orders   int64
		pageSize int32
		pages    []int
	}{
		{45, 20, []int{20, 20, 5}},
		{40, 20, []int{20, 20}}, // a full last page carries no token
		{45, 0, []int{20, 20, 5}},
		{3, 100, []int{3}},
		{0, 5, []int{0}},
		{7, 1, []int{1, 1, 1, 1, 1, 1, 1}},
	} {
		svc, repo := newHistory(tc.orders)
		var got []int64
		var sizes []int
		token := ""
		for range len(tc.pages) + 1 {
			page, err := svc.ListOrders(t.Context(), 9, tc.pageSize, token)
			if err != nil {
				t.Fatalf("%d orders, page size %d: %v", tc.orders, tc.pageSize, err)
			}
			if repo.user != 9 || repo.max != cmp.Or(int(tc.pageSize), order.DefaultPageSize)+1 {
				t.Fatalf("repository asked for user %d, %d orders", repo.user, repo.max)
			}
			sizes = append(sizes, len(page.Orders))
			got = append(got, ids(page.Orders)...)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if !slices.Equal(sizes, tc.pages) {
			t.Fatalf("%d orders, page size %d: pages of %v, want %v", tc.orders, tc.pageSize, sizes, tc.pages)
		}
		for i, id := range got {
			if id != tc.orders-int64(i) {
				t.Fatalf("%d orders: listed %v, want every id once, newest first", tc.orders, got)
			}
		}
	}
}

func TestListOrdersRejectsBadRequestsBeforeAskingTheRepository(t *testing.T) {
	t.Parallel()
	svc, _ := newHistory(45)
	first, err := svc.ListOrders(t.Context(), 9, 20, "")
	if err != nil || first.NextPageToken == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	token := first.NextPageToken
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatalf("token %q is not unpadded URL-safe base64: %v", token, err)
	}
	flip := func(i int) string {
		b := slices.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	for _, tc := range []struct {
		name     string
		user     int64
		pageSize int32
		token    string
		field    string
	}{
		{"user 0", 0, 20, "", "user"},
		{"negative user", -3, 20, "", "user"},
		{"page size -1", 9, -1, "", "page_size"},
		{"page size 101", 9, 101, "", "page_size"},
		{"page size max int32", 9, math.MaxInt32, "", "page_size"},
		{"token of another user", 10, 20, token, "page_token"},
		{"token with a changed version", 9, 20, flip(0), "page_token"},
		{"token with a changed user", 9, 20, flip(8), "page_token"},
		{"token with a changed position", 9, 20, flip(16), "page_token"},
		{"token with a changed MAC", 9, 20, flip(len(raw) - 1), "page_token"},
		{"token cut short", 9, 20, token[:len(token)-1], "page_token"},
		{"token made longer", 9, 20, token + "A", "page_token"},
		{"token not base64", 9, 20, strings.Repeat("*", len(token)), "page_token"},
		{"token of zeros", 9, 20, base64.RawURLEncoding.EncodeToString(make([]byte, len(raw))), "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, repo := newHistory(45)
			page, err := svc.ListOrders(t.Context(), tc.user, tc.pageSize, tc.token)
			expectField(t, err, tc.field)
			if page != nil || repo.calls != 0 {
				t.Fatalf("a rejected request reached the repository (%d calls) or returned a page", repo.calls)
			}
		})
	}
	// The token itself is accepted, and for exactly the next page.
	svc, repo := newHistory(45)
	if _, err := svc.ListOrders(t.Context(), 9, 20, token); err != nil || repo.before != 26 {
		t.Fatalf("second page: %v, asked for ids below %d, want 26", err, repo.before)
	}
}

func TestPageSizeDefaultsAndLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   int32
		want int
		ok   bool
	}{{0, 20, true}, {1, 1, true}, {100, 100, true}, {101, 0, false}, {-1, 0, false}, {math.MinInt32, 0, false}} {
		got, err := order.PageSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("PageSize(%d) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil {
			expectField(t, err, "page_size")
		}
	}
}

func TestNewReceiptValidatesAndMerges(t *testing.T) {
	t.Parallel()
	items := func(skuCounts ...uint32) []order.Item {
		var out []order.Item
		for i := 0; i+1 < len(skuCounts); i += 2 {
			out = append(out, order.Item{SKU: skuCounts[i], Count: skuCounts[i+1]})
		}
		return out
	}
	many := make([]order.Item, contractMaxItems+1)
	for i := range many {
		many[i] = order.Item{SKU: uint32(i + 1), Count: 1}
	}
	for _, tc := range []struct {
		name      string
		warehouse int64
		items     []order.Item
		key       string
		field     string
		want      []order.Item
	}{
		{"merges and sorts", 3, items(9, 2, 4, 1, 9, 3), "k", "", items(4, 1, 9, 5)},
		{"merged total 65535", 1, items(5, 65000, 5, 535), "", "", items(5, 65535)},
		{"1000 items", 1, many[:contractMaxItems], "", "", many[:contractMaxItems]},
		{"warehouse 0", 0, items(1, 1), "", "warehouse_id", nil},
		{"negative warehouse", -1, items(1, 1), "", "warehouse_id", nil},
		{"no items", 1, nil, "", "items", nil},
		{"1001 items", 1, many, "", "items", nil},
		{"sku 0", 1, items(1, 1, 0, 1), "", "items[1].sku", nil},
		{"count 0", 1, items(1, 0), "", "items[0].count", nil},
		{"count 65536", 1, items(1, 65536), "", "items[0].count", nil},
		{"merged total 65536", 1, items(2, 1, 5, 65535, 5, 1), "", "items[2].count", nil},
		{"key of 129 bytes", 1, items(1, 1), strings.Repeat("k", 129), "idempotency_key", nil},
		{"key with NUL", 1, items(1, 1), "a\x00b", "idempotency_key", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.items)
			r, err := order.NewReceipt(tc.warehouse, tc.items, tc.key)
			if !slices.Equal(before, tc.items) {
				t.Fatal("NewReceipt changed its argument")
			}
			if tc.field != "" {
				expectField(t, err, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Warehouse != tc.warehouse || r.Key != tc.key || !slices.Equal(r.Items, tc.want) {
				t.Fatalf("receipt %+v, want warehouse %d, key %q, items %v", r, tc.warehouse, tc.key, tc.want)
			}
		})
	}
}
