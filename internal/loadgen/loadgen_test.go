package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// Run must stop every worker it starts, whichever way it ends.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// oneCall is a scenario whose every iteration is one call of fn as RPC "X".
func oneCall(fn func(ctx context.Context) error) Scenario {
	return Scenario{Name: "test", Primary: "X", RPCs: []string{"X"}, Worker: func(context.Context, int) (Iteration, error) {
		return func(_ context.Context, call Call) error { return call("X", fn) }, nil
	}}
}

// run is Run with a generous deadline: a run that does not end fails the
// test instead of hanging it.
func run(t *testing.T, s Scenario, opts Options) *Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sum, err := Run(ctx, s, opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the run did not end by itself within a minute")
	}
	return sum
}

// -n N measures exactly N iterations, however many workers share them.
func TestRequestsMeasuresExactlyThatManyIterations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		requests    int64
		concurrency int
	}{
		{1000, 7},
		{1000, 1},
		{1, 1},
		{5, 16}, // more workers than iterations
	} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			sum := run(t, oneCall(func(context.Context) error {
				calls.Add(1)
				return nil
			}), Options{Concurrency: tc.concurrency, Requests: tc.requests})
			if got := calls.Load(); got != tc.requests {
				t.Errorf("-n %d -c %d: the scenario was called %d times", tc.requests, tc.concurrency, got)
			}
			x := sum.RPC("X")
			if x.Requests != tc.requests || x.OK != tc.requests || x.Errors != 0 {
				t.Errorf("-n %d -c %d: summary %+v", tc.requests, tc.concurrency, x)
			}
			if sum.Scenario != "test" || sum.Primary != "X" || sum.Concurrency != tc.concurrency || sum.RPS <= 0 {
				t.Errorf("summary %+v", sum)
			}
		})
	}
}

// A failed call counts under its Connect code, Errors adds them up, and
// only successful calls make the latency figures: a fast rejection must not
// flatter them.
func TestFailuresCountByCodeAndStayOutOfLatency(t *testing.T) {
	t.Parallel()
	const okSleep = 5 * time.Millisecond
	var n atomic.Int64
	// One call in four succeeds, slowly; the others fail at once.
	sum := run(t, oneCall(func(context.Context) error {
		switch n.Add(1) % 4 {
		case 0:
			time.Sleep(okSleep)
			return nil
		case 1, 3:
			return connect.NewError(connect.CodeFailedPrecondition, errors.New("out of stock"))
		default:
			return errors.New("not a Connect error")
		}
	}), Options{Concurrency: 3, Requests: 40})

	x := sum.RPC("X")
	want := map[string]int64{"failed_precondition": 20, "unknown": 10}
	if x.Requests != 40 || x.OK != 10 || x.Errors != 30 || !reflect.DeepEqual(x.ErrorsByCode, want) {
		t.Errorf("got %+v, want 40 requests, 10 ok, errors %v", x, want)
	}
	if sum.Errors() != 30 {
		t.Errorf("Errors() = %d, want 30", sum.Errors())
	}
	// Every successful call slept okSleep; with the instant failures in the
	// histogram the median would be near zero.
	if minMS := float64(okSleep / time.Millisecond); x.Latency.P50 < minMS || x.Latency.Mean < minMS {
		t.Errorf("latency %+v includes failed calls: every successful call took at least %v", x.Latency, okSleep)
	}
}

// The figures of one RPC, from known latencies: percentiles within HDR's
// 0.1% resolution, failures out of the histogram, extreme values clamped
// rather than dropped.
func TestRPCStatsFigures(t *testing.T) {
	t.Parallel()
	near := func(t *testing.T, what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > want*0.001+1e-9 {
			t.Errorf("%s = %v ms, want %v ms within 0.1%%", what, got, want)
		}
	}

	t.Run("percentiles", func(t *testing.T) {
		t.Parallel()
		s := newRPCStats()
		for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(1000) {
			s.record(time.Duration(i+1)*time.Millisecond, nil)
		}
		// A failure, however slow, is not a latency.
		s.record(time.Hour, connect.NewError(connect.CodeUnavailable, errors.New("down")))
		sum := s.summary("X", 10*time.Second)
		if sum.RPC != "X" || sum.Requests != 1001 || sum.OK != 1000 || sum.Errors != 1 ||
			!reflect.DeepEqual(sum.ErrorsByCode, map[string]int64{"unavailable": 1}) {
			t.Errorf("counts %+v", sum)
		}
		if sum.RPS != 100.1 {
			t.Errorf("rps %v, want 1001 calls / 10s", sum.RPS)
		}
		near(t, "p50", sum.Latency.P50, 500)
		near(t, "p90", sum.Latency.P90, 900)
		near(t, "p99", sum.Latency.P99, 990)
		near(t, "max", sum.Latency.Max, 1000)
		near(t, "mean", sum.Latency.Mean, 500.5)
	})

	t.Run("clamped", func(t *testing.T) {
		t.Parallel()
		s := newRPCStats()
		s.record(24*time.Hour, nil)
		s.record(0, nil)
		sum := s.summary("X", time.Second)
		if sum.OK != 2 || sum.Requests != 2 {
			t.Fatalf("a call beyond the histogram's range was dropped: %+v", sum)
		}
		near(t, "max", sum.Latency.Max, float64(maxLatencyMicros)/1000)
		near(t, "p50", sum.Latency.P50, float64(minLatencyMicros)/1000)
	})

	t.Run("no success", func(t *testing.T) {
		t.Parallel()
		s := newRPCStats()
		s.record(time.Second, errors.New("boom"))
		if sum := s.summary("X", 0); sum.Latency != (LatencyMillis{}) || sum.RPS != 0 || sum.Errors != 1 {
			t.Errorf("only failures: %+v, want no latency and no rate over no time", sum)
		}
	})
}

// Calls during the warm-up are not measured: the scenario runs during the
// warm-up, and the summary shows exactly the -n iterations asked for, even
// though iterations begun in the warm-up end inside the measured window.
// The warm-up is long enough for the workers to make calls in it on a busy
// machine.
func TestWarmupIsNotMeasured(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	sum := run(t, oneCall(func(context.Context) error {
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	}), Options{Concurrency: 4, Requests: 50, Warmup: time.Second})
	made, measured := calls.Load(), sum.RPC("X").Requests
	if made <= measured {
		t.Errorf("the scenario ran %d times, %d measured: the warm-up did not run it", made, measured)
	}
	if measured != 50 {
		t.Errorf("%d calls measured of %d made, want the 50 asked for", measured, made)
	}
}

// A duration ends the run by itself, and the measured window is at least
// that long (and long enough for calls to end in it on a busy machine).
func TestDurationEndsTheRun(t *testing.T) {
	t.Parallel()
	sum := run(t, oneCall(func(context.Context) error {
		time.Sleep(time.Millisecond)
		return nil
	}), Options{Concurrency: 2, Duration: time.Second})
	if sum.DurationSeconds < 1 {
		t.Errorf("measured window %vs, want at least the 1s asked for", sum.DurationSeconds)
	}
	if x := sum.RPC("X"); x.Requests == 0 || x.Errors != 0 {
		t.Errorf("summary %+v, want calls and no failures (calls cut off by the end are not failures)", x)
	}
}

// A worker that cannot be prepared stops the run before any load, with an
// error that says which.
func TestWorkerPreparationFails(t *testing.T) {
	t.Parallel()
	errNoCart := errors.New("no cart")
	var ran atomic.Int64
	s := Scenario{Name: "carts", Primary: "X", RPCs: []string{"X"}, Worker: func(_ context.Context, i int) (Iteration, error) {
		if i == 2 {
			return nil, errNoCart
		}
		return func(context.Context, Call) error {
			ran.Add(1)
			return nil
		}, nil
	}}
	sum, err := Run(t.Context(), s, Options{Concurrency: 4, Requests: 10})
	if err == nil || !errors.Is(err, errNoCart) || !strings.Contains(err.Error(), "worker 2") || !strings.Contains(err.Error(), "carts") {
		t.Fatalf("err %v, want one wrapping %v that names worker 2 of carts", err, errNoCart)
	}
	if sum != nil || ran.Load() != 0 {
		t.Errorf("summary %v and %d iterations after a failed preparation", sum, ran.Load())
	}
}

// Settings that cannot work are refused before anything runs.
func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
		ok   bool
	}{
		{"requests", Options{Concurrency: 1, Requests: 1}, true},
		{"duration with warm-up", Options{Concurrency: 8, Duration: time.Second, Warmup: time.Second}, true},
		{"no workers", Options{Concurrency: 0, Requests: 10}, false},
		{"negative workers", Options{Concurrency: -1, Requests: 10}, false},
		{"both duration and requests", Options{Concurrency: 1, Duration: time.Second, Requests: 10}, false},
		{"neither duration nor requests", Options{Concurrency: 1}, false},
		{"negative duration", Options{Concurrency: 1, Duration: -time.Second}, false},
		{"negative requests", Options{Concurrency: 1, Duration: time.Second, Requests: -1}, false},
		{"negative warm-up", Options{Concurrency: 1, Requests: 10, Warmup: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.opts.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v", tc.opts, err)
			}
			if tc.ok {
				return
			}
			// Run refuses them too, before preparing a worker.
			s := Scenario{Name: "test", Worker: func(context.Context, int) (Iteration, error) {
				t.Error("a worker was prepared with invalid options")
				return nil, errors.New("unreachable")
			}}
			if sum, err := Run(t.Context(), s, tc.opts); err == nil || sum != nil {
				t.Errorf("Run with %+v: %v, %v", tc.opts, sum, err)
			}
		})
	}
}

// Ctrl+C mid-run returns at once with what was measured so far; the calls
// cut off are not reported as failures.
func TestCancelReturnsWhatWasMeasured(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls atomic.Int64
	busy := make(chan struct{})
	var once sync.Once
	s := oneCall(func(ctx context.Context) error {
		if calls.Add(1) == 20 {
			once.Do(func() { close(busy) })
		}
		// A call that only ends with the run, or after a moment.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	})
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := Run(ctx, s, Options{Concurrency: 3, Duration: time.Hour})
		done <- result{sum, err}
	}()
	<-busy
	cancel()
	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	if res.err != nil {
		t.Fatalf("run: %v", res.err)
	}
	x := res.sum.RPC("X")
	if x.Requests == 0 || x.Requests > calls.Load() || x.Errors != 0 {
		t.Errorf("after cancelling: %+v of %d calls made, want the calls that ended before, none failed", x, calls.Load())
	}
}

// The JSON summary is what scripts read: its field names are a contract
// and it decodes back into the same Summary.
func TestSummaryJSON(t *testing.T) {
	t.Parallel()
	sum := sampleSummary()
	var buf bytes.Buffer
	if err := sum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("%s: %v", buf.Bytes(), err)
	}
	if !reflect.DeepEqual(&back, sum) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, *sum)
	}

	var raw struct {
		Scenario    string  `json:"scenario"`
		Target      string  `json:"target"`
		Protocol    string  `json:"protocol"`
		Concurrency int     `json:"concurrency"`
		Duration    float64 `json:"duration_seconds"`
		Primary     string  `json:"primary_rpc"`
		RPS         float64 `json:"rps"`
		RPCs        []struct {
			RPC          string           `json:"rpc"`
			Requests     int64            `json:"requests"`
			OK           int64            `json:"ok"`
			Errors       int64            `json:"errors"`
			RPS          float64          `json:"rps"`
			ErrorsByCode map[string]int64 `json:"errors_by_code"`
			Latency      struct {
				Mean, P50, P90, P99, Max float64
			} `json:"latency_ms"`
		} `json:"rpcs"`
	}
	dec := json.NewDecoder(bytes.NewReader(buf.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("decode by the documented names: %v", err)
	}
	if raw.Scenario != "create-order" || raw.Primary != "CreateOrder" || raw.RPS != 120.5 || raw.Protocol != "grpc" ||
		raw.Concurrency != 16 || raw.Duration != 10 || len(raw.RPCs) != 2 ||
		raw.RPCs[0].Latency.P99 != 9.75 || raw.RPCs[1].ErrorsByCode["unknown"] != 2 {
		t.Errorf("decoded by name: %+v", raw)
	}
}

// The text summary lists every RPC and one line per RPC and error code.
func TestSummaryText(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := sampleSummary().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"scenario create-order, 16 workers, 10.0s measured, protocol grpc, against http://127.0.0.1:8080",
		"CreateOrder: 120.5 requests/s",
		"CreateOrder", "OrderPayed",
		"  CreateOrder failed with failed_precondition: 3\n",
		"  CreateOrder failed with unavailable: 1\n",
		"  OrderPayed failed with unknown: 2\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text summary lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, " failed with "); n != 3 {
		t.Errorf("%d error lines, want 3:\n%s", n, text)
	}
}

func sampleSummary() *Summary {
	return &Summary{
		Scenario: "create-order", Target: "http://127.0.0.1:8080", Protocol: "grpc", Concurrency: 16,
		DurationSeconds: 10, Primary: "CreateOrder", RPS: 120.5,
		RPCs: []RPCSummary{
			{RPC: "CreateOrder", Requests: 1205, OK: 1201, Errors: 4, RPS: 120.5,
				ErrorsByCode: map[string]int64{"failed_precondition": 3, "unavailable": 1},
				Latency:      LatencyMillis{Mean: 3.5, P50: 3.25, P90: 6.5, P99: 9.75, Max: 31.125}},
			{RPC: "OrderPayed", Requests: 600, OK: 598, Errors: 2, RPS: 60,
				ErrorsByCode: map[string]int64{"unknown": 2},
				Latency:      LatencyMillis{Mean: 2, P50: 1.5, P90: 2.5, P99: 4, Max: 8}},
		},
	}
}

// Every scenario the usage lists can be made; bad settings are refused
// before any load.
func TestNewScenario(t *testing.T) {
	t.Parallel()
	skus := make([]uint32, 100)
	for i := range skus {
		skus[i] = uint32(i + 1)
	}
	for _, s := range Scenarios {
		if s.Name == "watch" {
			continue // RunWatch drives it
		}
		sc, err := NewScenario(s.Name, Target{SKUs: skus}, ScenarioConfig{Settle: SettleMix})
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		if sc.Name != s.Name || !slices.Contains(sc.RPCs, sc.Primary) || sc.Worker == nil {
			t.Errorf("%s: %+v, want its primary RPC among its RPCs", s.Name, sc)
		}
	}

	for _, tc := range []struct {
		name, scenario string
		skus           []uint32
		cfg            ScenarioConfig
		want           string
	}{
		{"unknown scenario", "nope", skus, ScenarioConfig{}, `unknown scenario "nope"`},
		{"unknown settle mode", "create-order", skus, ScenarioConfig{Settle: "later"}, `unknown settle mode "later"`},
		{"more items than skus", "create-order", skus[:3], ScenarioConfig{Items: 4, Settle: SettlePay}, "items must be between 1 and the 3 distinct skus"},
		{"negative items", "journey", skus, ScenarioConfig{Items: -1}, "got -1"},
		{"default items above the skus", "list-cart", skus[:10], ScenarioConfig{}, "got 50"},
		{"no skus", "stocks", nil, ScenarioConfig{}, "no skus"},
		{"flash sale of no sku", "flash-sale", nil, ScenarioConfig{}, "no skus"},
		{"empty skus", "noop", []uint32{}, ScenarioConfig{}, "no skus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewScenario(tc.scenario, Target{SKUs: tc.skus}, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// pickSKUs gives n distinct skus of the list, for few and for nearly all.
func TestPickSKUs(t *testing.T) {
	t.Parallel()
	all := make([]uint32, 100)
	for i := range all {
		all[i] = uint32(1000 + 7*i)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 3, 49, 50, 51, 99, 100} {
		for range 200 {
			got := pickSKUs(r, all, n)
			if len(got) != n {
				t.Fatalf("n=%d: %d skus", n, len(got))
			}
			seen := map[uint32]bool{}
			for _, s := range got {
				if seen[s] || !slices.Contains(all, s) {
					t.Fatalf("n=%d: %v repeats a sku or picks one not listed", n, got)
				}
				seen[s] = true
			}
		}
	}
}

// fakeLOMS answers CreateOrder with a new order of the given status and
// records what the scenario asks; any other method panics (nil interface).
type fakeLOMS struct {
	lomsv1connect.LomsServiceClient
	status lomsv1.OrderStatus

	mu      sync.Mutex
	orders  [][]*lomsv1.OrderItem
	users   []int64
	payed   []int64
	cancels []int64
}

func (f *fakeLOMS) CreateOrder(_ context.Context, req *lomsv1.CreateOrderRequest) (*lomsv1.CreateOrderResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orders = append(f.orders, req.GetItems())
	f.users = append(f.users, req.GetUser())
	return &lomsv1.CreateOrderResponse{OrderId: int64(len(f.orders)), Status: f.status}, nil
}

func (f *fakeLOMS) OrderPayed(_ context.Context, req *lomsv1.OrderPayedRequest) (*lomsv1.OrderPayedResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payed = append(f.payed, req.GetOrderId())
	return &lomsv1.OrderPayedResponse{}, nil
}

func (f *fakeLOMS) CancelOrder(_ context.Context, req *lomsv1.CancelOrderRequest) (*lomsv1.CancelOrderResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, req.GetOrderId())
	return &lomsv1.CancelOrderResponse{}, nil
}

// create-order orders -items distinct skus one unit each, then settles each
// order awaiting payment as -settle says, and leaves other orders alone.
func TestCreateOrderSettles(t *testing.T) {
	t.Parallel()
	skus := []uint32{11, 12, 13, 14, 15}
	for _, tc := range []struct {
		settle          string
		status          lomsv1.OrderStatus
		payed, canceled int
	}{
		{SettleMix, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, 5, 5},
		{SettlePay, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, 10, 0},
		{SettleCancel, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, 0, 10},
		{SettleNone, lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, 0, 0},
		{SettleMix, lomsv1.OrderStatus_ORDER_STATUS_FAILED, 0, 0},
	} {
		t.Run(tc.settle+"/"+tc.status.String(), func(t *testing.T) {
			t.Parallel()
			loms := &fakeLOMS{status: tc.status}
			sc, err := NewScenario("create-order", Target{LOMS: loms, SKUs: skus}, ScenarioConfig{Items: 4, Settle: tc.settle})
			if err != nil {
				t.Fatal(err)
			}
			sum := run(t, sc, Options{Concurrency: 1, Requests: 10})
			if len(loms.orders) != 10 || len(loms.payed) != tc.payed || len(loms.cancels) != tc.canceled {
				t.Errorf("%d orders, %d paid, %d cancelled; want 10, %d, %d",
					len(loms.orders), len(loms.payed), len(loms.cancels), tc.payed, tc.canceled)
			}
			for _, items := range loms.orders {
				seen := map[uint32]bool{}
				for _, it := range items {
					if seen[it.GetSku()] || !slices.Contains(skus, it.GetSku()) || it.GetCount() != 1 {
						t.Fatalf("order items %v: want 4 distinct listed skus, one each", items)
					}
					seen[it.GetSku()] = true
				}
				if len(items) != 4 {
					t.Fatalf("order of %d items, want 4", len(items))
				}
			}
			got := map[string]int64{}
			for _, r := range sum.RPCs {
				got[r.RPC] = r.Requests
			}
			want := map[string]int64{"CreateOrder": 10, "OrderPayed": int64(tc.payed), "CancelOrder": int64(tc.canceled)}
			for rpc := range want {
				if !slices.Contains(sc.RPCs, rpc) {
					delete(want, rpc)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("summary counts %v, want %v", got, want)
			}
		})
	}
}

// flash-sale orders 1 unit of the first listed sku every time, by a new
// user each time, never settles (whatever -settle and -items say) and counts
// a sold-out order as a successful call: FAILED is a flash sale's normal end.
func TestFlashSaleOrdersOneUnitOfTheFirstSKU(t *testing.T) {
	t.Parallel()
	for _, status := range []lomsv1.OrderStatus{lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT, lomsv1.OrderStatus_ORDER_STATUS_FAILED} {
		t.Run(status.String(), func(t *testing.T) {
			t.Parallel()
			loms := &fakeLOMS{status: status}
			// 42 is listed first but is not the smallest: the hot sku is
			// the first listed, not the first sorted.
			sc, err := NewScenario("flash-sale", Target{LOMS: loms, SKUs: []uint32{42, 7, 9, 42}}, ScenarioConfig{Items: 3, Settle: SettleMix})
			if err != nil {
				t.Fatal(err)
			}
			sum := run(t, sc, Options{Concurrency: 3, Requests: 30})
			if len(loms.orders) != 30 || len(loms.payed) != 0 || len(loms.cancels) != 0 {
				t.Errorf("%d orders, %d paid, %d cancelled; want 30, 0, 0", len(loms.orders), len(loms.payed), len(loms.cancels))
			}
			for _, items := range loms.orders {
				if len(items) != 1 || items[0].GetSku() != 42 || items[0].GetCount() != 1 {
					t.Fatalf("order items %v, want 1 unit of sku 42", items)
				}
			}
			users := map[int64]bool{}
			for _, u := range loms.users {
				users[u] = true
			}
			if len(users) != 30 {
				t.Errorf("%d distinct users in 30 orders, want a new user per order", len(users))
			}
			if c := sum.RPC("CreateOrder"); c.Requests != 30 || c.OK != 30 || sum.Errors() != 0 || len(sum.RPCs) != 1 {
				t.Errorf("summary %+v, want 30 successful CreateOrder calls and nothing else", sum.RPCs)
			}
		})
	}
}

// fakeCheckout fails AddToCart; any other method panics (nil interface).
type fakeCheckout struct {
	checkoutv1connect.CheckoutServiceClient
}

func (fakeCheckout) AddToCart(context.Context, *checkoutv1.AddToCartRequest) (*checkoutv1.AddToCartResponse, error) {
	return nil, connect.NewError(connect.CodeUnavailable, errors.New("checkout is down"))
}

// list-cart fills its carts before the run: a failure there ends the run
// before it starts, naming the worker and the Checkout error.
func TestListCartFillFails(t *testing.T) {
	t.Parallel()
	sc, err := NewScenario("list-cart", Target{Checkout: fakeCheckout{}, SKUs: []uint32{1, 2, 3}}, ScenarioConfig{Items: 2})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), sc, Options{Concurrency: 2, Requests: 5})
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "prepare worker 0 of list-cart") {
		t.Errorf("err %v, want the unavailable Checkout error of worker 0", err)
	}
}

// A -skus list that repeats a sku must neither make orders and carts of
// repeated skus nor hang: pickSKUs promises n distinct skus.
func TestRepeatedSKUsGiveDistinctItems(t *testing.T) {
	t.Parallel()
	loms := &fakeLOMS{status: lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT}
	// The permutation path: this never hangs, whatever the fix.
	sc, err := NewScenario("create-order", Target{LOMS: loms, SKUs: []uint32{7, 7}}, ScenarioConfig{Items: 2, Settle: SettleNone})
	if err != nil {
		return // refusing a list with fewer distinct skus than items is a fix too
	}
	run(t, sc, Options{Concurrency: 1, Requests: 1})
	if items := loms.orders[0]; len(items) != 2 || items[0].GetSku() == items[1].GetSku() {
		t.Errorf("order items %v, want 2 distinct skus", items)
	}
}
