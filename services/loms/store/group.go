package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
)

// group runs calls that arrive together as batches: calls that arrive
// while a batch is in flight wait for the next one, up to max a batch and
// flights batches at once. There is no timer: a batch goes as soon as a
// flight is free, so a lone call is never delayed.
//
// One call's failure never fails the others: a batch that fails with a
// *draftError naming one call is retried without it, and a batch that the
// database refuses for its data is split in halves until the call at fault
// is alone. A caller that gives up while queued is left out; one that gives
// up while its batch is in flight gets its context's error, and the batch
// may have committed its part.
type group[In, Out any] struct {
	max, flights int
	// apply runs one batch: one result per call, or an error for all.
	apply func(ctx context.Context, batch []In) ([]Out, error)
	sizes prometheus.Histogram

	mu      sync.Mutex
	queue   []*call[In, Out]
	running int // batches in flight
}

// call is one caller waiting for its batch.
type call[In, Out any] struct {
	ctx  context.Context
	in   In
	done chan callResult[Out] // buffered: a batch never waits for its caller
}

type callResult[Out any] struct {
	out Out
	err error
}

// do queues in and waits for its result.
func (g *group[In, Out]) do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{ctx: ctx, in: in, done: make(chan callResult[Out], 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.running < g.flights {
		// The goroutine ends when the queue is empty.
		g.running++
		go g.run()
	}
	g.mu.Unlock()
	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
		var zero Out
		return zero, ctx.Err()
	}
}

// queued is how many calls wait for a batch to start.
func (g *group[In, Out]) queued() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// run applies batches until the queue is empty.
func (g *group[In, Out]) run() {
	for {
		batch := g.next()
		if len(batch) == 0 {
			return
		}
		g.sizes.Observe(float64(len(batch)))
		g.store(batch)
	}
}

// next takes up to max queued calls whose callers still wait, in arrival
// order, or gives up its flight if there are none.
func (g *group[In, Out]) next() []*call[In, Out] {
	g.mu.Lock()
	defer g.mu.Unlock()
	var batch []*call[In, Out]
	for len(g.queue) > 0 && len(batch) < g.max {
		c := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if c.ctx.Err() == nil {
			batch = append(batch, c)
		}
	}
	if len(batch) == 0 {
		g.running--
		g.queue = nil
	}
	return batch
}

// store applies one batch and hands each caller its result, isolating the
// calls at fault.
func (g *group[In, Out]) store(batch []*call[In, Out]) {
	ins := make([]In, len(batch))
	for i, c := range batch {
		ins[i] = c.in
	}
	ctx, cancel := batchContext(batch)
	outs, err := g.apply(ctx, ins)
	cancel()
	var de *draftError
	switch {
	case err == nil:
		for i, c := range batch {
			c.done <- callResult[Out]{out: outs[i]}
		}
	case errors.As(err, &de):
		batch[de.index].done <- callResult[Out]{err: de.err}
		if rest := append(batch[:de.index:de.index], batch[de.index+1:]...); len(rest) > 0 {
			g.store(rest)
		}
	case len(batch) > 1 && refusedData(err):
		half := len(batch) / 2
		g.store(batch[:half])
		g.store(batch[half:])
	default:
		for _, c := range batch {
			c.done <- callResult[Out]{err: err}
		}
	}
}

// batchContext bounds a batch by the latest deadline of its callers: the
// batch serves them all, so no one caller's cancellation may stop it.
func batchContext[In, Out any](batch []*call[In, Out]) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, c := range batch {
		d, ok := c.ctx.Deadline()
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
// 22 and 23), rather than for a reason every call would meet (a lost
// connection, a timeout, a server going down).
func refusedData(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23")
}
