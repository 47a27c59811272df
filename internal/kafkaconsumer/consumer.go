// Package kafkaconsumer reads a Kafka topic in a consumer group with one worker
// per assigned partition: records of a partition are handled one after the
// other, in order, and a record's offset is committed only after it was
// handled. A record that fails is retried with backoff while only its own
// partition waits; one that can never be handled goes to a dead-letter
// topic.
package kafkaconsumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/kafkatopic"
)

// ErrPoison marks a record that no retry can handle (it cannot be
// decoded, say): it is written to the dead-letter topic and skipped.
var ErrPoison = errors.New("record cannot be handled")

// Handler handles one record. It must be idempotent: a record is handled
// at least once. Its context is not cancelled at shutdown, so that a record
// begun is finished; Config.HandleTimeout bounds it.
type Handler func(ctx context.Context, rec *kgo.Record) error

// Header names on dead-lettered records.
const (
	HeaderReason    = "dlq-reason"
	HeaderTopic     = "dlq-topic"
	HeaderPartition = "dlq-partition"
	HeaderOffset    = "dlq-offset"
)

// Config says what to consume and how patiently.
type Config struct {
	Brokers []string
	Group   string
	Topic   string
	// DeadLetterTopic receives the records Handler rejects as poison.
	DeadLetterTopic string
	// RetryBackoff is the first wait before a failed record is retried;
	// it doubles up to RetryBackoffMax.
	RetryBackoff, RetryBackoffMax time.Duration
	// HandleTimeout bounds one call of Handler.
	HandleTimeout time.Duration
	// SessionTimeout is the group session timeout; 0 keeps franz-go's
	// (45s). Heartbeats go at a third of it, at most every 3s.
	SessionTimeout time.Duration
	// ClientOptions are added to the Kafka client's, for tests.
	ClientOptions []kgo.Opt
}

// queueHigh is how many records a partition's worker may have waiting
// before fetching for that partition pauses.
const queueHigh = 2000

// maxCommitBatch is the most records handled between two commits.
const maxCommitBatch = 100

// Consumer is a running group member.
type Consumer struct {
	cfg     Config
	handle  Handler
	log     *slog.Logger
	client  *kgo.Client
	metrics *metrics

	closeOnce sync.Once

	mu      sync.Mutex
	workers map[int32]*worker
	// base is the context workers run under; set by Run.
	base context.Context
}

// New returns a group member; it joins the group at once, and Run hands
// out the records. Call Run, or Close if Run is never called. The
// consumer's metrics are registered on reg.
func New(cfg Config, handle Handler, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.RetryBackoffMax < cfg.RetryBackoff {
		cfg.RetryBackoffMax = cfg.RetryBackoff
	}
	if cfg.HandleTimeout <= 0 {
		cfg.HandleTimeout = time.Minute
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, handle: handle, log: log, metrics: m, workers: map[int32]*worker{}, base: context.Background()}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topic),
		// A new group starts at the beginning: no event is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the poll loop has handed out what it
		// polled, so every polled record has its partition's worker.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		// Resumed partitions are fetched at the next fetch, and with the
		// embedded broker of `minizon dev` new records waited for an idle
		// fetch to end (about 1s with a 1s wait; 30ms with 250ms): keep
		// the wait short.
		kgo.FetchMaxWait(250 * time.Millisecond),
	}, cfg.ClientOptions...)
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout),
			kgo.HeartbeatInterval(min(cfg.SessionTimeout/3, 3*time.Second)))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	c.client = client
	return c, nil
}

// Run consumes until ctx is done. Then every worker finishes the record in
// hand (within shutdownGrace) and commits, and the member leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.Close()
	c.mu.Lock()
	c.base = context.WithoutCancel(ctx)
	c.mu.Unlock()
	kafkatopic.Ensure(ctx, c.client, c.cfg.DeadLetterTopic, 1, c.cfg.RetryBackoff, 10*time.Second, c.log)
	for {
		fetches := c.client.PollRecords(ctx, 1000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.WarnContext(ctx, "consumer: fetch failed; retrying", "topic", topic, "partition", p, "error", err.Error())
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			c.mu.Lock()
			w := c.workers[p.Partition]
			c.mu.Unlock()
			if w == nil {
				// Cannot happen while rebalances wait for the poll loop;
				// the records are not committed, so they come back.
				c.log.ErrorContext(ctx, "consumer: records for a partition without a worker; dropped",
					"topic", p.Topic, "partition", p.Partition, "records", len(p.Records))
				return
			}
			w.push(p.Records, p.HighWatermark)
		})
		c.client.AllowRebalance()
	}
	c.client.AllowRebalance()
	c.stop(nil, shutdownGrace)
	return nil
}

// Close leaves the group and closes the connections; Run does it on
// return, Close is for a consumer whose Run never started.
func (c *Consumer) Close() { c.closeOnce.Do(c.client.Close) }

// How long a worker may finish its record in hand when its partition is
// revoked or at shutdown, before that record's handling is cancelled (its
// transaction rolls back and the next owner handles it). Rebalances wait
// for this, so it stays well under the group's rebalance timeout.
const shutdownGrace = 10 * time.Second

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range assigned[c.cfg.Topic] {
		if c.workers[p] != nil {
			continue // still ours
		}
		ctx, cancel := context.WithCancel(c.base)
		w := &worker{c: c, partition: p, wake: make(chan struct{}, 1), quit: make(chan struct{}),
			done: make(chan struct{}), cancel: cancel, next: -1}
		c.workers[p] = w
		go w.run(ctx)
	}
}

// revoked stops the workers of partitions taken away, each after its
// record in hand and a commit of what it handled, so that the next owner
// starts right after. The cooperative balancer also calls it with nothing
// revoked at the end of every session: the kept partitions' workers go on.
func (c *Consumer) revoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if ps := revoked[c.cfg.Topic]; len(ps) > 0 {
		c.stop(ps, shutdownGrace)
	}
}

// lost stops the workers of partitions already given to another member:
// their commits would fail, so the record in hand is abandoned at once.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if ps := lost[c.cfg.Topic]; len(ps) > 0 {
		c.stop(ps, 0)
	}
}

// stop stops the given partitions' workers, or all of them for nil, and
// waits for them. A worker still busy after grace has its handling
// cancelled. Workers stay in the map until they are done, so a revoke
// during shutdown still waits for them.
func (c *Consumer) stop(partitions []int32, grace time.Duration) {
	c.mu.Lock()
	var stopping []*worker
	for p, w := range c.workers {
		if partitions == nil || slices.Contains(partitions, p) {
			stopping = append(stopping, w)
			w.stopOnce.Do(func() { close(w.quit) })
		}
	}
	c.mu.Unlock()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, w := range stopping {
		select {
		case <-w.done:
		case <-timer.C:
			for _, w := range stopping {
				w.cancel()
			}
			<-w.done
		}
	}
	c.mu.Lock()
	for _, w := range stopping {
		w.cancel()
		if c.workers[w.partition] == w {
			delete(c.workers, w.partition)
		}
	}
	c.mu.Unlock()
	for _, w := range stopping {
		// A pause outlives the assignment; the next owner of the
		// partition, maybe this member again, must fetch it.
		c.client.ResumeFetchPartitions(map[string][]int32{c.cfg.Topic: {w.partition}})
		c.metrics.lag.DeleteLabelValues(c.cfg.Topic, strconv.Itoa(int(w.partition)))
	}
}

// deadLetter writes rec to the dead-letter topic with why it was rejected
// and where it came from.
func (c *Consumer) deadLetter(ctx context.Context, rec *kgo.Record, reason error) error {
	headers := append(rec.Headers[:len(rec.Headers):len(rec.Headers)],
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
	)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dl := &kgo.Record{Topic: c.cfg.DeadLetterTopic, Key: rec.Key, Value: rec.Value, Headers: headers}
	if err := c.client.ProduceSync(ctx, dl).FirstErr(); err != nil {
		return fmt.Errorf("write to %s: %w", c.cfg.DeadLetterTopic, err)
	}
	c.metrics.deadLettered.WithLabelValues(rec.Topic).Inc()
	c.log.WarnContext(ctx, "consumer: record dead-lettered", "topic", rec.Topic, "partition", rec.Partition,
		"offset", rec.Offset, "dead_letter_topic", c.cfg.DeadLetterTopic, "reason", reason.Error())
	return nil
}

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
	err = w.c.handle(hctx, rec)
	if errors.Is(err, ErrPoison) {
		return true, w.c.deadLetter(ctx, rec, err)
	}
	return false, err
}

// commit commits up to and including rec. A failed commit is logged, not
// retried: the records after the last good commit are handled again by
// whoever owns the partition next, which handlers are idempotent for.
func (w *worker) commit(ctx context.Context, rec *kgo.Record) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.c.client.CommitRecords(cctx, rec); err != nil {
		w.c.log.WarnContext(ctx, "consumer: commit failed; records may be handled again", "topic", rec.Topic,
			"partition", rec.Partition, "offset", rec.Offset, "error", err.Error())
	}
}

type metrics struct {
	lag          *prometheus.GaugeVec
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "minizon_consumer_lag",
			Help: "Records of a partition up to its high watermark (as of the last fetch) not yet handled.",
		}, []string{"topic", "partition"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_consumer_dead_lettered_total",
			Help: "Records that could not be handled and went to the dead-letter topic.",
		}, []string{"topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_consumer_retries_total",
			Help: "Failed attempts to handle a record, each followed by a retry.",
		}, []string{"topic"}),
	}
	for _, c := range []prometheus.Collector{m.lag, m.deadLettered, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}
