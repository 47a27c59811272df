package order_test

import (
	"errors"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
)

func TestPayAndCancelFollowTheStateMachine(t *testing.T) {
	t.Parallel()
	type outcome struct {
		status  order.Status
		changed bool
		err     bool
	}
	cases := []struct {
		from        order.Status
		pay, cancel outcome
	}{
		{order.StatusNew, outcome{order.StatusNew, false, true}, outcome{order.StatusCancelled, true, false}},
		{order.StatusAwaitingPayment, outcome{order.StatusPayed, true, false}, outcome{order.StatusCancelled, true, false}},
		{order.StatusFailed, outcome{order.StatusFailed, false, true}, outcome{order.StatusFailed, false, true}},
		{order.StatusPayed, outcome{order.StatusPayed, false, false}, outcome{order.StatusPayed, false, true}},
		{order.StatusCancelled, outcome{order.StatusCancelled, false, true}, outcome{order.StatusCancelled, false, false}},
	}
	for _, tc := range cases {
		for _, action := range []string{"pay", "cancel"} {
			t.Run(tc.from.String()+"/"+action, func(t *testing.T) {
				o := &order.Order{ID: 7, Status: tc.from}
				want, do := tc.pay, o.Pay
				if action == "cancel" {
					want, do = tc.cancel, o.Cancel
				}
				changed, err := do()
				if got := err != nil; got != want.err {
					t.Fatalf("error = %v, want error: %v", err, want.err)
				}
				var te *order.TransitionError
				if err != nil && !errors.As(err, &te) {
					t.Fatalf("error %v is not a TransitionError", err)
				}
				if changed != want.changed || o.Status != want.status {
					t.Fatalf("got (%v, %s), want (%v, %s)", changed, o.Status, want.changed, want.status)
				}
				if n := len(o.Changes()); (n == 1) != want.changed || n > 1 {
					t.Fatalf("recorded %d changes, changed=%v", n, want.changed)
				}
			})
		}
	}
}

func TestStockEffectOfChanges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		c    order.Change
		want order.StockEffect
	}{
		{order.Change{order.StatusUnspecified, order.StatusNew}, order.KeepStock},
		{order.Change{order.StatusNew, order.StatusAwaitingPayment}, order.KeepStock},
		{order.Change{order.StatusNew, order.StatusFailed}, order.KeepStock},
		{order.Change{order.StatusNew, order.StatusCancelled}, order.KeepStock},
		{order.Change{order.StatusAwaitingPayment, order.StatusPayed}, order.WriteOffStock},
		{order.Change{order.StatusAwaitingPayment, order.StatusCancelled}, order.ReleaseStock},
	}
	for _, tc := range cases {
		if got := tc.c.StockEffect(); got != tc.want {
			t.Errorf("%v -> %v: effect %d, want %d", tc.c.From, tc.c.To, got, tc.want)
		}
	}
}

func TestNewOrderReservesOrFails(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	items := []order.Item{{SKU: 1, Count: 5}, {SKU: 2, Count: 1}}
	stocks := []order.Stock{
		{SKU: 1, Warehouse: 1, Total: 3}, {SKU: 1, Warehouse: 2, Total: 10, Reserved: 8},
		{SKU: 2, Warehouse: 3, Total: 1},
	}
	o := order.New(42, items, now, 10*time.Minute)
	plan, err := o.Reserve(stocks)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusAwaitingPayment || !o.PayBy.Equal(now.Add(10*time.Minute)) {
		t.Fatalf("status %s pay by %v", o.Status, o.PayBy)
	}
	want := []order.Reservation{{1, 1, 3}, {1, 2, 2}, {2, 3, 1}}
	if !equalPlans(plan, want) {
		t.Fatalf("plan %v, want %v", plan, want)
	}
	if got := o.Changes(); len(got) != 2 || got[0] != (order.Change{order.StatusUnspecified, order.StatusNew}) ||
		got[1] != (order.Change{order.StatusNew, order.StatusAwaitingPayment}) {
		t.Fatalf("changes %v", got)
	}

	short := order.New(42, []order.Item{{SKU: 1, Count: 6}}, now, time.Minute)
	plan, err = short.Reserve(stocks)
	if err != nil || plan != nil || short.Status != order.StatusFailed {
		t.Fatalf("short order: plan %v, err %v, status %s", plan, err, short.Status)
	}
	if _, err := short.Reserve(stocks); err == nil {
		t.Fatal("reserving twice must fail")
	}
}

func TestPlanPrefersFewestWarehouses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		items  []order.Item
		stocks []order.Stock
		want   []order.Reservation
		ok     bool
	}{
		{"largest first", []order.Item{{SKU: 9, Count: 4}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 3}, {SKU: 9, Warehouse: 2, Total: 5}},
			[]order.Reservation{{9, 2, 4}}, true},
		{"ties go to lower warehouse", []order.Item{{SKU: 9, Count: 2}},
			[]order.Stock{{SKU: 9, Warehouse: 5, Total: 3}, {SKU: 9, Warehouse: 4, Total: 3}},
			[]order.Reservation{{9, 4, 2}}, true},
		{"spread over all", []order.Item{{SKU: 9, Count: 6}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 3}, {SKU: 9, Warehouse: 2, Total: 3}},
			[]order.Reservation{{9, 1, 3}, {9, 2, 3}}, true},
		{"reserved units are not available", []order.Item{{SKU: 9, Count: 3}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 3, Reserved: 1}},
			nil, false},
		{"unknown sku", []order.Item{{SKU: 8, Count: 1}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 3}}, nil, false},
		{"exact", []order.Item{{SKU: 9, Count: 3}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 3}}, []order.Reservation{{9, 1, 3}}, true},
		{"several skus, rows and items in any order", []order.Item{{SKU: 20, Count: 5}, {SKU: 9, Count: 2}},
			[]order.Stock{{SKU: 20, Warehouse: 2, Total: 4}, {SKU: 9, Warehouse: 3, Total: 1}, {SKU: 20, Warehouse: 1, Total: 2},
				{SKU: 9, Warehouse: 1, Total: 7, Reserved: 6}, {SKU: 30, Warehouse: 1, Total: 9}},
			[]order.Reservation{{20, 2, 4}, {20, 1, 1}, {9, 1, 1}, {9, 3, 1}}, true},
		{"one sku short among several", []order.Item{{SKU: 9, Count: 1}, {SKU: 20, Count: 7}},
			[]order.Stock{{SKU: 9, Warehouse: 1, Total: 5}, {SKU: 20, Warehouse: 1, Total: 3}, {SKU: 20, Warehouse: 2, Total: 3}},
			nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan, ok := order.Plan(tc.items, tc.stocks)
			if ok != tc.ok || !equalPlans(plan, tc.want) {
				t.Fatalf("got %v %v, want %v %v", plan, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestPlanMatchesReference checks Plan against a plain restatement of its
// rule (per sku, most available first, ties to the lower warehouse) on
// random orders over random stock rows.
func TestPlanMatchesReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var stocks []order.Stock
		for sku := uint32(1); sku <= 6; sku++ {
			for wh := int64(1); wh <= 4; wh++ {
				if r.IntN(3) > 0 {
					total := uint64(r.IntN(6))
					stocks = append(stocks, order.Stock{SKU: sku, Warehouse: wh, Total: total, Reserved: uint64(r.IntN(int(total) + 1))})
				}
			}
		}
		r.Shuffle(len(stocks), func(i, j int) { stocks[i], stocks[j] = stocks[j], stocks[i] })
		var items []order.Item
		for _, sku := range r.Perm(6)[:1+r.IntN(6)] {
			items = append(items, order.Item{SKU: uint32(sku + 1), Count: uint32(1 + r.IntN(8))})
		}
		got, ok := order.Plan(items, stocks)
		want, wantOK := referencePlan(items, stocks)
		if ok != wantOK || !equalPlans(got, want) {
			t.Fatalf("items %v stocks %v: got %v %v, want %v %v", items, stocks, got, ok, want, wantOK)
		}
	}
}

func referencePlan(items []order.Item, stocks []order.Stock) ([]order.Reservation, bool) {
	var plan []order.Reservation
	for _, it := range items {
		var rows []order.Stock
		for _, s := range stocks {
			if s.SKU == it.SKU && s.Available() > 0 {
				rows = append(rows, s)
			}
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i].Available() != rows[j].Available() {
				return rows[i].Available() > rows[j].Available()
			}
			return rows[i].Warehouse < rows[j].Warehouse
		})
		need := uint64(it.Count)
		for _, s := range rows {
			if need == 0 {
				break
			}
			take := min(need, s.Available())
			plan = append(plan, order.Reservation{SKU: it.SKU, Warehouse: s.Warehouse, Count: take})
			need -= take
		}
		if need > 0 {
			return nil, false
		}
	}
	return plan, true
}

func TestValidateItems(t *testing.T) {
	t.Parallel()
	many := make([]order.Item, order.MaxItems+1)
	for i := range many {
		many[i] = order.Item{SKU: uint32(i + 1), Count: 1}
	}
	cases := []struct {
		name  string
		items []order.Item
		field string
	}{
		{"empty", nil, "items"},
		{"too many", many, "items"},
		{"sku zero", []order.Item{{SKU: 1, Count: 1}, {SKU: 0, Count: 1}}, "items[1].sku"},
		{"count zero", []order.Item{{SKU: 1, Count: 0}}, "items[0].count"},
		{"count too large", []order.Item{{SKU: 1, Count: 65536}}, "items[0].count"},
		{"merged total too large", []order.Item{{SKU: 1, Count: 65535}, {SKU: 2, Count: 1}, {SKU: 1, Count: 1}}, "items[2].count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := order.ValidateItems(tc.items)
			var v *validate.Error
			if !errors.As(err, &v) || v.Field != tc.field {
				t.Fatalf("error %v, want a validation error on %s", err, tc.field)
			}
		})
	}

	merged, err := order.ValidateItems([]order.Item{{SKU: 5, Count: 65000}, {SKU: 2, Count: 1}, {SKU: 5, Count: 535}})
	if err != nil {
		t.Fatal(err)
	}
	want := []order.Item{{SKU: 2, Count: 1}, {SKU: 5, Count: 65535}}
	if len(merged) != 2 || merged[0] != want[0] || merged[1] != want[1] {
		t.Fatalf("merged %v, want %v", merged, want)
	}
	if _, err := order.ValidateItems(many[:order.MaxItems]); err != nil {
		t.Fatalf("%d items must be accepted: %v", order.MaxItems, err)
	}
}

func TestValidateIdempotencyKey(t *testing.T) {
	t.Parallel()
	for key, ok := range map[string]bool{
		"": true, "cart-42-v3": true, strings.Repeat("k", 128): true,
		strings.Repeat("k", 129): false, "a\x00b": false,
	} {
		err := order.ValidateIdempotencyKey(key)
		var v *validate.Error
		if ok != (err == nil) || (err != nil && (!errors.As(err, &v) || v.Field != "idempotency_key")) {
			t.Errorf("key %q: error %v, want ok=%v", key, err, ok)
		}
	}
}

func TestExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	o := order.New(1, []order.Item{{SKU: 1, Count: 1}}, now, time.Minute)
	if _, err := o.Reserve([]order.Stock{{SKU: 1, Warehouse: 1, Total: 1}}); err != nil {
		t.Fatal(err)
	}
	if o.Expired(now.Add(time.Minute)) || !o.Expired(now.Add(time.Minute+time.Nanosecond)) {
		t.Fatal("the window must end exactly at PayBy")
	}
	if _, err := o.Pay(); err != nil || o.Expired(now.Add(time.Hour)) {
		t.Fatal("a paid order never expires")
	}
}

func TestStatusNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for s := order.StatusNew; s <= order.StatusCancelled; s++ {
		got, err := order.ParseStatus(s.String())
		if err != nil || got != s {
			t.Fatalf("%s: got %v %v", s, got, err)
		}
	}
	if _, err := order.ParseStatus("unspecified"); err == nil {
		t.Fatal("unspecified must not parse")
	}
}

func equalPlans(a, b []order.Reservation) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
