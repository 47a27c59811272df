package kafkaconsumer

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// worker handles one partition's records in order.
type worker struct {
	c         *Consumer
	partition int32
	wake      chan struct{}
	quit      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	// cancel ends the handling of the record in hand.
	cancel context.CancelFunc
	// lost is set when the partition went to another member without a
	// revoke: there is nothing left to commit for.
	lost atomic.Bool

	mu    sync.Mutex
	queue []*kgo.Record
	hwm   int64
	// next is the offset of the next record to handle, -1 before the
	// first one arrived.
	next    int64
	failing bool
	// pauseMu makes deciding and telling the client one step, so that a
	// pause and a resume cannot land in the wrong order.
	pauseMu sync.Mutex
	paused  bool
}

// push queues polled records; fetching pauses while too many wait.
func (w *worker) push(recs []*kgo.Record, hwm int64) {
	w.mu.Lock()
	if w.next < 0 {
		w.next = recs[0].Offset
	}
	w.queue = append(w.queue, recs...)
	w.hwm = hwm
	w.mu.Unlock()
	w.reportLag()
	w.updatePause()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take removes up to maxCommitBatch records from the queue.
func (w *worker) take() []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := min(len(w.queue), maxCommitBatch)
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	if len(w.queue) == 0 {
		w.queue = nil
	}
	return batch
}

// updatePause pauses fetching for the partition while its queue is long
// or its records fail, and resumes it after.
func (w *worker) updatePause() {
	w.pauseMu.Lock()
	defer w.pauseMu.Unlock()
	w.mu.Lock()
	want := w.failing || len(w.queue) >= queueHigh
	w.mu.Unlock()
	if want == w.paused {
		return
	}
	w.paused = want
	tp := map[string][]int32{w.c.cfg.Topic: {w.partition}}
	if want {
		w.c.client.PauseFetchPartitions(tp)
	} else {
		w.c.client.ResumeFetchPartitions(tp)
	}
}

func (w *worker) setFailing(f bool) {
	w.mu.Lock()
	w.failing = f
	w.mu.Unlock()
	w.updatePause()
}

// reportLag sets the lag gauge: records up to the last fetch's high
// watermark not yet handled.
func (w *worker) reportLag() {
	w.mu.Lock()
	lag := max(w.hwm-w.next, 0)
	known := w.next >= 0
	w.mu.Unlock()
	if !known {
		return
	}
	w.c.metrics.lag.WithLabelValues(w.c.cfg.Topic, strconv.Itoa(int(w.partition))).Set(float64(lag))
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	for {
		batch := w.take()
		if len(batch) == 0 {
			select {
			case <-w.quit:
				return
			case <-w.wake:
				continue
			}
		}
		handled := 0
		for _, rec := range batch {
			if w.quitting() {
				break
			}
			ok, deadLettered := w.handle(ctx, rec)
			if !ok {
				break
			}
			handled++
			w.mu.Lock()
			w.next = rec.Offset + 1
			w.mu.Unlock()
			if deadLettered {
				// Commit at once: a dead letter is not de-duplicated
				// downstream, so it should not be written twice.
				w.commit(ctx, rec)
			}
		}
		if handled > 0 {
			w.commit(ctx, batch[handled-1])
			w.reportLag()
		}
		if handled < len(batch) {
			return // told to quit; the rest is handled by the next owner
		}
		w.updatePause()
	}
}

// quitting reports whether the worker was told to stop: it then stops
// between records rather than finishing its batch.
func (w *worker) quitting() bool {
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

// handle handles rec, retrying with backoff until it succeeds (ok), goes
// to the dead-letter topic (ok and deadLettered), or the worker is told to
// quit (not ok).
func (w *worker) handle(ctx context.Context, rec *kgo.Record) (ok, deadLettered bool) {
	c := w.c
	backoff := c.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		deadLettered, err := w.attempt(ctx, rec)
		if err == nil {
			if attempt > 1 {
				w.setFailing(false)
			}
			return true, deadLettered
		}
		if ctx.Err() != nil {
			return false, false
		}
		c.metrics.retries.WithLabelValues(rec.Topic).Inc()
		c.log.WarnContext(ctx, "consumer: record failed; retrying", "topic", rec.Topic, "partition", rec.Partition,
			"offset", rec.Offset, "attempt", attempt, "retry_in", backoff.String(), "error", err.Error())
		if attempt == 1 {
			w.setFailing(true)
		}
		t := time.NewTimer(backoff)
		select {
		case <-w.quit:
			t.Stop()
			return false, false
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.RetryBackoffMax)
	}
}

// attempt handles rec once; a poison record is dead-lettered instead.
func (w *worker) attempt(ctx context.Context, rec *kgo.Record) (deadLettered bool, err error) {
	hctx, cancel := context.WithTimeout(ctx, w.c.cfg.HandleTimeout)
	defer cancel()
	err = w.c.cfg.Handler(hctx, rec)
	if errors.Is(err, ErrPoison) {
		return true, w.c.deadLetter(ctx, rec, err)
	}
	return false, err
}

// commit commits up to and including rec. It does so even after the
// handling was abandoned (ctx cancelled when the handover grace ran out):
// the records handled before the abandoned one are done, and the next
// owner must not handle them again. A lost partition is not committed:
// its member's commits are refused, as it is another member's already. A
// failed commit is logged, not retried: the records after the last good
// commit are handled again by whoever owns the partition next, which
// handlers are idempotent for.
func (w *worker) commit(ctx context.Context, rec *kgo.Record) {
	if w.lost.Load() {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := w.c.client.CommitRecords(cctx, rec); err != nil {
		w.c.log.WarnContext(ctx, "consumer: commit failed; records may be handled again", "topic", rec.Topic,
			"partition", rec.Partition, "offset", rec.Offset, "error", err.Error())
	}
}
