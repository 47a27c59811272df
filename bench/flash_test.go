package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// lomsDB is a fresh LOMS database holding sku 1 in two warehouses, 10
// units each, and one order awaiting payment of 2 units reserved in
// warehouse 1: a consistent database for a test to spoil.
func lomsDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pg.NewPool(t, "loms", func(ctx context.Context, url string) error { return migrate.Up(ctx, url, "loms") })
	mustExec(t, pool, `INSERT INTO stocks (sku, warehouse_id, total, reserved) VALUES (1, 1, 10, 2), (1, 2, 10, 0)`)
	mustExec(t, pool, `INSERT INTO orders (id, user_id, status, created_at, pay_by, updated_at)
		OVERRIDING SYSTEM VALUE VALUES (1, 7, 'awaiting_payment', now(), now(), now())`)
	mustExec(t, pool, `INSERT INTO order_items (order_id, sku, count) VALUES (1, 1, 2)`)
	mustExec(t, pool, `INSERT INTO reservations (order_id, sku, warehouse_id, count) VALUES (1, 1, 1, 2)`)
	return pool
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// The oversell check finds a stock row whose reserved lost an update, and
// an order sold without a reservation, and passes a consistent database in
// which failed orders hold items but nothing reserved.
func TestCheckStockFindsOversell(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		spoil []string
		bad   int64
		want  string
	}{
		{"consistent", []string{
			`INSERT INTO orders (id, user_id, status, created_at, pay_by, updated_at)
				OVERRIDING SYSTEM VALUE VALUES (2, 8, 'failed', now(), now(), now())`,
			`INSERT INTO order_items (order_id, sku, count) VALUES (2, 1, 50)`,
		}, 0, ""},
		{"lost update", []string{
			// Two reservations of 2 units, but reserved grew only once.
			`INSERT INTO orders (id, user_id, status, created_at, pay_by, updated_at)
				OVERRIDING SYSTEM VALUE VALUES (2, 8, 'awaiting_payment', now(), now(), now())`,
			`INSERT INTO order_items (order_id, sku, count) VALUES (2, 1, 2)`,
			`INSERT INTO reservations (order_id, sku, warehouse_id, count) VALUES (2, 1, 1, 2)`,
		}, 2, "sku 1 in warehouse 1: total 10, reserved 2, reservations 4"},
		{"sold without reserving", []string{
			`INSERT INTO orders (id, user_id, status, created_at, pay_by, updated_at)
				OVERRIDING SYSTEM VALUE VALUES (2, 8, 'awaiting_payment', now(), now(), now())`,
			`INSERT INTO order_items (order_id, sku, count) VALUES (2, 1, 3)`,
		}, 1, "sku 1: reserved 2, units of orders awaiting payment 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool := lomsDB(t)
			for _, sql := range tc.spoil {
				mustExec(t, pool, sql)
			}
			e := &env{pool: pool}
			c, err := e.checkStock(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if c.Rows != 2 || c.SKUs != 1 || c.Bad != tc.bad || c.oversold() != (tc.bad > 0) || c.Example != tc.want {
				t.Errorf("check %+v, want 2 rows and 1 sku checked, %d bad, first %q", c, tc.bad, tc.want)
			}
		})
	}
}

// The one-client ratio is each round's own, measured against the baseline
// LOMS a minute apart, and the summary's is the median of those: here the
// measured and the baseline medians come from different rounds, and their
// ratio (1.5 / 1.25 = 1.2) would call the change slower.
func TestOneClientRatioIsTheRoundsMedian(t *testing.T) {
	t.Parallel()
	// p50 and rate of one client: one call at a time.
	one := func(p50 float64) result { return result{RPS: 1000 / p50, P50: p50} }
	var rounds []row
	for _, p50 := range [][2]float64{{1, 1.25}, {2, 1}, {1.5, 2}} {
		f := &flashRow{OneClient: one(p50[0]), BaselineOneClient: one(p50[1])}
		f.Ratios = f.ratios(result{})
		rounds = append(rounds, row{Flash: f})
	}
	if got := rounds[1].Flash.Ratios.OneClientP50VsBaseline; got != 2 {
		t.Errorf("round 2's ratio %.2f, want 2 (2 ms over 1 ms)", got)
	}
	m := medianFlash(rounds)
	if got := m.Ratios.OneClientP50VsBaseline; got != 0.8 {
		t.Errorf("median ratio %.3f, want round 1's 0.8", got)
	}
	if m.OneClient.P50 != 1.5 || m.BaselineOneClient.P50 != 1.25 {
		t.Errorf("median p50s %.2f and %.2f ms, want the median rounds' 1.5 and 1.25", m.OneClient.P50, m.BaselineOneClient.P50)
	}

	// Without a baseline the ratio is 0, and JSON leaves both out.
	f := &flashRow{OneClient: one(1)}
	if r := f.ratios(result{}); r.OneClientP50VsBaseline != 0 {
		t.Errorf("ratio without a baseline %.2f, want 0", r.OneClientP50VsBaseline)
	}
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "baseline") {
		t.Errorf("JSON without a baseline: %s", js)
	}
}

// The target is met up to 1.05 times the baseline's p50, missed above and
// when either p50 is missing; without a baseline it says how to pass one.
func TestOneClientTarget(t *testing.T) {
	t.Parallel()
	withBase := config{baselineBin: "/tmp/minizon-old"}
	for _, tc := range []struct {
		name  string
		cfg   config
		ratio float64
		want  string
	}{
		{"equal", withBase, 1, "ratio 1.00 (≤ 1.05 counts as no worse): met\n"},
		{"at the limit", withBase, 1.05, "ratio 1.05 (≤ 1.05 counts as no worse): met\n"},
		{"slower", withBase, 1.06, "ratio 1.06 (≤ 1.05 counts as no worse): MISSED\n"},
		{"no p50", withBase, 0, "ratio 0.00 (≤ 1.05 counts as no worse): MISSED\n"},
		{"no baseline", config{}, 0, "no baseline was measured: pass -baseline-bin OLD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &flashRow{OneClient: result{P50: 1.25, P99: 3}, BaselineOneClient: result{P50: 1.2}}
			f.Ratios.OneClientP50VsBaseline = tc.ratio
			var b strings.Builder
			oneClientTarget(&b, tc.cfg, "grpc", f)
			if !strings.HasPrefix(b.String(), "- one client, grpc: CreateOrder p50 1.25 ms") || !strings.Contains(b.String(), tc.want) {
				t.Errorf("target line %q, want %q in it", b.String(), tc.want)
			}
		})
	}
}
