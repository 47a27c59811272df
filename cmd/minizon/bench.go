package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/grpchealth"

	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/loadgen"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/seed"
	"github.com/minizon/minizon/internal/telemetry"
)

const benchUsage = `usage: minizon bench [flags]

Drives load against a miniZON deployment through the generated clients and
prints requests/s, failures by Connect code and latency percentiles (HDR
histogram) per RPC. Progress goes to stderr once a second.

Scenarios:
`

// runBench runs `minizon bench`.
func runBench(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", "http://"+platform.DefaultAddr, "address of every service (`URL`), as `minizon dev` serves them")
	lomsAddr := fs.String("loms", "", "LOMS's address (`URL`; default -addr)")
	checkoutAddr := fs.String("checkout", "", "Checkout's address (`URL`; default -addr)")
	protocol := fs.String("protocol", "grpc", "`protocol`: connect, grpc or grpc-web")
	scenario := fs.String("scenario", "create-order", "`name` of the scenario (see above)")
	concurrency := fs.Int("c", 16, "concurrent workers, one call in flight each")
	duration := fs.Duration("d", 10*time.Second, "measured `duration` (ignored with -n)")
	requests := fs.Int64("n", 0, "run this many iterations in all instead of for a duration")
	warmup := fs.Duration("warmup", time.Second, "unmeasured warm-up before the measured window")
	items := fs.Int("items", 0, "skus per order or cart (default: 3; 50 for list-cart; flash-sale orders 1)")
	settle := fs.String("settle", loadgen.SettleMix, "create-order: `mode` mix (pay one, cancel the next), pay, cancel or none")
	skus := fs.String("skus", "catalog", "skus to pick from: `list`: catalog (the demo catalog minizon dev seeds), a range 1-10000 or a list 1,2,3; "+
		"flash-sale orders only the first listed")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline of each call")
	// The default is not the flag's: PrintDefaults would show the secret.
	authToken := fs.String("auth-token", "", "bearer `token` for the RPCs that change state, when the services ask for one (default $MINIZON_AUTH_TOKEN)")
	streams := fs.Int("streams", 1000, "watch: WatchOrder `streams` held open, one order each")
	rate := fs.Float64("rate", 100, "watch: watched orders paid per `second`, each replaced by a new one")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	failOnError := fs.Bool("fail-on-error", false, "exit 1 if any call failed (for scripts and CI)")
	fs.Usage = func() {
		fmt.Fprint(out, benchUsage)
		for _, s := range loadgen.Scenarios {
			fmt.Fprintf(out, "  %-13s %s\n", s.Name, s.About)
		}
		fmt.Fprintln(out, "\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected argument %q", fs.Arg(0))
	}
	skuList, err := parseSKUs(*skus)
	if err != nil {
		return fmt.Errorf("bench: -skus: %w", err)
	}
	opts := loadgen.Options{Concurrency: *concurrency, Duration: *duration, Requests: *requests, Warmup: *warmup,
		Progress: progress, ProgressEvery: time.Second}
	if *requests > 0 {
		opts.Duration = 0
	}
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	dial := func(name, a string) (*rpcclient.Dependency, error) {
		return rpcclient.New(name, rpcclient.Config{Addr: cmp.Or(a, *addr), Protocol: *protocol, Timeout: *timeout,
			IdleConns: *concurrency, AuthToken: cmp.Or(*authToken, os.Getenv("MINIZON_AUTH_TOKEN"))}, slog.New(slog.DiscardHandler), telemetry.Nop())
	}
	loms, err := dial("LOMS", *lomsAddr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer loms.Close()
	checkout, err := dial("Checkout", *checkoutAddr)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	defer checkout.Close()
	target := loadgen.Target{
		LOMS:     lomsv1connect.NewLomsServiceClient(loms.HTTP, loms.BaseURL, loms.Options...),
		Checkout: checkoutv1connect.NewCheckoutServiceClient(checkout.HTTP, checkout.BaseURL, checkout.Options...),
		Health:   grpchealth.NewClient(loms.HTTP, loms.BaseURL, loms.Options...),
		SKUs:     skuList,
	}
	var sum *loadgen.Summary
	primary := ""
	if *scenario == "watch" {
		primary = "WatchOrder change"
		sum, err = loadgen.RunWatch(ctx, target, loadgen.WatchOptions{
			Streams: *streams, Rate: *rate, Concurrency: *concurrency, Duration: opts.Duration, Warmup: opts.Warmup,
			RSS:      func(ctx context.Context) (int64, error) { return serverRSS(ctx, loms) },
			Progress: progress, ProgressEvery: time.Second,
		})
	} else {
		var sc loadgen.Scenario
		sc, err = loadgen.NewScenario(*scenario, target, loadgen.ScenarioConfig{Items: *items, Settle: *settle})
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		primary = sc.Primary
		sum, err = loadgen.Run(ctx, sc, opts)
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	sum.Protocol = *protocol
	sum.Target = loms.BaseURL
	if primary == "ListCart" || primary == "Purchase" {
		sum.Target = checkout.BaseURL
	}
	if *asJSON {
		err = sum.WriteJSON(out)
	} else {
		err = sum.WriteText(out)
	}
	if err != nil {
		return err
	}
	if p := sum.RPC(primary); p.OK == 0 {
		return fmt.Errorf("bench: no %s call succeeded (%d failed)", primary, p.Errors)
	}
	if sum.Watch != nil && *failOnError && sum.Watch.Lost > 0 {
		return fmt.Errorf("bench: %d changes never reached their watcher", sum.Watch.Lost)
	}
	if n := sum.Errors(); *failOnError && n > 0 {
		return fmt.Errorf("bench: %d calls failed", n)
	}
	return nil
}

// serverRSS reads the resident memory of the process serving dep from its
// /metrics page.
func serverRSS(ctx context.Context, dep *rpcclient.Dependency) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dep.BaseURL+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("process_resident_memory_bytes %q: %w", v, err)
			}
			return int64(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/metrics has no process_resident_memory_bytes")
}

// parseSKUs reads -skus: "catalog", a range "1-10000" or a list "1,2,3".
func parseSKUs(v string) ([]uint32, error) {
	if v == "catalog" {
		return seed.SKUs(seed.CatalogSize), nil
	}
	parse := func(s string) (uint32, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("%q is not a sku (1 to 4294967295)", s)
		}
		return uint32(n), nil
	}
	if lo, hi, ok := strings.Cut(v, "-"); ok {
		a, err := parse(lo)
		if err != nil {
			return nil, err
		}
		b, err := parse(hi)
		if err != nil {
			return nil, err
		}
		if b < a || b-a >= 10_000_000 {
			return nil, fmt.Errorf("range %s must go up and hold at most 10,000,000 skus", v)
		}
		out := make([]uint32, 0, b-a+1)
		for s := uint64(a); s <= uint64(b); s++ {
			out = append(out, uint32(s))
		}
		return out, nil
	}
	var out []uint32
	for _, part := range strings.Split(v, ",") {
		s, err := parse(part)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
