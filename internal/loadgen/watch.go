package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
)

// The rows of the watch scenario's report.
const (
	// rpcWatchOpen is from the call to the first message; the streams
	// first opened are reported on their own row, "WatchOrder opening".
	rpcWatchOpen   = "WatchOrder open"
	rpcWatchChange = "WatchOrder change" // from changed_at to the message
)

// WatchOptions say how many WatchOrder streams to hold open and how fast to
// change the watched orders.
type WatchOptions struct {
	// Streams is how many streams are held open: one per order, each a new
	// order of one unit of a -skus sku.
	Streams int
	// Rate is how many watched orders are paid per second; each paid
	// order's stream ends and a new order is watched in its place.
	Rate float64
	// Concurrency bounds the calls in flight while the streams are opened
	// and closed.
	Concurrency int
	// Duration is the measured window of changes; Warmup runs changes
	// before it, unmeasured.
	Duration, Warmup time.Duration
	// RSS reads the server's resident memory, before the streams are opened
	// and once they are all open; nil skips it.
	RSS func(context.Context) (int64, error)
	// Progress receives a line per ProgressEvery; nil for none.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// WatchFigures are what the watch scenario adds to a Summary.
type WatchFigures struct {
	Streams     int     `json:"streams"`
	ChangesRate float64 `json:"changes_per_second"`
	// Lost counts payments whose watcher never heard of them.
	Lost int64 `json:"lost"`
	// RSS is the server's resident memory before the streams were opened
	// and with all of them open, in MiB; zero when not read.
	RSSBeforeMiB float64 `json:"rss_before_mib"`
	RSSOpenMiB   float64 `json:"rss_open_mib"`
	// RSSEndMiB is read at the end of the measured window, the streams
	// still open.
	RSSEndMiB float64 `json:"rss_end_mib"`
	// BytesPerStream is the RSS growth to the end of the window divided by
	// the streams.
	BytesPerStream float64 `json:"bytes_per_stream"`
}

// watched is one open stream, read by a goroutine of its own.
type watched struct {
	id     int64
	cancel context.CancelFunc
	// final receives the final state's message, or nil if the stream ended
	// without one.
	final chan *lomsv1.WatchOrderResponse
}

// RunWatch holds opts.Streams WatchOrder streams open on the orders of t's
// LOMS, then pays watched orders at opts.Rate, watching a new order for
// each one paid, and measures how long each change took from the moment
// LOMS stamped it (changed_at, just before its commit) to its watcher's
// message. The clocks of this machine and LOMS's must agree: run it beside
// LOMS. The orders still open at the end are cancelled.
func RunWatch(ctx context.Context, t Target, opts WatchOptions) (*Summary, error) {
	switch {
	case opts.Streams < 1 || opts.Rate <= 0 || opts.Concurrency < 1:
		return nil, errors.New("streams, rate and concurrency must be positive")
	case opts.Duration <= 0 || opts.Warmup < 0:
		return nil, errors.New("the duration must be positive and the warm-up not negative")
	case len(t.SKUs) == 0:
		return nil, errors.New("no skus to pick from")
	}
	w := &watchRun{t: t, opts: opts, open: map[int64]*watched{},
		changes: newRPCStats(), payments: newRPCStats(), creates: newRPCStats(), opens: newRPCStats(), openings: newRPCStats()}
	streamCtx, closeStreams := context.WithCancel(ctx)
	defer closeStreams()
	w.streamCtx = streamCtx
	figs := &WatchFigures{Streams: opts.Streams}
	if opts.RSS != nil {
		rss, err := opts.RSS(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the server's memory: %w", err)
		}
		figs.RSSBeforeMiB = mib(rss)
	}
	// The opening is measured on its own: its rate is of its own window.
	w.opening.Store(true)
	openStart := time.Now()
	if err := w.openMany(ctx, opts.Streams); err != nil {
		return nil, err
	}
	openElapsed := time.Since(openStart)
	w.opening.Store(false)
	w.progress("%d streams open", w.count())
	if opts.RSS != nil {
		rss, err := opts.RSS(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the server's memory: %w", err)
		}
		figs.RSSOpenMiB = mib(rss)
	}

	w.measuring.Store(opts.Warmup == 0)
	var changes sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / opts.Rate))
	defer tick.Stop()
	begin := time.Now()
	var start time.Time
	if opts.Warmup == 0 {
		start = begin
	}
	lastProgress := begin
	for ctx.Err() == nil {
		var now time.Time
		select {
		case now = <-tick.C:
		case <-ctx.Done():
			continue
		}
		if start.IsZero() && now.Sub(begin) >= opts.Warmup {
			start = now
			w.measuring.Store(true)
		}
		if !start.IsZero() && now.Sub(start) >= opts.Duration {
			break
		}
		if opts.Progress != nil && opts.ProgressEvery > 0 && now.Sub(lastProgress) >= opts.ProgressEvery {
			lastProgress = now
			w.progress("%6.1fs  %d streams open  %d changes heard  %d lost", now.Sub(begin).Seconds(), w.count(), w.heard.Load(), w.lost.Load())
		}
		s := w.takeOne()
		if s == nil {
			continue
		}
		measured := w.measuring.Load()
		changes.Go(func() { w.change(ctx, s, measured) })
	}
	elapsed := time.Since(start)
	changes.Wait()
	if opts.RSS != nil {
		// Still holding the streams, after a window of changes: the
		// steady state, garbage of the opening collected.
		rss, err := opts.RSS(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the server's memory: %w", err)
		}
		figs.RSSEndMiB = mib(rss)
	}
	closeStreams()
	w.cancelRest(context.WithoutCancel(ctx))

	figs.Lost = w.lost.Load()
	figs.BytesPerStream = (figs.RSSEndMiB - figs.RSSBeforeMiB) * (1 << 20) / float64(opts.Streams)
	sum := &Summary{Scenario: "watch", Concurrency: opts.Concurrency, DurationSeconds: elapsed.Seconds(), Primary: rpcWatchChange, Watch: figs}
	sum.RPCs = []RPCSummary{
		w.changes.summary(rpcWatchChange, elapsed), w.payments.summary("OrderPayed", elapsed),
		w.creates.summary("CreateOrder", elapsed), w.opens.summary(rpcWatchOpen, elapsed),
		w.openings.summary(rpcWatchOpen+"ing", openElapsed),
	}
	sum.RPS = sum.RPCs[0].RPS
	figs.ChangesRate = sum.RPS
	return sum, nil
}

type watchRun struct {
	t         Target
	opts      WatchOptions
	streamCtx context.Context
	measuring atomic.Bool
	// opening is true while the streams are first opened, timed into
	// openings rather than opens.
	opening atomic.Bool
	next    atomic.Int64 // picks users and skus
	heard   atomic.Int64
	lost    atomic.Int64

	// The report's rows: changes heard, payments, orders created, streams
	// opened in the window and at first.
	changes, payments, creates, opens, openings *rpcStats

	mu   sync.Mutex
	open map[int64]*watched
}

// record adds a call to s if the window is being measured.
func (w *watchRun) record(s *rpcStats, d time.Duration, err error) {
	if w.measuring.Load() {
		s.record(d, err)
	}
}

func (w *watchRun) progress(format string, args ...any) {
	if w.opts.Progress != nil {
		fmt.Fprintf(w.opts.Progress, format+"\n", args...)
	}
}

func (w *watchRun) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.open)
}

// openMany opens n streams, opts.Concurrency at a time.
func (w *watchRun) openMany(ctx context.Context, n int) error {
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		todo     atomic.Int64
	)
	todo.Store(int64(n))
	for range min(w.opts.Concurrency, n) {
		wg.Go(func() {
			for todo.Add(-1) >= 0 && ctx.Err() == nil {
				if err := w.openOne(ctx); err != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if f := failures.Load(); f > int64(n)/10 {
		return fmt.Errorf("%d of %d streams could not be opened", f, n)
	}
	return nil
}

// openOne makes an order and watches it until its stream ends.
func (w *watchRun) openOne(ctx context.Context) error {
	i := w.next.Add(1)
	sku := w.t.SKUs[int(i)%len(w.t.SKUs)]
	begin := time.Now()
	res, err := w.t.LOMS.CreateOrder(ctx, &lomsv1.CreateOrderRequest{User: 1<<40 + i, Items: []*lomsv1.OrderItem{{Sku: sku, Count: 1}}})
	w.record(w.creates, time.Since(begin), err)
	if err != nil {
		return err
	}
	if res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		return fmt.Errorf("order %d is %v: give the skus more stock", res.GetOrderId(), res.GetStatus())
	}
	sctx, cancel := context.WithCancel(w.streamCtx)
	begin = time.Now()
	stream, err := w.t.LOMS.WatchOrder(sctx, &lomsv1.WatchOrderRequest{OrderId: res.GetOrderId()})
	if err == nil && !stream.Receive() {
		err = stream.Err()
		if err == nil {
			err = errors.New("the stream ended without a message")
		}
	}
	if w.opening.Load() {
		w.openings.record(time.Since(begin), err)
	} else {
		w.record(w.opens, time.Since(begin), err)
	}
	if err != nil {
		cancel()
		return err
	}
	s := &watched{id: res.GetOrderId(), cancel: cancel, final: make(chan *lomsv1.WatchOrderResponse, 1)}
	w.mu.Lock()
	w.open[s.id] = s
	w.mu.Unlock()
	go func() {
		defer cancel()
		defer stream.Close()
		var final *lomsv1.WatchOrderResponse
		for stream.Receive() {
			switch m := stream.Msg(); m.GetStatus() {
			case lomsv1.OrderStatus_ORDER_STATUS_PAYED, lomsv1.OrderStatus_ORDER_STATUS_CANCELLED:
				received := time.Now()
				w.heard.Add(1)
				w.record(w.changes, received.Sub(m.GetChangedAt().AsTime()), nil)
				final = m
			}
		}
		s.final <- final
	}()
	return nil
}

// takeOne removes an open stream to change its order, or nil.
func (w *watchRun) takeOne() *watched {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, s := range w.open {
		delete(w.open, id)
		return s
	}
	return nil
}

// change pays s's order, waits for its watcher to hear it, and watches a
// new order in its place.
func (w *watchRun) change(ctx context.Context, s *watched, measured bool) {
	begin := time.Now()
	_, err := w.t.LOMS.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: s.id})
	if measured {
		w.payments.record(time.Since(begin), err)
	}
	if err == nil {
		select {
		case final := <-s.final:
			if final == nil {
				w.lost.Add(1)
			}
		case <-time.After(30 * time.Second):
			w.lost.Add(1)
			s.cancel()
		case <-ctx.Done():
		}
	} else {
		s.cancel()
	}
	if ctx.Err() == nil {
		_ = w.openOne(ctx)
	}
}

// cancelRest closes the remaining streams and cancels their orders, so
// that the next run finds the stock free.
func (w *watchRun) cancelRest(ctx context.Context) {
	w.mu.Lock()
	ids := make(chan int64, len(w.open))
	for id := range w.open {
		ids <- id
	}
	clear(w.open)
	w.mu.Unlock()
	close(ids)
	var wg sync.WaitGroup
	for range w.opts.Concurrency {
		wg.Go(func() {
			for id := range ids {
				_, _ = w.t.LOMS.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: id})
			}
		})
	}
	wg.Wait()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
