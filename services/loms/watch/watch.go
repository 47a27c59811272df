// Package watch tells the watchers of orders about their status changes as
// they are committed, by any LOMS replica or the sweeper. One listener per
// process hears which orders changed (Feed); the states of the changed
// orders that someone here watches are read once for all their watchers
// (Reader), so a watcher costs no goroutine, connection or query of its
// own. The package does no I/O itself.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/loms/order"
)

// Feed hears which orders' status changed.
type Feed interface {
	// ListenChanges calls listening once every change committed from then
	// on will be heard, then changed with the ids of the orders of each
	// committed change, until ctx is done (nil) or the feed is lost (an
	// error; changes made until the next call are not heard).
	ListenChanges(ctx context.Context, listening func(), changed func(ids []int64)) error
}

// Reader reads orders' current states.
type Reader interface {
	// States returns the state of each given order that exists.
	States(ctx context.Context, ids []int64) ([]order.State, error)
}

// Errors of Watch and Next.
var (
	// ErrTooManyWatchers: the process holds Config.MaxWatchers already.
	ErrTooManyWatchers = errors.New("too many order watchers on this server")
	// ErrStopped: the hub no longer hears changes (the process stops).
	ErrStopped = errors.New("the server stopped watching orders")
)

// Config bounds and tunes a Hub.
type Config struct {
	// MaxWatchers caps the watchers open at once (LOMS_MAX_WATCHERS).
	MaxWatchers int
	// KeepAlive is how long a watcher may go without a state to send before
	// Next repeats the last one (LOMS_WATCH_KEEPALIVE).
	KeepAlive time.Duration
}

// Defaults for a zero Config.
const (
	DefaultMaxWatchers = 10_000
	DefaultKeepAlive   = 20 * time.Second
)

// readBatch bounds the orders read in one query.
const readBatch = 1000

// Hub holds the process's watchers. Run it while watchers are served.
type Hub struct {
	feed   Feed
	reader Reader
	cfg    Config
	log    *slog.Logger

	mu      sync.Mutex
	byOrder map[int64][]*Watcher
	count   int
	pending map[int64]struct{} // watched orders whose state is to be read
	stopped bool
	wake    chan struct{} // a read is pending; capacity 1
	done    chan struct{} // closed when Run returns

	open     prometheus.Gauge
	feedLost prometheus.Counter
}

// NewHub returns a hub that hears changes from feed and reads states from
// reader.
func NewHub(feed Feed, reader Reader, cfg Config, log *slog.Logger) *Hub {
	if cfg.MaxWatchers <= 0 {
		cfg.MaxWatchers = DefaultMaxWatchers
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	h := &Hub{
		feed: feed, reader: reader, cfg: cfg, log: log,
		byOrder: map[int64][]*Watcher{}, pending: map[int64]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "minizon_loms_order_watchers",
			Help: "WatchOrder streams open on this process.",
		}),
		feedLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "minizon_loms_order_feed_lost_total",
			Help: "Times the listener of order status changes lost its database connection and listened again.",
		}),
	}
	return h
}

// Metrics are the hub's gauge of open watchers and counter of lost feeds.
func (h *Hub) Metrics() []prometheus.Collector { return []prometheus.Collector{h.open, h.feedLost} }

// Run hears changes and tells watchers until ctx is done; the watchers'
// Next then fails with ErrStopped. A lost feed is listened to again, with
// backoff, and every watched order is read again, so a change made while
// it was lost still reaches its watchers.
func (h *Hub) Run(ctx context.Context) error {
	defer h.stop()
	var wg sync.WaitGroup
	wg.Go(func() { h.read(ctx) })
	defer wg.Wait()
	var wait time.Duration
	for {
		err := h.feed.ListenChanges(ctx, func() {
			wait = 0
			h.rereadAll()
		}, h.changed)
		if ctx.Err() != nil {
			return nil
		}
		h.feedLost.Inc()
		wait = longer(wait)
		h.log.WarnContext(ctx, "order status feed lost; listening again", "error", errString(err), "in", wait.String())
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "ended"
	}
	return err.Error()
}

// Watch starts watching order id and reads its current state, which Next
// returns first. ErrTooManyWatchers over the cap, order.ErrNotFound for an
// unknown order, ErrStopped once Run returned. Close the watcher when done.
func (h *Hub) Watch(ctx context.Context, id int64) (*Watcher, error) {
	if err := validate.ID("order_id", id); err != nil {
		return nil, err
	}
	w := &Watcher{hub: h, id: id, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	switch {
	case h.stopped:
		h.mu.Unlock()
		return nil, ErrStopped
	case h.count >= h.cfg.MaxWatchers:
		h.mu.Unlock()
		return nil, ErrTooManyWatchers
	}
	// Registered before the read: a change committed after the read is
	// heard and read again; one committed before it is in the read.
	h.byOrder[id] = append(h.byOrder[id], w)
	h.count++
	h.mu.Unlock()
	h.open.Inc()
	states, err := h.reader.States(ctx, []int64{id})
	if err == nil && len(states) == 0 {
		err = fmt.Errorf("order_id %d: %w", id, order.ErrNotFound)
	}
	if err != nil {
		w.Close()
		return nil, err
	}
	w.offer(states[0])
	return w, nil
}

// changed queues a read of the orders that someone here watches.
func (h *Hub) changed(ids []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	queued := false
	for _, id := range ids {
		if len(h.byOrder[id]) > 0 {
			h.pending[id] = struct{}{}
			queued = true
		}
	}
	if queued {
		h.signal()
	}
}

// rereadAll queues a read of every watched order: changes may have been
// missed while the feed was lost.
func (h *Hub) rereadAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.byOrder {
		h.pending[id] = struct{}{}
	}
	if len(h.pending) > 0 {
		h.signal()
	}
}

func (h *Hub) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// read reads the pending orders' states, up to readBatch in a query, and
// offers each to its watchers, until ctx is done. Changes heard while a
// read runs wait for the next one, so a burst costs a few queries, not one
// per change.
func (h *Hub) read(ctx context.Context) {
	var wait time.Duration
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.wake:
		}
		ids := h.takePending()
		if len(ids) == 0 {
			continue
		}
		states, err := h.reader.States(ctx, ids)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = longer(wait)
			h.log.WarnContext(ctx, "read watched orders' states; retrying", "orders", len(ids), "error", err.Error(), "in", wait.String())
			h.requeue(ids)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		wait = 0
		h.dispatch(states)
	}
}

// takePending removes up to readBatch pending ids, signalling again if
// more remain.
func (h *Hub) takePending() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]int64, 0, min(len(h.pending), readBatch))
	for id := range h.pending {
		if len(ids) == readBatch {
			h.signal()
			break
		}
		ids = append(ids, id)
		delete(h.pending, id)
	}
	return ids
}

func (h *Hub) requeue(ids []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if len(h.byOrder[id]) > 0 {
			h.pending[id] = struct{}{}
		}
	}
	h.signal()
}

func (h *Hub) dispatch(states []order.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range states {
		for _, w := range h.byOrder[s.ID] {
			w.offer(s)
		}
	}
}

func (h *Hub) remove(w *Watcher) {
	h.mu.Lock()
	ws := h.byOrder[w.id]
	for i, x := range ws {
		if x == w {
			ws[i] = ws[len(ws)-1]
			ws[len(ws)-1] = nil
			ws = ws[:len(ws)-1]
			h.count--
			h.open.Dec()
			break
		}
	}
	if len(ws) == 0 {
		delete(h.byOrder, w.id)
	} else {
		h.byOrder[w.id] = ws
	}
	h.mu.Unlock()
}

func (h *Hub) stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	close(h.done)
}

// Watcher follows one order. Its methods are for one goroutine, but for
// Close, which may be called any time, more than once.
type Watcher struct {
	hub *Hub
	id  int64

	mu     sync.Mutex
	latest order.State // the latest state heard
	closed bool

	wake chan struct{} // latest changed; capacity 1

	sent    order.State
	hasSent bool
}

// offer keeps s if it is later than what the watcher holds.
func (w *Watcher) offer(s order.State) {
	w.mu.Lock()
	later := s.Status.Later(w.latest.Status)
	if later {
		w.latest = s
	}
	w.mu.Unlock()
	if later {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Next waits for the state to send next: the current state at once, then
// each later one, in order, none skipped; after KeepAlive without one, the
// last one again. After a final state it returns io.EOF. It fails with
// ErrStopped once the hub stopped, or with ctx's error.
func (w *Watcher) Next(ctx context.Context) (order.State, error) {
	if w.hasSent && w.sent.Status.Final() {
		return order.State{}, io.EOF
	}
	var keep *time.Timer
	for {
		w.mu.Lock()
		s := w.latest
		w.mu.Unlock()
		if !w.hasSent || s.Status.Later(w.sent.Status) {
			w.sent, w.hasSent = s, true
			return s, nil
		}
		if keep == nil {
			keep = time.NewTimer(w.hub.cfg.KeepAlive)
			defer keep.Stop()
		}
		select {
		case <-w.wake:
		case <-keep.C:
			return w.sent, nil
		case <-w.hub.done:
			return order.State{}, ErrStopped
		case <-ctx.Done():
			return order.State{}, ctx.Err()
		}
	}
}

// Close stops watching.
func (w *Watcher) Close() {
	w.mu.Lock()
	closed := w.closed
	w.closed = true
	w.mu.Unlock()
	if !closed {
		w.hub.remove(w)
	}
}

// longer is the next wait after d: doubled, from 100 ms up to 5 s.
func longer(d time.Duration) time.Duration {
	return min(max(2*d, 100*time.Millisecond), 5*time.Second)
}

// sleep waits d or until ctx is done, telling whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
