package platform_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
)

// TestSecretsCORSNeverAllowsCredentials: whatever MINIZON_CORS_ORIGINS
// holds, no answer lets a browser send cookies or HTTP authentication
// cross-origin (no Access-Control-Allow-Credentials), "*" is answered as the
// literal "*" that browsers never combine with credentials (never the
// caller's origin echoed), an echoed origin comes with Vary: Origin so that
// no cache hands one origin's answer to another, and a page on the public
// internet is not let into a private-network service. TestCORS covers the
// basic allow and refuse cases.
func TestSecretsCORSNeverAllowsCredentials(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		origins    []string
		origin     string
		wantOrigin string
	}{
		{"any origin", []string{"*"}, "https://evil.example", "*"},
		{"any origin among others", []string{"https://shop.example", "*"}, "https://shop.example", "*"},
		{"listed origin", []string{"https://a.example", "https://shop.example"}, "https://shop.example", "https://shop.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig()
			cfg.AllowedOrigins = tc.origins
			h := startServer(t, cfg, newImpl())

			pre := browserRequest(t, http.MethodOptions, h.base+lomsv1connect.LomsServiceStocksProcedure, "", map[string]string{
				"Origin":                                 tc.origin,
				"Access-Control-Request-Method":          "POST",
				"Access-Control-Request-Headers":         "connect-protocol-version,content-type",
				"Access-Control-Request-Private-Network": "true",
				"Cookie":                                 "session=s3cr3t",
			})
			// With credentials, a browser sends Cookie and Authorization on
			// the actual request.
			post := browserRequest(t, http.MethodPost, h.base+lomsv1connect.LomsServiceStocksProcedure, `{"sku":3}`, map[string]string{
				"Origin": tc.origin, "Content-Type": "application/json", "Connect-Protocol-Version": "1",
				"Cookie": "session=s3cr3t", "Authorization": "Basic dTpw",
			})
			if post.StatusCode != http.StatusOK {
				t.Fatalf("POST status %d", post.StatusCode)
			}
			for name, res := range map[string]*http.Response{"preflight": pre, "POST": post} {
				if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != tc.wantOrigin {
					t.Errorf("%s: Access-Control-Allow-Origin %q, want exactly %q", name, got, tc.wantOrigin)
				}
				if got, ok := res.Header["Access-Control-Allow-Credentials"]; ok {
					t.Errorf("%s: Access-Control-Allow-Credentials %q: credentials must never be allowed", name, got)
				}
				if got, ok := res.Header["Access-Control-Allow-Private-Network"]; ok {
					t.Errorf("%s: Access-Control-Allow-Private-Network %q", name, got)
				}
				if tc.wantOrigin != "*" && !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
					t.Errorf("%s: the origin is echoed without Vary: Origin (%v)", name, res.Header.Values("Vary"))
				}
			}
		})
	}
}

// TestSecretsCORSRefusesLookalikeOrigins: an allow-list entry matches that
// exact origin only: not a longer host that starts with it, not another
// scheme or port, not "null" (sandboxed frames, file: pages).
func TestSecretsCORSRefusesLookalikeOrigins(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.AllowedOrigins = []string{"https://shop.example"}
	h := startServer(t, cfg, newImpl())
	for _, origin := range []string{
		"https://shop.example.evil.test",
		"https://evilshop.example",
		"https://evil.example/https://shop.example",
		"http://shop.example",
		"https://shop.example:8443",
		"null",
	} {
		pre := preflight(t, h.base, origin)
		post := browserRequest(t, http.MethodPost, h.base+lomsv1connect.LomsServiceStocksProcedure, `{"sku":3}`, map[string]string{
			"Origin": origin, "Content-Type": "application/json", "Connect-Protocol-Version": "1",
		})
		for name, res := range map[string]*http.Response{"preflight": pre, "POST": post} {
			if got := corsHeaders(res.Header); len(got) > 0 {
				t.Errorf("%s from %s: CORS headers %v, want none", name, origin, got)
			}
		}
	}
}

// panicker is a LomsService whose Stocks panics with a value holding a
// secret, as a bug deep in a handler might.
type panicker struct {
	lomsv1connect.UnimplementedLomsServiceHandler
}

const panicSecret = "panic-secret-0f3e"

func (panicker) Stocks(_ context.Context, req *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	if req.GetSku() == 13 {
		panic("cannot reach postgres://u:" + panicSecret + "@db/loms")
	}
	return &lomsv1.StocksResponse{}, nil
}

// TestSecretsHandlerPanicAnswersInternalAndIsLogged: a panic is a bug in the
// server, contained to its call (the process goes on serving, the caller
// never sees the panic's value), so the caller gets Internal (not Unavailable, which invites a
// retry of a call that may have half run), the RPC gets its log line and
// metric like any other failure, and the cause is logged at error level.
// It needs connect.WithRecover among the platform's handler options.
func TestSecretsHandlerPanicAnswersInternalAndIsLogged(t *testing.T) {
	t.Parallel()
	logs := &rpctest.LogBuffer{}
	base := servePanicker(t, logs, panicker{})
	for _, tc := range []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect", http1(t), []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", h2c(t), []connect.ClientOption{connect.WithGRPC()}},
		{"grpcweb", http1(t), []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		c := lomsv1connect.NewLomsServiceClient(tc.client, base, tc.opts...)
		_, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 13})
		if connect.CodeOf(err) != connect.CodeInternal {
			t.Errorf("%s: a panicking handler answers %v, want code internal", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), panicSecret) {
			t.Errorf("%s: the caller sees the panic: %v", tc.name, err)
		}
		// The process goes on serving.
		if _, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1}); err != nil {
			t.Fatalf("%s: the server stopped serving after a panic: %v", tc.name, err)
		}
	}
	var panicked int
	for _, l := range rpcLines(t, logs.String()) {
		if l.Code == "internal" && l.Level == "ERROR" {
			panicked++
		}
	}
	if panicked != 3 {
		t.Errorf("%d rpc lines with code internal at error level, want 3:\n%s", panicked, logs.String())
	}
}

// servePanicker serves impl on a loopback port with the platform's handler
// options, logging into logs, until the test ends; it returns the base URL.
func servePanicker(t *testing.T, logs *rpctest.LogBuffer, impl lomsv1connect.LomsServiceHandler) string {
	t.Helper()
	return "http://" + serveServiceLogging(t, baseConfig(), impl, slog.New(slog.NewJSONHandler(logs, nil)))
}

// TestSecretsCORSRefusesWildcardsInsideOrigins: rs/cors reads a * inside an
// entry as a wildcard, so https://*shop.example would let
// https://evilshop.example in; only a lone * (any origin, no credentials)
// is accepted.
func TestSecretsCORSRefusesWildcardsInsideOrigins(t *testing.T) {
	for _, origins := range [][]string{{"https://*shop.example"}, {"https://*"}, {"https://shop.example", "http://*.example"}} {
		cfg := platform.ReadConfig(envconf.FromMap(nil))
		cfg.AllowedOrigins = origins
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "MINIZON_CORS_ORIGINS") {
			t.Errorf("%q: %v, want refused", origins, err)
		}
	}
	for _, origins := range [][]string{{"*"}, {"https://shop.example", "http://localhost:5173"}} {
		cfg := platform.ReadConfig(envconf.FromMap(nil))
		cfg.AllowedOrigins = origins
		if err := cfg.Validate(); err != nil {
			t.Errorf("%q: %v", origins, err)
		}
	}
}
