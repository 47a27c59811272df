package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minizon/minizon/services/loms/order"
)

// Batcher is a Store whose Create reserves concurrent orders together
// (group reservation): orders that arrive while a batch is in flight wait
// for the next one, and each batch is one transaction that locks each stock
// row once for all its orders (createBatch). Under a flash sale, when every
// order wants the same sku, the row lock is taken once per batch instead of
// once per order. There is no timer: a batch goes as soon as the one before
// it is done, so a lone order is never delayed.
//
// Each caller gets its own outcome. One order's failure never fails the
// others: a draft that fails on its own is dropped and the rest retried,
// and a batch that the database refuses for its data is split in halves
// until the order at fault is alone. A caller that gives up while queued is
// left out; one that gives up while its batch is in flight gets its
// context's error, and its order may have been made (an idempotency key
// finds it).
type Batcher struct {
	*Store
	max   int
	sizes prometheus.Histogram

	mu      sync.Mutex
	queue   []*pending
	running bool
}

// pending is a Create waiting for its batch.
type pending struct {
	ctx   context.Context
	draft *draft
	done  chan outcome // buffered: the batch never waits for its caller
}

// NewBatcher returns s with Create batched, at most max orders a batch;
// max 1 turns batching off (each Create is its own transaction).
func NewBatcher(s *Store, max int) *Batcher {
	return &Batcher{Store: s, max: max, sizes: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "minizon_loms_create_batch_orders",
		Help:    "CreateOrders reserved together in one transaction (group reservation), per batch.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	})}
}

// Metrics is the batch size histogram, to register once per process.
func (b *Batcher) Metrics() prometheus.Collector { return b.sizes }

var _ order.Repository = (*Batcher)(nil)

// Create implements order.Repository.
func (b *Batcher) Create(ctx context.Context, o *order.Order, key string,
	reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	if b.max <= 1 {
		return b.Store.Create(ctx, o, key, reserve)
	}
	p := &pending{ctx: ctx, draft: newDraft(ctx, o, key, reserve), done: make(chan outcome, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if !b.running {
		// The goroutine ends when the queue is empty.
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case out := <-p.done:
		return out.order, out.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Queued is how many Creates wait for a batch to start.
func (b *Batcher) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// run stores batches until the queue is empty.
func (b *Batcher) run() {
	for {
		batch := b.next()
		if len(batch) == 0 {
			return
		}
		b.sizes.Observe(float64(len(batch)))
		b.store(batch)
	}
}

// next takes up to max queued Creates whose callers still wait, in arrival
// order, or marks the batcher idle if there are none.
func (b *Batcher) next() []*pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*pending
	for len(b.queue) > 0 && len(batch) < b.max {
		p := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		if p.ctx.Err() == nil {
			batch = append(batch, p)
		}
	}
	if len(batch) == 0 {
		b.running = false
		b.queue = nil
	}
	return batch
}

// store runs one batch and hands each caller its outcome, isolating the
// orders at fault.
func (b *Batcher) store(batch []*pending) {
	drafts := make([]*draft, len(batch))
	for i, p := range batch {
		drafts[i] = p.draft
	}
	ctx, cancel := batchContext(batch)
	outs, err := b.createBatch(ctx, drafts)
	cancel()
	var de *draftError
	switch {
	case err == nil:
		for i, p := range batch {
			p.done <- outs[i]
		}
	case errors.As(err, &de):
		batch[de.index].done <- outcome{err: de.err}
		if rest := append(batch[:de.index:de.index], batch[de.index+1:]...); len(rest) > 0 {
			b.store(rest)
		}
	case len(batch) > 1 && refusedData(err):
		half := len(batch) / 2
		b.store(batch[:half])
		b.store(batch[half:])
	default:
		for _, p := range batch {
			p.done <- outcome{err: err}
		}
	}
}

// batchContext bounds a batch by the latest deadline of its callers: the
// batch serves them all, so no one caller's cancellation may stop it.
func batchContext(batch []*pending) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, p := range batch {
		d, ok := p.ctx.Deadline()
		if !ok {
			return context.WithCancel(context.Background())
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// refusedData reports whether Postgres refused a statement for the data it
// was given (a data exception or an integrity constraint: SQLSTATE classes
// 22 and 23), rather than for a reason every order would meet (a lost
// connection, a timeout, a server going down).
func refusedData(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}
