package catalog_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/product/catalog"
)

// memRepo is an in-memory catalog.Repository that records the page size it
// was asked for.
type memRepo struct {
	products  map[uint32]catalog.Product
	err       error
	lastLimit int
}

func (r *memRepo) Get(_ context.Context, sku uint32) (catalog.Product, error) {
	if r.err != nil {
		return catalog.Product{}, r.err
	}
	p, ok := r.products[sku]
	if !ok {
		return catalog.Product{}, catalog.ErrNotFound
	}
	return p, nil
}

func (r *memRepo) ListSKUs(_ context.Context, after uint32, limit int) ([]uint32, error) {
	r.lastLimit = limit
	if r.err != nil {
		return nil, r.err
	}
	var out []uint32
	for sku := range r.products {
		if sku > after {
			out = append(out, sku)
		}
	}
	slices.Sort(out)
	return out[:min(limit, len(out))], nil
}

func TestGet(t *testing.T) {
	t.Parallel()
	lamp := catalog.Product{SKU: 7, Name: "Lamp", Price: 10}
	broken := errors.New("connection reset")
	for _, tc := range []struct {
		name      string
		sku       uint32
		repoErr   error
		want      catalog.Product
		wantField string // a *validate.Error on this field
		wantIs    error
		wantMsg   string
	}{
		{name: "known", sku: 7, want: lamp},
		{name: "sku 0", sku: 0, wantField: "sku"},
		{name: "unknown", sku: 8, wantIs: catalog.ErrNotFound, wantMsg: "sku 8 is not in the catalog"},
		{name: "repository fails", sku: 7, repoErr: broken, wantIs: broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			svc := catalog.NewService(&memRepo{products: map[uint32]catalog.Product{7: lamp}, err: tc.repoErr})
			got, err := svc.Get(t.Context(), tc.sku)
			checkErr(t, err, tc.wantField, tc.wantIs, tc.wantMsg)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestListSKUs(t *testing.T) {
	t.Parallel()
	products := map[uint32]catalog.Product{}
	for sku := uint32(1); sku <= 1500; sku++ {
		products[sku*2] = catalog.Product{SKU: sku * 2, Name: "x"}
	}
	for _, tc := range []struct {
		name         string
		after, count uint32
		wantLimit    int
		wantFirst    uint32
		wantLen      int
		wantField    string
	}{
		{name: "count 0 is the default page", count: 0, wantLimit: catalog.DefaultPage, wantFirst: 2, wantLen: 100},
		{name: "after a sku", after: 10, count: 3, wantLimit: 3, wantFirst: 12, wantLen: 3},
		{name: "after a gap", after: 11, count: 1, wantLimit: 1, wantFirst: 12, wantLen: 1},
		{name: "the largest page", count: catalog.MaxPage, wantLimit: catalog.MaxPage, wantFirst: 2, wantLen: 1000},
		{name: "end of the catalog", after: 2996, count: 10, wantLimit: 10, wantFirst: 2998, wantLen: 2},
		{name: "past the end", after: 3000, count: 10, wantLimit: 10, wantLen: 0},
		{name: "above the largest page", count: catalog.MaxPage + 1, wantField: "count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := &memRepo{products: products}
			got, err := catalog.NewService(repo).ListSKUs(t.Context(), tc.after, tc.count)
			checkErr(t, err, tc.wantField, nil, "")
			if err != nil {
				if repo.lastLimit != 0 {
					t.Fatal("the repository was asked despite the invalid request")
				}
				return
			}
			if repo.lastLimit != tc.wantLimit || len(got) != tc.wantLen || (tc.wantLen > 0 && got[0] != tc.wantFirst) {
				t.Fatalf("limit %d, got %d skus from %v; want limit %d, %d skus from %d",
					repo.lastLimit, len(got), got[:min(1, len(got))], tc.wantLimit, tc.wantLen, tc.wantFirst)
			}
		})
	}
}

func checkErr(t *testing.T, err error, field string, is error, msg string) {
	t.Helper()
	var invalid *validate.Error
	switch {
	case field != "":
		if !errors.As(err, &invalid) || invalid.Field != field {
			t.Fatalf("error %v, want a validation error on %q", err, field)
		}
	case is != nil:
		if !errors.Is(err, is) {
			t.Fatalf("error %v, want %v", err, is)
		}
	case err != nil:
		t.Fatal(err)
	}
	if msg != "" && err.Error() != msg {
		t.Fatalf("message %q, want %q", err.Error(), msg)
	}
}
