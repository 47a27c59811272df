package systest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	productpb "github.com/minizon/minizon/gen/route256/product"
	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/migrate"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/seed"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/checkout/products"
	"github.com/minizon/minizon/services/product"
)

// wrongToken is a token no test server accepts, distinctive enough that
// finding it anywhere means it leaked.
const wrongToken = "wrong-secret-token-5b2f9e71"

// TestSecretsTokensNeverReachLogsOrErrors runs the real ProductService and
// Checkout's real client of it, both logging into buffers, and calls with a
// wrong and a right token over every protocol Checkout may be configured
// with. Neither token may show in either log, in any error text, or in the
// metadata of an error.
func TestSecretsTokensNeverReachLogsOrErrors(t *testing.T) {
	t.Parallel()
	base, serverLogs := startCatalog(t)
	clientLogs := &rpctest.LogBuffer{}
	clientLog := slog.New(slog.NewJSONHandler(clientLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secrets := []string{tokenA, tokenB, wrongToken}
	sample := seed.Products(seed.SampleSKUs()[:1])[0]

	var errs []error
	for _, protocol := range []string{rpcclient.ProtocolConnect, rpcclient.ProtocolGRPC, rpcclient.ProtocolGRPCWeb} {
		t.Run(protocol, func(t *testing.T) {
			dep, err := rpcclient.New("ProductService", rpcclient.Config{Addr: base, Protocol: protocol, Timeout: 5 * time.Second},
				clientLog, telemetry.Nop())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(dep.Close)
			client := func(token string) *products.Client {
				c := products.New(dep, products.Config{Token: token, Concurrency: 2})
				t.Cleanup(c.Close)
				return c
			}

			// A wrong token: Checkout's callers get Internal naming the
			// setting to fix, never the token.
			_, err = client(wrongToken).Products(t.Context(), []uint32{sample.SKU})
			if connect.CodeOf(err) != connect.CodeInternal || !strings.Contains(err.Error(), "PRODUCT_TOKEN") {
				t.Fatalf("wrong token: %v, want internal naming PRODUCT_TOKEN", err)
			}
			errs = append(errs, err)

			// The right tokens work, the first and the last accepted one.
			for _, token := range []string{tokenA, tokenB} {
				got, err := client(token).Products(t.Context(), []uint32{sample.SKU})
				if err != nil || got[0].Name != sample.Name {
					t.Fatalf("token %d: %v, %v", len(token), got, err)
				}
			}
		})
	}

	// The generated client directly, as any other caller would call, with
	// tokens that differ from an accepted one in their first byte, last byte
	// or length: every refusal is the same answer, so the answer tells a
	// caller nothing about how close a guess came.
	for name, c := range rpctest.Clients(t, base, productconnect.NewProductServiceClient) {
		var first *connect.Error
		for _, token := range []string{wrongToken, "x" + tokenA[1:], tokenA[:len(tokenA)-1] + "x",
			tokenA[:len(tokenA)-1], tokenA + tokenB, strings.Repeat(tokenA, 4096)} {
			_, err := c.GetProduct(t.Context(), &productpb.GetProductRequest{Token: token, Sku: sample.SKU})
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeUnauthenticated {
				t.Fatalf("%s: token of %d bytes: %v, want unauthenticated", name, len(token), err)
			}
			if first == nil {
				first = ce
			} else if ce.Message() != first.Message() {
				t.Fatalf("%s: refusals differ: %q and %q", name, first.Message(), ce.Message())
			}
			errs = append(errs, err)
			for k, vs := range ce.Meta() {
				errs = append(errs, errors.New(k+": "+strings.Join(vs, ",")))
			}
		}
	}

	for _, err := range errs {
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("an error holds a token: %v", err)
			}
		}
	}
	for name, logs := range map[string]string{"ProductService": serverLogs.String(), "Checkout": clientLogs.String()} {
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("%s's log holds a token:\n%s", name, logs)
			}
		}
	}
	// The logs were written: the refusals are in both.
	if !strings.Contains(serverLogs.String(), `"code":"unauthenticated"`) {
		t.Fatalf("ProductService logged no refusal:\n%s", serverLogs.String())
	}
	if !strings.Contains(clientLogs.String(), "refused the token") {
		t.Fatalf("Checkout logged no refusal:\n%s", clientLogs.String())
	}
}

// TestSecretsRefusalOverRawHTTP: what a caller without a generated client
// sees (a Connect JSON POST and a GET with the message in the query) holds
// no token, the offered one included.
func TestSecretsRefusalOverRawHTTP(t *testing.T) {
	t.Parallel()
	base, logs := startCatalog(t)
	body := `{"token":"` + wrongToken + `","sku":773297411}`
	for name, req := range map[string]func() (*http.Request, error){
		"POST": func() (*http.Request, error) {
			r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+productconnect.ProductServiceGetProductProcedure,
				strings.NewReader(body))
			if err == nil {
				r.Header.Set("Content-Type", "application/json")
			}
			return r, err
		},
		"GET": func() (*http.Request, error) {
			return http.NewRequestWithContext(t.Context(), http.MethodGet, base+productconnect.ProductServiceGetProductProcedure+
				"?connect=v1&encoding=json&message="+strings.ReplaceAll(body, `"`, "%22"), nil)
		},
	} {
		r, err := req()
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: status %d %s, want 401", name, res.StatusCode, b)
		}
		var all bytes.Buffer
		all.Write(b)
		for k, v := range res.Header {
			all.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
		for _, s := range []string{wrongToken, tokenA, tokenB} {
			if strings.Contains(all.String(), s) {
				t.Fatalf("%s: the answer holds a token:\n%s", name, all.String())
			}
		}
	}
	for _, s := range []string{wrongToken, tokenA, tokenB} {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("the log holds a token:\n%s", logs.String())
		}
	}
}

// The tokens startCatalog's ProductService accepts.
const (
	tokenA = "token-a-3f9c"
	tokenB = "token-b-77e1"
)

// startCatalog runs the real ProductService with the demo catalog on a
// fresh database, accepting tokenA and tokenB, on a loopback port, and
// returns its base URL and log.
func startCatalog(t *testing.T) (string, *rpctest.LogBuffer) {
	t.Helper()
	logs := &rpctest.LogBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	url := pg.NewDatabase(t, "product", func(ctx context.Context, url string) error { return migrate.Up(ctx, url, "product") })
	ctx, cancel := context.WithCancel(context.Background())
	app, err := product.Open(ctx, product.Config{DatabaseURL: url, Tokens: []string{tokenA, tokenB}, SeedDemo: true}, platform.Deps{Log: log, Tel: telemetry.Nop()})
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
