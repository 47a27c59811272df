package catalog_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/product/catalog"
)

// FuzzParseCSV feeds ParseCSV arbitrary files. It never panics and returns
// exactly one of: products, ErrNoProducts, or an *ImportError (a bytes
// reader cannot fail to read). Products have distinct skus other than 0
// and names that are valid UTF-8, trimmed, 1 to 200 characters long,
// without control characters; written out again as CSV they parse to the
// same products. An *ImportError lists lines that exist, in line order,
// each with a reason, and its message has one text line per listed line,
// so that no reason can break a log line or a terminal.
func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{
		"sku,name,price\n773297411,Кроссовки Nike JORDAN,2202\n773587830,\"Desk lamp, brass\",0\n",
		"\ufeffSKU, Name ,PRICE\r\n1,a,4294967295\r\n",
		"4294967295,\"say \"\"hi\"\"\",1\n",
		"1,x,1\n1,y,2\n",                         // duplicate sku
		"0,x,1\n4294967296,y,-1\n",               // sku and price out of range
		"1,\"a\nb\",1\n2,\x01,1\n3,\xff,1\n",     // line break, control character, not UTF-8
		"1, ,1\n2,x\n3,x,1,extra\n",              // empty name, field counts
		"1,a\"b,1\n2,\"unclosed,1\n3,ok,1\n",     // bare and unclosed quotes
		"1," + strings.Repeat("é", 200) + ",1\n", // longest name
		"1," + strings.Repeat("é", 201) + ",1\n",
		strings.Repeat("x,y,z\n", 25), // more bad lines than the message lists
		"sku,name,price\n",
		"",
		"\n\n",
		" 7 , padded , 08 \n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		products, err := catalog.ParseCSV(bytes.NewReader(data))
		var ie *catalog.ImportError
		switch {
		case err == nil:
			checkProducts(t, products)
			again, err := catalog.ParseCSV(bytes.NewReader(writeCSV(t, products)))
			if err != nil || !slices.Equal(again, products) {
				t.Fatalf("products %v written out parse as %v, %v", products, again, err)
			}
		case errors.As(err, &ie):
			if products != nil {
				t.Fatal("products returned with an ImportError")
			}
			checkImportError(t, ie, bytes.Count(data, []byte("\n"))+1)
		case errors.Is(err, catalog.ErrNoProducts):
			if products != nil {
				t.Fatal("products returned with ErrNoProducts")
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}

func checkProducts(t *testing.T, products []catalog.Product) {
	t.Helper()
	if len(products) == 0 {
		t.Fatal("no products and no error")
	}
	seen := map[uint32]bool{}
	for _, p := range products {
		n := utf8.RuneCountInString(p.Name)
		switch {
		case p.SKU == 0 || seen[p.SKU]:
			t.Fatalf("sku %d is 0 or repeated", p.SKU)
		case !utf8.ValidString(p.Name), p.Name != strings.TrimSpace(p.Name), n < 1, n > 200,
			strings.IndexFunc(p.Name, unicode.IsControl) >= 0:
			t.Fatalf("name %q", p.Name)
		}
		seen[p.SKU] = true
	}
}

// writeCSV writes products as an import file, with a header.
func writeCSV(t *testing.T, products []catalog.Product) []byte {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"sku", "name", "price"})
	for _, p := range products {
		_ = w.Write([]string{strconv.FormatUint(uint64(p.SKU), 10), p.Name, strconv.FormatUint(uint64(p.Price), 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func checkImportError(t *testing.T, ie *catalog.ImportError, lines int) {
	t.Helper()
	if len(ie.Lines) == 0 {
		t.Fatal("ImportError without lines")
	}
	for i, l := range ie.Lines {
		if l.Line < 1 || l.Line > lines || l.Reason == "" || (i > 0 && l.Line < ie.Lines[i-1].Line) {
			t.Fatalf("bad line %d of %d: %+v (lines %v)", i, lines, l, ie.Lines)
		}
	}
	n := len(ie.Lines)
	want := 1 + min(n, 20)
	if n > 20 {
		want++
	}
	if got := strings.Count(ie.Error(), "\n") + 1; got != want {
		t.Fatalf("message of %d bad lines has %d text lines, want %d:\n%s", n, got, want, ie.Error())
	}
}

// countingRepo is a catalog.Repository that knows the odd skus and counts
// how often it was asked.
type countingRepo struct {
	calls int
	sku   uint32
	after uint32
	limit int
}

func (r *countingRepo) Get(_ context.Context, sku uint32) (catalog.Product, error) {
	r.calls++
	r.sku = sku
	if sku%2 == 0 {
		return catalog.Product{}, catalog.ErrNotFound
	}
	return catalog.Product{SKU: sku, Name: fmt.Sprint("product ", sku), Price: sku / 2}, nil
}

func (r *countingRepo) ListSKUs(_ context.Context, after uint32, limit int) ([]uint32, error) {
	r.calls++
	r.after, r.limit = after, limit
	var out []uint32
	for sku := uint64(after) + 1; sku <= math.MaxUint32 && len(out) < limit; sku += 2 {
		out = append(out, uint32(sku))
	}
	return out, nil
}

// FuzzServiceRequests decodes GetProduct (odd rpc) and ListSkus (even rpc)
// requests from raw bytes (binary and JSON) and passes them to the
// catalog.Service methods their handlers call; the token is the server's
// business (see services/product). GetProduct rejects sku 0 on "sku",
// ListSkus a count above 1000 on "count", before the repository is asked;
// otherwise the repository is asked exactly what the request says (a count
// of 0 is a page of 100) and its answer comes back, an unknown sku as
// ErrNotFound with a message naming it.
func FuzzServiceRequests(f *testing.F) {
	for _, sku := range []uint32{0, 1, 2, 773297411, math.MaxUint32} {
		f.Add(uint8(1), rpctest.Marshal(f, &productpb.GetProductRequest{Token: "t", Sku: sku}))
	}
	for _, c := range [][2]uint32{{0, 0}, {0, 1}, {5, 1000}, {5, 1001}, {math.MaxUint32 - 3, 100}, {1, math.MaxUint32}} {
		f.Add(uint8(0), rpctest.Marshal(f, &productpb.ListSkusRequest{Token: "t", StartAfterSku: c[0], Count: c[1]}))
	}
	f.Add(uint8(1), []byte(`{"token":"t","sku":773297411}`))
	f.Add(uint8(0), []byte(`{"startAfterSku":4294967295,"count":1000}`))
	f.Add(uint8(0), []byte(`{"start_after_sku":1,"count":"1001"}`))
	f.Fuzz(func(t *testing.T, rpc uint8, data []byte) {
		ctx := context.Background()
		if rpc%2 == 1 {
			for _, req := range rpctest.DecodeRequests(data, func() *productpb.GetProductRequest { return new(productpb.GetProductRequest) }) {
				repo := new(countingRepo)
				p, err := catalog.NewService(repo).Get(ctx, req.GetSku())
				sku := req.GetSku()
				switch {
				case sku == 0:
					expectValidation(t, err, "sku")
					if repo.calls != 0 {
						t.Fatal("a rejected request reached the repository")
					}
				case repo.calls != 1 || repo.sku != sku:
					t.Fatalf("sku %d: repository asked %d times about %d", sku, repo.calls, repo.sku)
				case sku%2 == 0:
					if !errors.Is(err, catalog.ErrNotFound) || err.Error() != fmt.Sprintf("sku %d is not in the catalog", sku) {
						t.Fatalf("unknown sku %d: %v", sku, err)
					}
				case err != nil || p.SKU != sku:
					t.Fatalf("sku %d: %+v, %v", sku, p, err)
				}
			}
			return
		}
		for _, req := range rpctest.DecodeRequests(data, func() *productpb.ListSkusRequest { return new(productpb.ListSkusRequest) }) {
			repo := new(countingRepo)
			skus, err := catalog.NewService(repo).ListSKUs(ctx, req.GetStartAfterSku(), req.GetCount())
			count := req.GetCount()
			if count > 1000 {
				expectValidation(t, err, "count")
				if repo.calls != 0 {
					t.Fatal("a rejected request reached the repository")
				}
				continue
			}
			want := int(count)
			if count == 0 {
				want = 100
			}
			if err != nil || repo.calls != 1 || repo.after != req.GetStartAfterSku() || repo.limit != want || len(skus) > want {
				t.Fatalf("%v: %d skus, %v; repository asked %d times for %d after %d", req, len(skus), err, repo.calls, repo.limit, repo.after)
			}
			for i, sku := range skus {
				if sku <= req.GetStartAfterSku() || (i > 0 && sku <= skus[i-1]) {
					t.Fatalf("skus %v after %d", skus, req.GetStartAfterSku())
				}
			}
		}
	})
}

// expectValidation fails unless err is a *validate.Error on field.
func expectValidation(t *testing.T, err error, field string) {
	t.Helper()
	var ve *validate.Error
	if !errors.As(err, &ve) || ve.Field != field || !strings.HasPrefix(err.Error(), field+": ") {
		t.Fatalf("error %v, want a validation error on %s", err, field)
	}
}
