package product_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/seed"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/product"
	"github.com/minizon/minizon/services/product/catalog"
	"github.com/minizon/minizon/services/product/store"
)

var pg *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// The tokens the test servers accept.
const (
	tokenA = "token-a-3f9c"
	tokenB = "token-b-77e1"
)

// newDatabase returns the URL of a fresh, migrated product database.
func newDatabase(t *testing.T) string {
	t.Helper()
	return pg.NewDatabase(t, "product", func(ctx context.Context, url string) error {
		return migrate.Up(ctx, url, "product")
	})
}

// startProduct runs the real ProductService with the demo catalog on a
// fresh database, on a loopback port, and returns its base URL and log.
func startProduct(t *testing.T) (string, *rpctest.LogBuffer) {
	t.Helper()
	logs := &rpctest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	cfg := product.Config{DatabaseURL: newDatabase(t), Tokens: []string{tokenA, tokenB}, SeedDemo: true}
	ctx, cancel := context.WithCancel(context.Background())
	app, err := product.Open(ctx, cfg, platform.Deps{Log: log, Tel: telemetry.Nop()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := rpctest.NewServer(t, platform.Config{ShutdownTimeout: 5 * time.Second}, log)
	srv.MountApp(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		app.Close(context.Background())
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		app.Close(context.Background())
	})
	return "http://" + ln.Addr().String(), logs
}

// clients returns a ProductService client per protocol: Connect (JSON) and
// gRPC-Web over HTTP/1.1, gRPC over cleartext HTTP/2.
func clients(t *testing.T, base string) map[string]productconnect.ProductServiceClient {
	return rpctest.Clients(t, base, productconnect.NewProductServiceClient)
}

func TestProductServiceOverEveryProtocol(t *testing.T) {
	t.Parallel()
	base, logs := startProduct(t)
	catalogSKUs := seed.SKUs(seed.CatalogSize)
	for name, c := range clients(t, base) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			get := func(token string, sku uint32) (*productpb.GetProductResponse, error) {
				return c.GetProduct(ctx, &productpb.GetProductRequest{Token: token, Sku: sku})
			}
			list := func(token string, after, count uint32) (*productpb.ListSkusResponse, error) {
				return c.ListSkus(ctx, &productpb.ListSkusRequest{Token: token, StartAfterSku: after, Count: count})
			}

			// The token comes first: a bad request with a bad token is
			// unauthenticated, whatever else is wrong with it.
			for _, sku := range []uint32{0, 1, seed.SampleSKUs()[0]} {
				_, err := get("", sku)
				wantCode(t, err, connect.CodeUnauthenticated, "token: missing")
				_, err = get("wrong-token-8d1e", sku)
				wantCode(t, err, connect.CodeUnauthenticated, "token: not accepted")
				_, err = get(tokenA+"x", sku)
				wantCode(t, err, connect.CodeUnauthenticated, "token: not accepted")
			}
			_, err := list("", 0, 0)
			wantCode(t, err, connect.CodeUnauthenticated, "token: missing")
			_, err = list("wrong-token-8d1e", 0, 5000)
			wantCode(t, err, connect.CodeUnauthenticated, "token: not accepted")

			_, err = get(tokenA, 0)
			wantCode(t, err, connect.CodeInvalidArgument, "sku")
			_, err = get(tokenA, 123)
			wantCode(t, err, connect.CodeNotFound, "sku 123 is not in the catalog")

			// Every accepted token works.
			for i, want := range seed.Products(seed.SampleSKUs()) {
				res, err := get([]string{tokenA, tokenB}[i%2], want.SKU)
				if err != nil {
					t.Fatal(err)
				}
				if res.GetName() != want.Name || res.GetPrice() != want.Price {
					t.Fatalf("sku %d: got %q for %d, want %q for %d", want.SKU, res.GetName(), res.GetPrice(), want.Name, want.Price)
				}
			}

			res, err := list(tokenB, 0, 0)
			if err != nil || !slices.Equal(res.GetSkus(), catalogSKUs[:catalog.DefaultPage]) {
				t.Fatalf("default page: %d skus, %v; want the first %d", len(res.GetSkus()), err, catalog.DefaultPage)
			}
			_, err = list(tokenA, 0, catalog.MaxPage+1)
			wantCode(t, err, connect.CodeInvalidArgument, "count")

			// Paging through the whole catalog yields every sku once, in
			// ascending order.
			var all []uint32
			after := uint32(0)
			for {
				res, err := list(tokenA, after, catalog.MaxPage)
				if err != nil {
					t.Fatal(err)
				}
				skus := res.GetSkus()
				if len(skus) > catalog.MaxPage || (after == 0 && len(skus) != catalog.MaxPage) {
					t.Fatalf("page of %d skus after %d, want %d", len(skus), after, catalog.MaxPage)
				}
				if len(skus) == 0 {
					break
				}
				all = append(all, skus...)
				after = skus[len(skus)-1]
			}
			if !slices.Equal(all, catalogSKUs) {
				t.Fatalf("paged %d skus, want the %d of the catalog in order", len(all), len(catalogSKUs))
			}
			for _, s := range seed.SampleSKUs() {
				if !slices.Contains(all, s) {
					t.Fatalf("sample sku %d not listed", s)
				}
			}
		})
	}
	// Tokens are secrets: neither the accepted nor the offered ones may
	// reach the log.
	l := logs.String()
	for _, secret := range []string{tokenA, tokenB, "wrong-token-8d1e"} {
		if strings.Contains(l, secret) {
			t.Fatalf("the log holds a token: %s", l)
		}
	}
	if !strings.Contains(l, `"code":"unauthenticated"`) {
		t.Fatalf("no RPC was logged: %s", l)
	}
}

// TestReadsAnswerGET: both RPCs have no side effects, so Connect clients
// may use GET.
func TestReadsAnswerGET(t *testing.T) {
	t.Parallel()
	base, _ := startProduct(t)
	var methods []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		methods = append(methods, r.Method)
		return http.DefaultTransport.RoundTrip(r)
	})
	c := productconnect.NewProductServiceClient(&http.Client{Transport: rt}, base, connect.WithHTTPGet())
	sample := seed.Products(seed.SampleSKUs()[:1])[0]
	res, err := c.GetProduct(t.Context(), &productpb.GetProductRequest{Token: tokenA, Sku: sample.SKU})
	if err != nil || res.GetName() != sample.Name {
		t.Fatalf("got %v, %v; want %q", res, err, sample.Name)
	}
	if _, err := c.ListSkus(t.Context(), &productpb.ListSkusRequest{Token: tokenA, Count: 3}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(methods, []string{http.MethodGet, http.MethodGet}) {
		t.Fatalf("methods %v, want two GETs", methods)
	}
}

// TestDatabaseDownIsUnavailable: callers get Unavailable naming the
// dependency, not Internal and not the driver's text.
func TestDatabaseDownIsUnavailable(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1.
	pool, err := pgxpool.New(t.Context(), "postgres://postgres@127.0.0.1:1/product?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	srv := rpctest.NewServer(t, platform.Config{ShutdownTimeout: time.Second}, log)
	svc := catalog.NewService(store.New(pool))
	path, h := productconnect.NewProductServiceHandler(product.NewServer(svc, []string{tokenA}, log), srv.HandlerOptions()...)
	srv.Mount(productconnect.ProductServiceName, path, h)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c := productconnect.NewProductServiceClient(hs.Client(), hs.URL)
	_, err = c.GetProduct(t.Context(), &productpb.GetProductRequest{Token: tokenA, Sku: 1})
	wantCode(t, err, connect.CodeUnavailable, "database")
	_, err = c.ListSkus(t.Context(), &productpb.ListSkusRequest{Token: tokenA})
	wantCode(t, err, connect.CodeUnavailable, "database")
	// The token check needs no database.
	_, err = c.ListSkus(t.Context(), &productpb.ListSkusRequest{Token: "nope"})
	wantCode(t, err, connect.CodeUnauthenticated, "token")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func wantCode(t *testing.T, err error, code connect.Code, inMessage string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
	if !strings.Contains(ce.Message(), inMessage) {
		t.Fatalf("message %q does not name %q", ce.Message(), inMessage)
	}
}
