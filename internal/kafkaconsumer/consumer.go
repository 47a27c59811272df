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

// Handler handles one record. A record is handled at least once, so a
// Handler must be idempotent (by an id the record carries, say). An error
// wrapping ErrPoison dead-letters the record; any other error is retried,
// with backoff, until the Handler succeeds.
//
// Its context is not cancelled when the record's partition is revoked or
// Run's context is done, so that a record begun is finished: it is
// cancelled only when the record is abandoned (the handover grace ran out,
// or the partition was lost), and each call is bounded by
// Config.HandleTimeout. A Handler whose context ended should undo what it
// began and return the context's error: the record is then not committed,
// and it is handled again (by the next owner, or at the next retry).
type Handler func(ctx context.Context, rec *kgo.Record) error

// Config says what to consume, what to do with each record and how
// patiently.
type Config struct {
	// Brokers are the seed brokers.
	Brokers []string
	// Group is the consumer group: members with the same Group share the
	// partitions of Topic.
	Group string
	// Topic is the topic consumed.
	Topic string
	// Handler handles each record of Topic.
	Handler Handler
	// DeadLetterTopic receives the records Handler rejects as poison
	// (ErrPoison). Run creates it, with one partition, unless it exists.
	DeadLetterTopic string
	// RetryBackoff is the first wait before a failed record is retried
	// (default 100ms); it doubles up to RetryBackoffMax (default
	// RetryBackoff: no doubling).
	RetryBackoff, RetryBackoffMax time.Duration
	// HandleTimeout bounds one call of Handler (default 1m).
	HandleTimeout time.Duration
	// HandoverGrace is how long a worker may go on with its record in hand
	// when its partition is revoked or Run's context is done, before that
	// record's handling is cancelled (default 10s). Rebalances wait for
	// it, so it must stay well under the group's rebalance timeout
	// (franz-go's default is 60s).
	HandoverGrace time.Duration
	// SessionTimeout is the group session timeout; 0 keeps franz-go's
	// (45s). Heartbeats go at a third of it, at most every 3s.
	SessionTimeout time.Duration
	// ClientOptions are added to the Kafka client's, for tests.
	ClientOptions []kgo.Opt
}

// validate reports what is missing; a zero duration takes its default.
func (cfg Config) validate() error {
	var errs []error
	if len(cfg.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if cfg.Group == "" || cfg.Topic == "" || cfg.DeadLetterTopic == "" {
		errs = append(errs, errors.New("group, topic and dead-letter topic are required"))
	}
	if cfg.DeadLetterTopic == cfg.Topic && cfg.Topic != "" {
		// A poison record would come back to be rejected again, forever.
		errs = append(errs, fmt.Errorf("dead-letter topic %q is the topic consumed", cfg.Topic))
	}
	if cfg.Handler == nil {
		errs = append(errs, errors.New("no handler"))
	}
	return errors.Join(errs...)
}

// queueHigh is how many records a partition's worker may have waiting
// before fetching for that partition pauses.
const queueHigh = 2000

// maxCommitBatch is the most records handled between two commits.
const maxCommitBatch = 100

// Consumer is a running group member.
type Consumer struct {
	cfg     Config
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
// consumer's metrics are registered on reg (two consumers on one registry
// need it wrapped, by prometheus.WrapRegistererWith, to tell them apart);
// a nil reg registers them nowhere, and a nil log discards the log lines.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer config: %w", err)
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 100 * time.Millisecond
	}
	if cfg.RetryBackoffMax < cfg.RetryBackoff {
		cfg.RetryBackoffMax = cfg.RetryBackoff
	}
	if cfg.HandleTimeout <= 0 {
		cfg.HandleTimeout = time.Minute
	}
	if cfg.HandoverGrace <= 0 {
		cfg.HandoverGrace = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, log: log, metrics: m, workers: map[int32]*worker{}, base: context.Background()}
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

// Run consumes until ctx is done. Then every worker finishes its record in
// hand (or abandons it once Config.HandoverGrace is over) and commits what
// it handled, and the member leaves the group. Run returns nil once that is
// done.
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
	c.stop(nil, c.cfg.HandoverGrace, stopShutdown)
	return nil
}

// Close leaves the group and closes the connections; Run does it on
// return, Close is for a consumer whose Run never started.
func (c *Consumer) Close() { c.closeOnce.Do(c.client.Close) }

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
		c.stop(ps, c.cfg.HandoverGrace, stopRevoked)
	}
}

// lost stops the workers of partitions that may be another member's
// already: their commits would be refused, so the record in hand is
// abandoned at once and nothing is committed.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	if ps := lost[c.cfg.Topic]; len(ps) > 0 {
		c.stop(ps, 0, stopLost)
	}
}

// Why workers stop, as the handover log line says.
const (
	stopRevoked  = "revoked"
	stopLost     = "lost"
	stopShutdown = "shutdown"
)

// stop stops the given partitions' workers, or all of them for nil, and
// waits for them. A worker still busy after grace has its handling
// cancelled. Workers stay in the map until they are done, so a revoke
// during shutdown still waits for them. The log line comes once every
// worker was told, so whoever reads it knows no new record starts.
func (c *Consumer) stop(partitions []int32, grace time.Duration, why string) {
	c.mu.Lock()
	var stopping []*worker
	var ps []int32
	for p, w := range c.workers {
		if partitions == nil || slices.Contains(partitions, p) {
			if why == stopLost {
				w.lost.Store(true)
			}
			stopping = append(stopping, w)
			ps = append(ps, p)
			w.stopOnce.Do(func() { close(w.quit) })
		}
	}
	c.mu.Unlock()
	if len(stopping) == 0 {
		return
	}
	slices.Sort(ps)
	c.log.Info("consumer: handing over partitions", "topic", c.cfg.Topic, "partitions", ps,
		"reason", why, "grace", grace.String())
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
