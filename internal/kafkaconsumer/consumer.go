package kafkaconsumer

import (
	"context"
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

// Handler handles one record. It must be idempotent: a record is handled
// at least once. Its context is not cancelled at shutdown, so that a record
// begun is finished; Config.HandleTimeout bounds it.
type Handler func(ctx context.Context, rec *kgo.Record) error

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
