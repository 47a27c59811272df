package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/loadgen"
	"github.com/minizon/minizon/internal/pgtest"
	"github.com/minizon/minizon/internal/seed"
)

// startDev runs `minizon dev` in-process on a free port, with its own
// embedded Postgres and Kafka and the seeded demo catalog, and returns its
// base URL. It stops when the test ends. It sets the environment, so its
// test cannot run in parallel.
func startDev(t *testing.T) string {
	t.Helper()
	// The embedded Postgres runs as the postgres user when we are root: it
	// must be able to reach its data directory.
	dir := pgtest.ReachableTempDir(t)
	for k, v := range map[string]string{
		"MINIZON_ADDR": "127.0.0.1:0", "MINIZON_DATA_DIR": dir, "MINIZON_LOG_LEVEL": "warn", "MINIZON_SEED": "true",
		"MINIZON_DEBUG_ADDR": "", "LOMS_PAYMENT_TIMEOUT": "",
		"DATABASE_URL": "", "KAFKA_BROKERS": "", "MINIZON_KAFKA_PORT": "", "NOTIFY_WEBHOOK_URL": "",
		"LOMS_ADDR": "", "PRODUCT_ADDR": "", "PRODUCT_TOKEN": "", "PRODUCT_TOKENS": "",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logLines{}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runLogging(ctx, []string{"dev"}, pw, logs)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop after cancellation")
		}
		if t.Failed() {
			logs.mu.Lock()
			defer logs.mu.Unlock()
			for _, l := range logs.lines[max(0, len(logs.lines)-30):] {
				t.Log(l)
			}
		}
	})
	base, _ := readBanner(t, pr, done)
	return base
}

// bench runs `minizon bench ARGS -json` and decodes its summary.
func bench(t *testing.T, args ...string) *loadgen.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := runBench(ctx, append(args, "-json"), &out, io.Discard); err != nil {
		t.Fatalf("bench %v: %v\n%s", args, err, out.Bytes())
	}
	var sum loadgen.Summary
	if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
		t.Fatalf("bench %v printed %q: %v", args, out.Bytes(), err)
	}
	return &sum
}

// `minizon bench` drives every scenario against a running `minizon dev`
// over each protocol: -n iterations of the primary RPC, no failures on a
// healthy system, and latencies that were measured.
func TestBenchAgainstDev(t *testing.T) {
	base := startDev(t)
	const n = 40
	for _, protocol := range []string{"grpc", "connect", "grpc-web"} {
		for _, tc := range []struct {
			scenario string
			args     []string
			// check looks at the RPCs beyond the primary one.
			check func(t *testing.T, sum *loadgen.Summary)
		}{
			{scenario: "noop"},
			{scenario: "stocks"},
			{scenario: "create-order", check: func(t *testing.T, sum *loadgen.Summary) {
				// -settle mix: every order awaits payment and is paid or
				// cancelled.
				if settled := sum.RPC("OrderPayed").Requests + sum.RPC("CancelOrder").Requests; settled != n {
					t.Errorf("%d orders paid or cancelled, want %d", settled, n)
				}
			}},
			// The demo's stock of one sku may sell out over the protocols:
			// a sold-out order is still a successful call.
			{scenario: "flash-sale"},
			{scenario: "list-cart", args: []string{"-items", "5"}},
			{scenario: "journey", check: func(t *testing.T, sum *loadgen.Summary) {
				want := map[string]int64{"AddToCart": 3 * n, "ListCart": n, "OrderPayed": n}
				for rpc, w := range want {
					if got := sum.RPC(rpc); got.Requests != w || got.OK != w {
						t.Errorf("%s: %+v, want %d calls", rpc, got, w)
					}
				}
			}},
		} {
			t.Run(protocol+"/"+tc.scenario, func(t *testing.T) {
				args := append([]string{"-addr", base, "-protocol", protocol, "-scenario", tc.scenario,
					"-n", "40", "-c", "4", "-warmup", "0"}, tc.args...)
				sum := bench(t, args...)
				if sum.Scenario != tc.scenario || sum.Protocol != protocol || sum.Concurrency != 4 {
					t.Errorf("summary of %s over %s, -c %d", sum.Scenario, sum.Protocol, sum.Concurrency)
				}
				if sum.Errors() != 0 {
					t.Errorf("%d calls failed: %+v", sum.Errors(), sum.RPCs)
				}
				primary := sum.RPC(sum.Primary)
				if primary.Requests != n || primary.OK != n {
					t.Errorf("%s: %d calls, %d ok; want %d", sum.Primary, primary.Requests, primary.OK, n)
				}
				if primary.Latency.P50 <= 0 || primary.Latency.Max < primary.Latency.P50 || sum.RPS <= 0 {
					t.Errorf("%s: rate %v, latency %+v", sum.Primary, sum.RPS, primary.Latency)
				}
				if tc.check != nil {
					tc.check(t, sum)
				}
			})
		}
	}

	// watch holds streams open and pays some of their orders: each payment
	// reaches its watcher, over every protocol, and the server's memory is
	// read.
	for _, protocol := range []string{"grpc", "connect", "grpc-web"} {
		t.Run(protocol+"/watch", func(t *testing.T) {
			sum := bench(t, "-addr", base, "-protocol", protocol, "-scenario", "watch", "-streams", "30", "-rate", "20",
				"-d", "2s", "-warmup", "0", "-c", "4", "-fail-on-error")
			f := sum.Watch
			if sum.Scenario != "watch" || f == nil || f.Streams != 30 || f.Lost != 0 || f.RSSOpenMiB <= 0 || f.RSSBeforeMiB <= 0 {
				t.Fatalf("summary %+v, figures %+v", sum, f)
			}
			heard, paid := sum.RPC("WatchOrder change"), sum.RPC("OrderPayed")
			if heard.OK == 0 || heard.OK != paid.OK || heard.Latency.P99 <= 0 {
				t.Errorf("%d changes heard of %d paid: %+v", heard.OK, paid.OK, heard)
			}
			if open := sum.RPC("WatchOrder opening"); open.OK != 30 || open.Errors != 0 {
				t.Errorf("opening: %+v, want 30 streams", open)
			}
		})
	}

	// A duration run with a warm-up measures a window that long. The window
	// is long enough for calls to end in it on a busy machine (calls cut
	// off by its end are not counted).
	t.Run("duration", func(t *testing.T) {
		sum := bench(t, "-addr", base, "-scenario", "stocks", "-d", "2s", "-warmup", "100ms", "-c", "2")
		if sum.DurationSeconds < 2 || sum.RPC("Stocks").OK == 0 || sum.Errors() != 0 {
			t.Errorf("summary %+v", sum)
		}
	})

	// Without -json a person reads a table of every RPC.
	t.Run("text", func(t *testing.T) {
		var out strings.Builder
		err := runBench(t.Context(), []string{"-addr", base, "-scenario", "create-order", "-settle", "pay",
			"-n", "4", "-c", "2", "-warmup", "0"}, &out, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"scenario create-order, 2 workers", "CreateOrder: ", "requests/s", "p99 ms", "OrderPayed"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})
}

// countingServer answers every request 404 and counts them.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// Bad flags are refused before any call reaches the target.
func TestBenchRefusesBadFlags(t *testing.T) {
	t.Parallel()
	baseArgs := func(addr string) []string {
		return []string{"-addr", addr, "-protocol", "connect", "-scenario", "stocks", "-n", "1", "-warmup", "0"}
	}
	// The control: the same flags with nothing bad do reach the target,
	// and a run where no call succeeds is an error.
	control, controlHits := countingServer(t)
	if err := runBench(t.Context(), baseArgs(control.URL), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "no Stocks call succeeded") || controlHits.Load() == 0 {
		t.Fatalf("bench against a server that answers 404: %v after %d requests", err, controlHits.Load())
	}

	srv, hits := countingServer(t)
	// Cleanups run last first: the count is read once every parallel
	// subtest is done, and the server closes after.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown scenario", []string{"-scenario", "nope"}, `unknown scenario "nope"`},
		{"unknown protocol", []string{"-protocol", "smoke"}, `unknown protocol "smoke"`},
		{"downward sku range", []string{"-skus", "5-1"}, "-skus"},
		{"sku zero", []string{"-skus", "0"}, "-skus"},
		{"unknown settle mode", []string{"-scenario", "create-order", "-settle", "later"}, `unknown settle mode "later"`},
		{"more items than skus", []string{"-scenario", "list-cart", "-skus", "1-3", "-items", "4"},
			"items must be between 1 and the 3 distinct skus"},
		{"no workers", []string{"-c", "0"}, "concurrency"},
		{"negative count", []string{"-n", "-1"}, "negative"},
		{"no timeout", []string{"-timeout", "0"}, "timeout"},
		{"bad address", []string{"-addr", "ftp://x"}, "scheme"},
		{"unknown flag", []string{"-rps", "100"}, "-rps"},
		{"argument", []string{"stocks"}, `unexpected argument "stocks"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append(baseArgs(srv.URL), tc.args...)
			err := runBench(t.Context(), args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("bench %v: %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
	t.Cleanup(func() {
		if n := hits.Load(); n != 0 {
			t.Errorf("%d requests reached the target", n)
		}
	})
}

// -h lists the scenarios and flags and is not an error.
func TestBenchHelp(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := runBench(t.Context(), []string{"-h"}, &out, io.Discard); err != nil {
		t.Fatalf("-h: %v", err)
	}
	for _, s := range loadgen.Scenarios {
		if !strings.Contains(out.String(), "  "+s.Name+" ") {
			t.Errorf("usage does not list scenario %s:\n%s", s.Name, out.String())
		}
	}
	for _, flag := range []string{"-scenario", "-protocol", "-skus", "-settle", "-warmup", "-json"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("usage does not list %s", flag)
		}
	}
}

// -skus takes the seeded catalog, a range or a list.
func TestBenchParseSKUs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []uint32
	}{
		{"catalog", seed.SKUs(seed.CatalogSize)},
		{"1-3", []uint32{1, 2, 3}},
		{"9-9", []uint32{9}},
		{"7,8", []uint32{7, 8}},
		{" 7, 8 ", []uint32{7, 8}},
		{"42", []uint32{42}},
		{"4294967294-4294967295", []uint32{4294967294, 4294967295}},
	} {
		got, err := parseSKUs(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("parseSKUs(%q) = %v, %v; want %v", tc.in, head(got), err, head(tc.want))
		}
	}
	for _, in := range []string{"0", "a-b", "5-1", "", "1-", "-3", "7,,8", "7,x", "4294967296", "1-20000000", "catalogue"} {
		if got, err := parseSKUs(in); err == nil {
			t.Errorf("parseSKUs(%q) = %v, want an error", in, head(got))
		}
	}
}

// head is the start of a long sku list, for messages.
func head(skus []uint32) []uint32 { return skus[:min(len(skus), 5)] }

// TestBenchHelpHidesTheToken: the usage names where the token comes from,
// never the token itself.
func TestBenchHelpHidesTheToken(t *testing.T) {
	t.Setenv("MINIZON_AUTH_TOKEN", "bench-secret-Zq9-0123456789")
	var out strings.Builder
	if err := runBench(t.Context(), []string{"-h"}, &out, io.Discard); err != nil {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(out.String(), "-auth-token") {
		t.Error("usage does not list -auth-token")
	}
	if strings.Contains(out.String(), "Zq9") {
		t.Errorf("usage shows the token:\n%s", out.String())
	}
}
