// Package loadgen drives load against a miniZON deployment through the
// generated clients: workers run a scenario's iterations in a loop, every
// RPC is timed into an HDR histogram per method, and failures are counted
// by Connect code.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options say how hard and how long to drive a scenario.
type Options struct {
	// Concurrency is the number of workers, each with one call in flight.
	Concurrency int
	// Duration ends the measured window; 0 when Requests ends it.
	Duration time.Duration
	// Requests ends the run after this many iterations in all; 0 when
	// Duration ends it.
	Requests int64
	// Warmup is run before the measured window and not counted: it fills
	// connection pools, statement caches and JIT-free Go's own caches.
	Warmup time.Duration
	// Progress receives a line per ProgressEvery while the run goes on;
	// nil for none.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Validate reports settings that cannot work.
func (o Options) Validate() error {
	var errs []error
	if o.Concurrency < 1 {
		errs = append(errs, errors.New("concurrency must be at least 1"))
	}
	if (o.Duration > 0) == (o.Requests > 0) {
		errs = append(errs, errors.New("give either a duration or a request count"))
	}
	if o.Duration < 0 || o.Requests < 0 || o.Warmup < 0 {
		errs = append(errs, errors.New("duration, request count and warm-up must not be negative"))
	}
	return errors.Join(errs...)
}

// Call runs one RPC of an iteration: it times fn and records its outcome
// under rpc. It returns fn's error so that the iteration can stop.
type Call func(rpc string, fn func(context.Context) error) error

// Iteration is one unit of a scenario's work, such as one order created and
// paid. It stops at the first failed call; the failure is already recorded.
type Iteration func(ctx context.Context, call Call) error

// Scenario is a named workload.
type Scenario struct {
	Name string
	// Primary is the RPC whose rate is the scenario's headline figure.
	Primary string
	// RPCs are the RPCs it calls, in the order the report lists them.
	RPCs []string
	// Worker prepares worker i (a cart to list, say) and returns its
	// iteration. A failing preparation ends the run before it starts.
	Worker func(ctx context.Context, i int) (Iteration, error)
}

// Run drives s as opts say and summarizes the measured window. It returns
// early with what it measured when ctx is cancelled.
func Run(ctx context.Context, s Scenario, opts Options) (*Summary, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	iters := make([]Iteration, opts.Concurrency)
	for i := range iters {
		it, err := s.Worker(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("prepare worker %d of %s: %w", i, s.Name, err)
		}
		iters[i] = it
	}
	r := &runner{opts: opts, stats: map[string]*rpcStats{}}
	for _, name := range s.RPCs {
		r.rpc(name)
	}
	r.measuring.Store(opts.Warmup == 0)

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, it := range iters {
		wg.Go(func() { r.work(runCtx, it) })
	}
	if opts.Warmup > 0 {
		select {
		case <-runCtx.Done():
		case <-time.After(opts.Warmup):
		}
		r.measuring.Store(true)
	}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	r.wait(runCtx, start, done)
	// The window ends here: calls still in flight are cut off and not
	// counted, so they must not stretch it.
	elapsed := time.Since(start)
	stop()
	<-done
	return r.summary(s, elapsed), nil
}

type runner struct {
	opts Options
	// measuring is false during the warm-up.
	measuring atomic.Bool
	// started counts iterations begun in the measured window, to stop at
	// opts.Requests; calls and failed count RPCs for the progress line.
	started, calls, failed atomic.Int64

	mu    sync.Mutex
	stats map[string]*rpcStats
	// order keeps RPCs in the order first called, for the report.
	order []string
}

func (r *runner) work(ctx context.Context, it Iteration) {
	// measured is whether the current iteration began in the measured
	// window: one begun in the warm-up is not counted, to its end.
	measured := false
	call := func(rpc string, fn func(context.Context) error) error {
		begin := time.Now()
		err := fn(ctx)
		d := time.Since(begin)
		// A call cut off by the end of the run is not the server's doing.
		if ctx.Err() != nil || !measured {
			return err
		}
		r.rpc(rpc).record(d, err)
		r.calls.Add(1)
		if err != nil {
			r.failed.Add(1)
		}
		return err
	}
	for ctx.Err() == nil {
		measured = r.measuring.Load()
		if measured && r.opts.Requests > 0 && r.started.Add(1) > r.opts.Requests {
			return
		}
		_ = it(ctx, call)
	}
}

func (r *runner) rpc(name string) *rpcStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.stats[name]
	if !ok {
		s = newRPCStats()
		r.stats[name] = s
		r.order = append(r.order, name)
	}
	return s
}

// wait returns when the duration is over, the workers are done (request
// count reached) or ctx ends, printing progress meanwhile.
func (r *runner) wait(ctx context.Context, start time.Time, done <-chan struct{}) {
	var end <-chan time.Time
	if r.opts.Duration > 0 {
		t := time.NewTimer(r.opts.Duration)
		defer t.Stop()
		end = t.C
	}
	var tick <-chan time.Time
	if r.opts.Progress != nil && r.opts.ProgressEvery > 0 {
		t := time.NewTicker(r.opts.ProgressEvery)
		defer t.Stop()
		tick = t.C
	}
	lastCalls, last := int64(0), start
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-end:
			return
		case now := <-tick:
			calls := r.calls.Load()
			rate := float64(calls-lastCalls) / now.Sub(last).Seconds()
			fmt.Fprintf(r.opts.Progress, "%6.1fs  %10d calls  %9.0f calls/s  %d failed\n",
				now.Sub(start).Seconds(), calls, rate, r.failed.Load())
			lastCalls, last = calls, now
		}
	}
}

func (r *runner) summary(s Scenario, elapsed time.Duration) *Summary {
	r.mu.Lock()
	names := slices.Clone(r.order)
	r.mu.Unlock()
	sum := &Summary{
		Scenario: s.Name, Primary: s.Primary, Concurrency: r.opts.Concurrency,
		DurationSeconds: elapsed.Seconds(),
	}
	for _, name := range names {
		rs := r.rpc(name).summary(name, elapsed)
		sum.RPCs = append(sum.RPCs, rs)
		if name == s.Primary {
			sum.RPS = rs.RPS
		}
	}
	return sum
}
