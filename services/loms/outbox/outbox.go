// Package outbox publishes the order events that LOMS writes to its outbox
// table to Kafka, in order per order and exactly once, removing them from
// the outbox only after the broker acknowledged them.
//
// Exactly once, although the removal and the produce are two systems: each
// record carries its event id in a header, and the outbox keeps, per
// partition, the offset after the last record that a committed batch
// published. Before producing, a relay compares that with the partitions'
// end offsets; anything beyond was produced by a relay that died, or whose
// produce failed, before it could remove its rows, and is read back and
// removed instead of being produced again. In the steady state the check is
// one ListOffsets request per batch. The topic must have no other producer.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/kafkatopic"
)

// Topic is where order events go.
const Topic = "loms.order-events"

// EventIDHeader is the record header holding the event's id as text.
const EventIDHeader = "event-id"

// Message is one unsent outbox row.
type Message struct {
	ID      int64
	EventID uuid.UUID
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

// Batch is what a relay is given to publish.
type Batch struct {
	// Messages are unsent, in the order they were written.
	Messages []Message
	// Next is, per partition, the offset after the last record that a
	// committed batch published; a partition is absent until then.
	Next map[int32]int64
}

// Published is what publishing a batch did.
type Published struct {
	// Found are the ids of unsent events, in the batch or after it, whose
	// records were already in the topic: they are to be removed.
	Found []uuid.UUID
	// Next holds the partitions whose offset in Batch.Next moved: past
	// every record now in the topic.
	Next map[int32]int64
}

// Source hands out unsent messages.
type Source interface {
	// PublishBatch takes the relay lock (one relay publishes at a time,
	// whatever the number of replicas), reads up to max unsent messages in
	// the order they were written and the partitions' progress, calls
	// publish, and if it succeeded removes the batch and what it found
	// from the outbox and stores the new progress, in one transaction. It
	// returns how many messages it published: 0 when another relay holds
	// the lock or nothing is waiting.
	PublishBatch(ctx context.Context, max int, publish func(context.Context, Batch) (Published, error)) (int, error)
}

// Config tunes the relay.
type Config struct {
	// PollInterval is how long the relay waits when the outbox is empty.
	PollInterval time.Duration
	// BatchSize is the most messages published in one transaction.
	BatchSize int
	// ProduceTimeout bounds waiting for the broker's acknowledgement.
	ProduceTimeout time.Duration
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

func (r *Relay) produce(ctx context.Context, b Batch) (Published, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ProduceTimeout)
	defer cancel()
	next := maps.Clone(b.Next)
	if next == nil {
		next = make(map[int32]int64)
	}
	found, err := r.reconcile(ctx, next)
	if err != nil {
		return Published{}, err
	}
	records := make([]*kgo.Record, 0, len(b.Messages))
	for _, m := range b.Messages {
		if _, ok := found[m.EventID]; ok {
			continue
		}
		records = append(records, &kgo.Record{
			Topic:   Topic,
			Key:     strconv.AppendInt(nil, m.OrderID, 10),
			Value:   m.Payload,
			Headers: headers(m),
		})
	}
	if len(records) > 0 {
		results := r.client.ProduceSync(ctx, records...)
		if err := results.FirstErr(); err != nil {
			return Published{}, fmt.Errorf("produce %d events: %w", len(records), err)
		}
		for _, res := range results {
			advance(next, res.Record.Partition, res.Record.Offset+1)
		}
	}
	// Only what moved is written back.
	maps.DeleteFunc(next, func(p int32, n int64) bool {
		was, ok := b.Next[p]
		return ok && was == n
	})
	return Published{Found: slices.Collect(maps.Keys(found)), Next: next}, nil
}

// reconcile finds records in the topic beyond next: those a relay produced
// but could not remove from the outbox. It returns their event ids and moves next to the
// end of every partition.
//
// With no stored offset at all (a new deployment, or the first batch after
// upgrading from a version that kept none), every partition starts at its
// end: the Source commits that before any message is produced, so there is
// always a stored offset to reconcile against. Reading a long topic from
// its start could take longer than a batch may, and older records carry no
// event id anyway. A partition added to the topic later is read from its
// start, which is short.
func (r *Relay) reconcile(ctx context.Context, next map[int32]int64) (map[uuid.UUID]struct{}, error) {
	adm := kadm.NewClient(r.client)
	ends, err := adm.ListEndOffsets(ctx, Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	scan := make(map[int32]int64)
	last := make(map[int32]int64)
	first := len(next) == 0
	ends.Each(func(o kadm.ListedOffset) {
		n, known := next[o.Partition]
		switch {
		case first:
			r.log.InfoContext(ctx, "outbox relay: no stored offsets; starting from the end of the topic",
				"partition", o.Partition, "end", o.Offset)
			next[o.Partition] = o.Offset
		case known && o.Offset < n:
			// The topic was recreated or truncated (a dev broker that
			// started empty): what it held is gone, go on from its end.
			r.log.WarnContext(ctx, "outbox relay: partition is behind what was published; starting from its end",
				"partition", o.Partition, "end", o.Offset, "published_up_to", n)
			next[o.Partition] = o.Offset
		case o.Offset > n:
			scan[o.Partition] = n
			last[o.Partition] = o.Offset - 1
		}
	})
	found := make(map[uuid.UUID]struct{})
	if len(scan) == 0 {
		return found, nil
	}
	// Retention may have removed some or all of the records to read.
	starts, err := adm.ListStartOffsets(ctx, Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	from := make(map[int32]kgo.Offset, len(scan))
	for p, n := range scan {
		start, _ := starts.Lookup(Topic, p)
		if start.Offset > n {
			r.log.WarnContext(ctx, "outbox relay: records produced but not removed from the outbox are gone (retention); their events may be published again",
				"partition", p, "from", n, "to", start.Offset)
		}
		if start.Offset > last[p] {
			advance(next, p, last[p]+1)
			delete(last, p)
			continue
		}
		from[p] = kgo.NewOffset().At(max(n, start.Offset))
	}
	if len(from) == 0 {
		return found, nil
	}
	// Only after a failure: one client for the read back. Control records
	// (a transaction's end) take offsets too: kept, the last offset always
	// arrives.
	cl, err := kgo.NewClient(append(slices.Clip(r.client.Opts()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{Topic: from}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.KeepControlRecords())...)
	if err != nil {
		return nil, fmt.Errorf("read back client: %w", err)
	}
	defer cl.Close()
	for len(last) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read back unremoved records: %w", err)
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		if ferr != nil {
			return nil, fmt.Errorf("read back unremoved records: %w", ferr)
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, rec := range p.Records {
				if id, ok := eventID(rec); ok {
					found[id] = struct{}{}
				}
				if end, ok := last[p.Partition]; ok && rec.Offset >= end {
					advance(next, p.Partition, end+1)
					delete(last, p.Partition)
				}
			}
			// Retention removed the rest since the start was listed.
			if end, ok := last[p.Partition]; ok && p.LogStartOffset > end {
				advance(next, p.Partition, end+1)
				delete(last, p.Partition)
			}
		})
	}
	if len(found) > 0 {
		r.log.WarnContext(ctx, "outbox relay: found events published but still in the outbox; not publishing them again",
			"events", len(found))
	}
	return found, nil
}

func advance(next map[int32]int64, partition int32, to int64) {
	if to > next[partition] {
		next[partition] = to
	}
}

func eventID(rec *kgo.Record) (uuid.UUID, bool) {
	for _, h := range rec.Headers {
		if h.Key == EventIDHeader {
			id, err := uuid.ParseBytes(h.Value)
			return id, err == nil
		}
	}
	return uuid.UUID{}, false
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// headers carry the event id and the trace context in the record, the
// latter as W3C traceparent and tracestate headers like those of HTTP.
func headers(m Message) []kgo.RecordHeader {
	h := []kgo.RecordHeader{{Key: EventIDHeader, Value: []byte(m.EventID.String())}}
	if m.TraceParent != "" {
		h = append(h, kgo.RecordHeader{Key: "traceparent", Value: []byte(m.TraceParent)})
		if m.TraceState != "" {
			h = append(h, kgo.RecordHeader{Key: "tracestate", Value: []byte(m.TraceState)})
		}
	}
	return h
}
