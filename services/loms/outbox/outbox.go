// Package outbox publishes the order events that LOMS writes to its outbox
// table to Kafka, in order per order, marking them sent only after the
// broker acknowledged them.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/kafkatopic"
)

// Topic is where order events go.
const Topic = "loms.order-events"

// Message is one unsent outbox row.
type Message struct {
	ID      int64
	OrderID int64
	Payload []byte
	// TraceParent and TraceState are the W3C trace context of the request
	// that made the change, empty when there was none.
	TraceParent, TraceState string
}

// Backlog is what waits in the outbox.
type Backlog struct {
	// Unsent counts the messages not yet acknowledged by the broker.
	Unsent int64
	// OldestAge is how long the oldest of them has waited; 0 when none.
	OldestAge time.Duration
}

// Source hands out unsent messages.
type Source interface {
	// PublishBatch takes the relay lock (one relay publishes at a time,
	// whatever the number of replicas), reads up to max unsent messages in
	// the order they were written, calls publish, and marks them sent if
	// publish succeeded, in one transaction. It returns how many it sent:
	// 0 when another relay holds the lock or nothing is waiting.
	PublishBatch(ctx context.Context, max int, publish func(context.Context, []Message) error) (int, error)
	// DeleteSent removes messages sent before the given time.
	DeleteSent(ctx context.Context, before time.Time) (int64, error)
}

// Config tunes the relay.
type Config struct {
	// PollInterval is how long the relay waits when the outbox is empty.
	PollInterval time.Duration
	// BatchSize is the most messages published in one transaction.
	BatchSize int
	// ProduceTimeout bounds waiting for the broker's acknowledgement.
	ProduceTimeout time.Duration
	// Retention is how long sent messages are kept for inspection.
	Retention time.Duration
	// Partitions is the partition count when the relay creates the topic.
	Partitions int32
}

// Relay moves messages from the outbox to Kafka.
type Relay struct {
	src    Source
	client *kgo.Client
	cfg    Config
	log    *slog.Logger
}

// NewRelay returns a relay producing with client, which must be an
// idempotent producer with acks from all in-sync replicas (franz-go's
// default).
func NewRelay(src Source, client *kgo.Client, cfg Config, log *slog.Logger) *Relay {
	return &Relay{src: src, client: client, cfg: cfg, log: log}
}

// Run publishes until ctx is done. A broker or database outage only delays
// publishing: the relay retries with backoff and the messages wait.
func (r *Relay) Run(ctx context.Context) error {
	kafkatopic.Ensure(ctx, r.client, Topic, r.cfg.Partitions, r.cfg.PollInterval, r.cfg.ProduceTimeout, r.log)
	backoff := r.cfg.PollInterval
	lastCleanup := time.Time{}
	for ctx.Err() == nil {
		n, err := r.publishBatch(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.WarnContext(ctx, "outbox relay: publish failed; will retry", "error", err.Error(), "retry_in", backoff)
			sleep(ctx, backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		case n == r.cfg.BatchSize:
			// More may be waiting: go on at once.
			backoff = r.cfg.PollInterval
			continue
		}
		backoff = r.cfg.PollInterval
		if time.Since(lastCleanup) > time.Minute {
			lastCleanup = time.Now()
			if _, err := r.src.DeleteSent(ctx, time.Now().Add(-r.cfg.Retention)); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "outbox relay: cleanup failed", "error", err.Error())
			}
		}
		sleep(ctx, r.cfg.PollInterval)
	}
	r.drain(ctx)
	return nil
}

// drain publishes what the RPCs drained at shutdown committed, so that with
// a single replica their events do not wait for the next start. It gives up
// after one produce timeout.
func (r *Relay) drain(ctx context.Context) {
	deadline := time.Now().Add(r.cfg.ProduceTimeout)
	for time.Now().Before(deadline) {
		n, err := r.publishBatch(ctx)
		if err != nil {
			r.log.Warn("outbox relay: events left for the next start", "error", err.Error())
			return
		}
		if n < r.cfg.BatchSize {
			return
		}
	}
}

// publishBatch publishes one batch. A batch under way when ctx is cancelled
// (shutdown) is finished, within the produce timeout, rather than abandoned
// and published again by the next relay.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ProduceTimeout+5*time.Second)
	defer cancel()
	return r.src.PublishBatch(bctx, r.cfg.BatchSize, r.produce)
}

// Flush waits for anything the producer still buffers.
func (r *Relay) Flush(ctx context.Context) error {
	if err := r.client.Flush(ctx); err != nil {
		return fmt.Errorf("flush producer: %w", err)
	}
	return nil
}

func (r *Relay) produce(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProduceTimeout)
	defer cancel()
	records := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		records[i] = &kgo.Record{
			Topic:   Topic,
			Key:     strconv.AppendInt(nil, m.OrderID, 10),
			Value:   m.Payload,
			Headers: traceHeaders(m),
		}
	}
	if err := r.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d events: %w", len(records), err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// traceHeaders carries the trace context in the record, as W3C
// traceparent and tracestate headers like those of HTTP.
func traceHeaders(m Message) []kgo.RecordHeader {
	var h []kgo.RecordHeader
	if m.TraceParent != "" {
		h = append(h, kgo.RecordHeader{Key: "traceparent", Value: []byte(m.TraceParent)})
		if m.TraceState != "" {
			h = append(h, kgo.RecordHeader{Key: "tracestate", Value: []byte(m.TraceState)})
		}
	}
	return h
}
