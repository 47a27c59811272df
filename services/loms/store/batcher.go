package store

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minizon/minizon/services/loms/order"
)

// Batcher is a Store whose writes to orders that arrive together share one
// transaction each batch (group commit, see group):
//
//   - Create reserves concurrent orders together (group reservation): each
//     batch locks the stock rows of all its orders once (createBatch).
//     Under a flash sale, when every order wants the same sku, the row lock
//     is taken once per batch instead of once per order.
//   - Update (OrderPayed, CancelOrder) pays and cancels concurrent orders
//     together: a payment storm after a flash sale writes the hot row off
//     once per batch (updateBatch).
//
// Each caller gets its own outcome and its own error.
type Batcher struct {
	*Store
	creates *group[*draft, outcome]
	updates *group[*change, error]
	metrics prometheus.Collector
}

// NewBatcher returns s with Create and Update batched: at most maxOrders
// calls a batch (1 turns batching off: each call is its own transaction),
// and at most flights batches of each kind in flight at once.
func NewBatcher(s *Store, maxOrders, flights int) *Batcher {
	sizes := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "minizon_loms_batch_orders",
		Help:    "Orders written together in one transaction, per batch, by kind: create (group reservation) or update (payments and cancellations).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 11),
	}, []string{"kind"})
	b := &Batcher{Store: s}
	b.creates = &group[*draft, outcome]{max: maxOrders, flights: max(flights, 1), apply: s.createBatch,
		sizes: sizes.WithLabelValues("create").(prometheus.Histogram)}
	b.updates = &group[*change, error]{max: maxOrders, flights: max(flights, 1), apply: s.updateBatch,
		sizes: sizes.WithLabelValues("update").(prometheus.Histogram)}
	b.metrics = sizes
	return b
}

var _ order.Repository = (*Batcher)(nil)

// Create implements order.Repository.
func (b *Batcher) Create(ctx context.Context, o *order.Order, key string,
	reserve func([]order.Stock) ([]order.Reservation, error)) (*order.Order, error) {
	if b.creates.max <= 1 {
		return b.Store.Create(ctx, o, key, reserve)
	}
	out, err := b.creates.do(ctx, newDraft(ctx, o, key, reserve))
	if err != nil {
		return nil, err
	}
	return out.order, out.err
}

// Update implements order.Repository.
func (b *Batcher) Update(ctx context.Context, id int64, fn func(*order.Order) error) error {
	if b.updates.max <= 1 {
		return b.Store.Update(ctx, id, fn)
	}
	failed, err := b.updates.do(ctx, &change{id: id, fn: fn, trace: traceOf(ctx)})
	if err != nil {
		return err
	}
	return failed
}

// Queued is how many Creates and Updates wait for a batch to start.
func (b *Batcher) Queued() int { return b.creates.queued() + b.updates.queued() }

// Metrics is the batch size histogram, to register once per process.
func (b *Batcher) Metrics() prometheus.Collector { return b.metrics }
