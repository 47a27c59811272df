package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

// -baseline reads the one-client latency back from the results.json a run
// writes, by protocol, and refuses a file without one.
func TestBaselineReadsResults(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, rows []row) string {
		b, err := json.Marshal(rows)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	withFlash := write("new.json", []row{
		{Clients: 16, Protocol: "grpc"},
		{Clients: 64, Protocol: "grpc", Flash: &flashRow{OneClient: result{P50: 1.25}}},
		{Clients: 64, Protocol: "connect", Flash: &flashRow{OneClient: result{P50: 1.5}}},
	})
	b, err := readBaseline(withFlash)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.p50) != 2 || b.p50["grpc"] != 1.25 || b.p50["connect"] != 1.5 || b.file != withFlash {
		t.Errorf("baseline %+v, want grpc 1.25 ms and connect 1.5 ms", b)
	}

	old := write("old.json", []row{{Clients: 16, Protocol: "grpc"}})
	if _, err := readBaseline(old); err == nil || !strings.Contains(err.Error(), "no one-client") {
		t.Errorf("a results.json without one-client figures: %v", err)
	}
	if b, err := readBaseline(""); err != nil || len(b.p50) != 0 {
		t.Errorf("no baseline: %+v, %v", b, err)
	}
}
