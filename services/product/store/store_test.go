package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/services/product/catalog"
	"github.com/minizon/minizon/services/product/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// newStore returns a store on a fresh, migrated database and a pool to
// inspect it with.
func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pg.NewPool(t, "product", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "product")
	})
	return store.New(pool), pool
}

// products makes n products with skus first, first+step, ... named after
// their sku and with the given price.
func products(n int, first, step uint32, price uint32) []catalog.Product {
	out := make([]catalog.Product, n)
	for i := range out {
		sku := first + uint32(i)*step
		out[i] = catalog.Product{SKU: sku, Name: fmt.Sprintf("Product %d", sku), Price: price}
	}
	return out
}

func mustImport(t *testing.T, st *store.Store, ps []catalog.Product) (inserted, updated int64) {
	t.Helper()
	inserted, updated, err := st.Import(t.Context(), ps)
	if err != nil {
		t.Fatal(err)
	}
	return inserted, updated
}

// rows returns the whole table, by sku.
func rows(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	r, err := pool.Query(t.Context(), "SELECT sku, name, price, updated_at FROM products ORDER BY sku")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var (
			sku, price int64
			name       string
			at         time.Time
		)
		if err := r.Scan(&sku, &name, &price, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d|%s|%d|%s", sku, name, price, at.Format(time.RFC3339Nano)))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGet(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	lamp := catalog.Product{SKU: math.MaxUint32, Name: "Desk Lamp", Price: math.MaxUint32}
	mustImport(t, st, []catalog.Product{lamp, {SKU: 1, Name: "Mug", Price: 0}})
	got, err := st.Get(t.Context(), math.MaxUint32)
	if err != nil || got != lamp {
		t.Fatalf("got %+v, %v; want %+v", got, err, lamp)
	}
	if _, err := st.Get(t.Context(), 2); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("unknown sku: %v, want ErrNotFound", err)
	}
}

func TestListSKUsPagesInAscendingOrder(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	ps := products(25, 1000, 7, 1)
	ps = append(ps, catalog.Product{SKU: math.MaxUint32, Name: "Last", Price: 1})
	// Imported out of order: the order of the answer is the store's job.
	slices.Reverse(ps)
	mustImport(t, st, ps)

	var all []uint32
	after := uint32(0)
	for {
		page, err := st.ListSKUs(t.Context(), after, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 10 {
			t.Fatalf("page of %d, limit 10", len(page))
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1]
	}
	want := make([]uint32, 0, len(ps))
	for _, p := range ps {
		want = append(want, p.SKU)
	}
	slices.Sort(want)
	if !slices.Equal(all, want) {
		t.Fatalf("paged %v, want %v", all, want)
	}

	for _, tc := range []struct {
		after uint32
		limit int
		want  []uint32
	}{
		{after: 1000, limit: 2, want: []uint32{1007, 1014}},
		{after: 1001, limit: 1, want: []uint32{1007}},
		{after: 1168, limit: 5, want: []uint32{math.MaxUint32}},
		{after: math.MaxUint32, limit: 5, want: []uint32{}},
		{after: 0, limit: 0, want: []uint32{}},
	} {
		got, err := st.ListSKUs(t.Context(), tc.after, tc.limit)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Fatalf("after %d limit %d: got %v, %v; want %v", tc.after, tc.limit, got, err, tc.want)
		}
	}
}

func TestImportCountsNewAndChangedProducts(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	ins, upd := mustImport(t, st, []catalog.Product{
		{SKU: 1, Name: "Lamp", Price: 10}, {SKU: 2, Name: "Mug", Price: 20}, {SKU: 3, Name: "Vase", Price: 30},
	})
	if ins != 3 || upd != 0 {
		t.Fatalf("first import: %d new, %d updated; want 3, 0", ins, upd)
	}
	before := rows(t, pool)
	ins, upd = mustImport(t, st, []catalog.Product{
		{SKU: 1, Name: "Desk Lamp", Price: 10}, // renamed
		{SKU: 2, Name: "Mug", Price: 25},       // repriced
		{SKU: 3, Name: "Vase", Price: 30},      // as stored
		{SKU: 4, Name: "Rug", Price: 40}, {SKU: 5, Name: "Chair", Price: 50},
	})
	if ins != 2 || upd != 2 {
		t.Fatalf("second import: %d new, %d updated; want 2, 2", ins, upd)
	}
	for _, want := range []catalog.Product{{SKU: 1, Name: "Desk Lamp", Price: 10}, {SKU: 2, Name: "Mug", Price: 25}, {SKU: 4, Name: "Rug", Price: 40}} {
		if got, err := st.Get(t.Context(), want.SKU); err != nil || got != want {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	}
	// An unchanged product is not rewritten.
	if after := rows(t, pool); after[2] != before[2] || after[0] == before[0] {
		t.Fatalf("rows before %v, after %v: want only changed rows touched", before, after)
	}
}

func TestImportSpansChunks(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	const n = 12345 // three statements
	if ins, upd := mustImport(t, st, products(n, 1, 1, 1)); ins != n || upd != 0 {
		t.Fatalf("%d new, %d updated; want %d new", ins, upd, n)
	}
	// The upper half repriced (skus n/2+1..n), plus n/2 new ones beyond.
	const kept, changed = n / 2, n - n/2
	if ins, upd := mustImport(t, st, products(n, kept+1, 1, 2)); ins != kept || upd != changed {
		t.Fatalf("%d new, %d updated; want %d, %d", ins, upd, kept, changed)
	}
	var count, repriced int
	if err := pool.QueryRow(t.Context(), "SELECT count(*), count(*) FILTER (WHERE price = 2) FROM products").Scan(&count, &repriced); err != nil {
		t.Fatal(err)
	}
	if count != n+kept || repriced != n {
		t.Fatalf("%d rows, %d repriced", count, repriced)
	}
}

func TestFailedImportChangesNothing(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	mustImport(t, st, products(100, 1, 1, 1))
	before := rows(t, pool)
	// The first chunk updates and inserts; a row of the second breaks the
	// table's name check (ParseCSV would have refused it).
	bad := products(6000, 50, 1, 9)
	bad[len(bad)-1].Name = ""
	if _, _, err := st.Import(t.Context(), bad); err == nil {
		t.Fatal("import of an empty name succeeded")
	}
	if after := rows(t, pool); !slices.Equal(after, before) {
		t.Fatalf("the failed import left %d rows (was %d) or changed some", len(after), len(before))
	}
}

func TestConcurrentImportsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	st, pool := newStore(t)
	// The same skus in opposite orders: without a common lock order each
	// import would wait for a row the other inserted.
	a := products(8000, 1, 1, 1)
	b := slices.Clone(a)
	slices.Reverse(b)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ps := range [][]catalog.Product{a, b} {
		wg.Go(func() { _, _, errs[i] = st.Import(t.Context(), ps) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM products").Scan(&count); err != nil || count != 8000 {
		t.Fatalf("%d rows, %v", count, err)
	}
}

func TestSeedMissingKeepsStoredProducts(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t)
	mine := catalog.Product{SKU: 1, Name: "Imported Lamp", Price: 99}
	mustImport(t, st, []catalog.Product{mine})
	n, err := st.SeedMissing(t.Context(), []catalog.Product{{SKU: 1, Name: "Demo Lamp", Price: 5}, {SKU: 2, Name: "Demo Mug", Price: 6}})
	if err != nil || n != 1 {
		t.Fatalf("seeded %d, %v; want 1 new", n, err)
	}
	if got, _ := st.Get(t.Context(), 1); got != mine {
		t.Fatalf("seeding replaced %+v with %+v", mine, got)
	}
	if got, _ := st.Get(t.Context(), 2); got.Name != "Demo Mug" {
		t.Fatalf("sku 2 is %+v", got)
	}
	if n, err := st.SeedMissing(t.Context(), products(7000, 1, 1, 1)); err != nil || n != 6998 {
		t.Fatalf("second seed added %d, %v; want 6998", n, err)
	}
}
