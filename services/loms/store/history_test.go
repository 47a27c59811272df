package store_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/loms/internal/lomstest"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// TestListOrdersPagesThroughOneUsersOrders: 45 orders of one user, made
// between other users' orders, come back 20, 20 and 5 a page, newest
// first, each once, with their items and times; the last page has no
// token, and another user's orders never show.
func TestListOrdersPagesThroughOneUsersOrders(t *testing.T) {
	t.Parallel()
	svc, _, clock := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 1000}, order.Stock{SKU: 2, Warehouse: 1, Total: 1000})
	ctx := t.Context()
	var want []*order.Order
	for i := range 60 {
		user := int64(7)
		if i%4 == 3 {
			user = 8
		}
		clock.Advance(time.Second)
		o, err := svc.Create(ctx, user, []order.Item{{SKU: 2, Count: uint32(1 + i%3)}, {SKU: 1, Count: 1}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if user == 7 {
			want = append(want, o)
		}
	}
	if len(want) != 45 {
		t.Fatalf("made %d orders of user 7", len(want))
	}
	slices.Reverse(want)
	if err := svc.Cancel(ctx, want[3].ID); err != nil {
		t.Fatal(err)
	}
	want[3].Status = order.StatusCancelled

	var got []*order.Order
	var sizes []int
	token := ""
	for range 5 {
		page, err := svc.ListOrders(ctx, 7, 20, token)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page.Orders))
		got = append(got, page.Orders...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if !slices.Equal(sizes, []int{20, 20, 5}) {
		t.Fatalf("pages of %v orders, want 20, 20, 5 and no token after the last", sizes)
	}
	for i, o := range got {
		w := want[i]
		if o.ID != w.ID || o.User != 7 || o.Status != w.Status || !o.CreatedAt.Equal(w.CreatedAt) || !o.PayBy.Equal(w.PayBy) ||
			!slices.Equal(o.Items, w.Items) {
			t.Fatalf("order %d of the history: %+v, want %+v", i, o, w)
		}
	}

	page, err := svc.ListOrders(ctx, 9, 0, "")
	if err != nil || len(page.Orders) != 0 || page.NextPageToken != "" {
		t.Fatalf("a user without orders: %+v, %v; want an empty page", page, err)
	}
}

// TestListOrdersSeesNewOrdersOnlyOnAFreshFirstPage: keyset paging by id
// means an order made while a client pages neither repeats nor hides an
// order of the pages to come.
func TestListOrdersSeesNewOrdersOnlyOnAFreshFirstPage(t *testing.T) {
	t.Parallel()
	svc, _, _ := newService(t, order.Stock{SKU: 1, Warehouse: 1, Total: 1000})
	ctx := t.Context()
	var ids []int64
	for range 5 {
		o, err := svc.Create(ctx, 3, []order.Item{{SKU: 1, Count: 1}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	first, err := svc.ListOrders(ctx, 3, 2, "")
	if err != nil {
		t.Fatal(err)
	}
	newer, err := svc.Create(ctx, 3, []order.Item{{SKU: 1, Count: 1}}, "")
	if err != nil {
		t.Fatal(err)
	}
	second, err := svc.ListOrders(ctx, 3, 2, first.NextPageToken)
	if err != nil {
		t.Fatal(err)
	}
	if got := pageIDs(second.Orders); !slices.Equal(got, []int64{ids[2], ids[1]}) {
		t.Fatalf("second page %v, want %v", got, []int64{ids[2], ids[1]})
	}
	fresh, err := svc.ListOrders(ctx, 3, 2, "")
	if err != nil || fresh.Orders[0].ID != newer.ID {
		t.Fatalf("fresh first page %v, %v; want the new order %d first", pageIDs(fresh.Orders), err, newer.ID)
	}
}

func pageIDs(orders []*order.Order) []int64 {
	out := make([]int64, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// The histories BenchmarkListOrders reads: two users with 10,000 orders
// each among 100,000 orders of 1,000 other users. spreadUser ordered all
// along (every 11th order of the shop); earlyUser made all of theirs
// first, so that every later order lies between now and their newest: the
// case where walking the orders by id alone, without the (user_id, id)
// index, is slowest.
const (
	spreadUser    = 1
	earlyUser     = 2
	historyOrders = 10_000
	otherOrders   = 100_000
)

// fillHistory stores the histories straight in SQL, each order with two
// items, and returns each user's order ids, oldest first.
func fillHistory(b *testing.B, pool *pgxpool.Pool) map[int64][]int64 {
	ctx := b.Context()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		// earlyUser first, then spreadUser among the others.
		{`INSERT INTO orders (user_id, status, created_at, pay_by, updated_at)
		  SELECT $1, 'payed', now(), now(), now() FROM generate_series(1, $2)`, []any{earlyUser, historyOrders}},
		{`INSERT INTO orders (user_id, status, created_at, pay_by, updated_at)
		  SELECT CASE WHEN g % 11 = 0 THEN $1 ELSE 3 + g % 1000 END, 'payed', now(), now(), now()
		  FROM generate_series(1, $2) g`, []any{spreadUser, historyOrders + otherOrders}},
		{`INSERT INTO order_items (order_id, sku, count)
		  SELECT id, sku, 1 + id % 7 FROM orders, (VALUES (773297411), (773587830)) v (sku)`, nil},
		{`ANALYZE orders, order_items`, nil},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatal(err)
		}
	}
	out := map[int64][]int64{}
	for _, user := range []int64{spreadUser, earlyUser} {
		rows, err := pool.Query(ctx, "SELECT id FROM orders WHERE user_id = $1 ORDER BY id", user)
		if err != nil {
			b.Fatal(err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil || len(ids) != historyOrders {
			b.Fatalf("%d orders of user %d: %v", len(ids), user, err)
		}
		out[user] = ids
	}
	return out
}

// BenchmarkListOrders reads pages of 20 orders (and their items) of a user
// with 10,000 orders among 120,000: the store's one round trip at random
// positions in the history (any page) and the first page, for both
// users, and a client paging through order.Service (tokens included). The
// target is under 5 ms a page; it reports the p50, p99 and slowest page
// besides the mean, since "any page" is about the tail.
func BenchmarkListOrders(b *testing.B) {
	st, pool := lomstest.NewStore(b, pg, time.Now)
	ids := fillHistory(b, pool)
	for _, user := range []int64{spreadUser, earlyUser} {
		name := map[int64]string{spreadUser: "spread", earlyUser: "early"}[user]
		for _, tc := range []struct {
			name   string
			before func(r *rand.Rand) int64
		}{
			{"any_page", func(r *rand.Rand) int64 { return ids[user][r.IntN(historyOrders)] + 1 }},
			{"first_page", func(*rand.Rand) int64 { return math.MaxInt64 }},
		} {
			b.Run(name+"_user/"+tc.name, func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				var took []time.Duration
				for b.Loop() {
					before := tc.before(r)
					start := time.Now()
					orders, err := st.ListByUser(b.Context(), user, before, order.DefaultPageSize+1)
					took = append(took, time.Since(start))
					if err != nil || len(orders) == 0 || len(orders[0].Items) != 2 {
						b.Fatalf("page below %d: %d orders, %v", before, len(orders), err)
					}
				}
				reportTail(b, took)
			})
		}
	}
	b.Run("spread_user/service_next_page", func(b *testing.B) {
		// A client paging through the whole history and starting over at
		// the end: one page a loop.
		svc := order.NewService(st, time.Minute, time.Now)
		var took []time.Duration
		token := ""
		for b.Loop() {
			start := time.Now()
			page, err := svc.ListOrders(b.Context(), spreadUser, order.DefaultPageSize, token)
			took = append(took, time.Since(start))
			if err != nil || len(page.Orders) != order.DefaultPageSize {
				b.Fatalf("page of %d orders: %v", len(page.Orders), err)
			}
			token = page.NextPageToken
		}
		reportTail(b, took)
	})
	// Whatever the timings, every page must come from the index: the
	// first page of the early user is where a walk of the primary key
	// would be slowest.
	for _, q := range []string{db.ListUserOrders, db.ListUserOrderItems} {
		rows, err := pool.Query(b.Context(), "EXPLAIN "+q, earlyUser, int64(math.MaxInt64), 21)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if plan := strings.Join(lines, "\n"); err != nil || !strings.Contains(plan, "orders_user_id_id") {
			b.Fatalf("the first page of user %d is not read from orders_user_id_id (%v):\n%s", earlyUser, err, plan)
		}
	}
}

func reportTail(b *testing.B, took []time.Duration) {
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}
