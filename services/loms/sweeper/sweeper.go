// Package sweeper cancels the orders whose payment window has passed, a
// batch at a time, beside LOMS's other workers. Any number of replicas may
// sweep at once: each batch claims its orders with SKIP LOCKED.
package sweeper

import (
	"context"
	"log/slog"
	"time"
)

// Batch is the most orders one transaction cancels.
const Batch = 100

// Orders cancels expired orders: order.Service.
type Orders interface {
	// CancelExpired cancels up to max orders past their payment window and
	// returns how many it cancelled.
	CancelExpired(ctx context.Context, max int) (int, error)
}

// Sweeper looks for expired orders every interval, and at once again
// after a full batch.
type Sweeper struct {
	orders Orders
	every  time.Duration
	log    *slog.Logger
}

// New returns a sweeper of orders, looking every interval.
func New(orders Orders, every time.Duration, log *slog.Logger) *Sweeper {
	return &Sweeper{orders: orders, every: every, log: log}
}

// Run sweeps until ctx is done. A failed sweep is logged and tried again
// at the next tick: the database may be back by then.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		n, err := s.orders.CancelExpired(ctx, Batch)
		if err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "sweeper: cancel expired orders", "error", err.Error())
		}
		if n > 0 {
			s.log.InfoContext(ctx, "sweeper: cancelled expired orders", "count", n)
		}
		if n == Batch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
