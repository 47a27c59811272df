package kafkaconsumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/minizon/minizon/internal/kafkaconsumer"
)

// Every test stops what it started: consumers, clients, brokers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	topic      = "orders"
	deadLetter = "orders.dlq"
	group      = "workers"
)

// newBroker starts an in-process Kafka with topic's partitions.
func newBroker(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newClient is a plain client for producing and reading offsets.
func newClient(t *testing.T, broker *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(broker.ListenAddrs()...),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produce writes n records to partition p of topic, valued "p<p>-<i>"
// from first on.
func produce(t *testing.T, cl *kgo.Client, p int32, first, n int) {
	t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := first; i < first+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d-%d", p, i)})
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed is the group's committed offset per partition of topic; a
// partition without a commit is missing.
func committed(t *testing.T, cl *kgo.Client) map[int32]int64 {
	t.Helper()
	offsets, err := kadm.NewClient(cl).FetchOffsets(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, o := range offsets[topic] {
		if o.Err != nil {
			t.Fatalf("committed offset of partition %d: %v", p, o.Err)
		}
		out[p] = o.At
	}
	return out
}

// waitFor polls until cond holds; the limit only keeps a broken build from
// hanging, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// await waits for ch to be closed.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// handling is one call of a Handler, as the journal saw it end.
type handling struct {
	member    string
	partition int32
	offset    int64
	err       error
	at        time.Time // when the call began
}

// journal records every call of the handlers it wraps, in the order they
// ended.
type journal struct {
	mu    sync.Mutex
	calls []handling
}

// wrap returns a Handler for member that runs h and records the call.
func (j *journal) wrap(member string, h kafkaconsumer.Handler) kafkaconsumer.Handler {
	return func(ctx context.Context, rec *kgo.Record) error {
		at := time.Now()
		err := h(ctx, rec)
		j.mu.Lock()
		j.calls = append(j.calls, handling{member: member, partition: rec.Partition, offset: rec.Offset, err: err, at: at})
		j.mu.Unlock()
		return err
	}
}

// all returns the calls so far.
func (j *journal) all() []handling {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.calls)
}

// handled returns the offsets of p handled successfully, in the order
// they were, by any member ("") or one.
func (j *journal) handled(p int32, member string) []int64 {
	var out []int64
	for _, c := range j.all() {
		if c.partition == p && c.err == nil && (member == "" || c.member == member) {
			out = append(out, c.offset)
		}
	}
	return out
}

// covers reports whether offsets 0 to n-1 of p were all handled.
func (j *journal) covers(p int32, n int64) bool {
	done := map[int64]bool{}
	for _, o := range j.handled(p, "") {
		done[o] = true
	}
	for o := range n {
		if !done[o] {
			return false
		}
	}
	return true
}

// runs prints offsets as runs: "0-50 0-199", for readable failures.
func runs(offsets []int64) string {
	var b strings.Builder
	for i := 0; i < len(offsets); {
		j := i
		for j+1 < len(offsets) && offsets[j+1] == offsets[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if i == j {
			fmt.Fprintf(&b, "%d", offsets[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", offsets[i], offsets[j])
		}
		i = j + 1
	}
	return "[" + b.String() + "]"
}

// upTo returns first, first+1, ..., last-1.
func upTo(first, last int64) []int64 {
	var out []int64
	for o := first; o < last; o++ {
		out = append(out, o)
	}
	return out
}

// member is a Consumer running in the background.
type member struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's, once done
}

// wait waits for Run to return and returns its error.
func (m *member) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-m.done:
		return m.err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of its context's end")
		return nil
	}
}

// stop ends Run's context and waits for it to return.
func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	if err := m.wait(t); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// config is what the tests share: short backoffs, quick heartbeats so
// that rebalances start soon, and the member's name as its client id.
func config(broker *kfake.Cluster, name string, h kafkaconsumer.Handler) kafkaconsumer.Config {
	return kafkaconsumer.Config{
		Brokers: broker.ListenAddrs(), Group: group, Topic: topic, DeadLetterTopic: deadLetter,
		Handler: h, RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 160 * time.Millisecond,
		HandoverGrace: 30 * time.Second,
		ClientOptions: []kgo.Opt{kgo.ClientID(name), kgo.HeartbeatInterval(100 * time.Millisecond)},
	}
}

// start runs a consumer until the test ends or stop is called.
func start(t *testing.T, cfg kafkaconsumer.Config, log *slog.Logger) *member {
	t.Helper()
	c, err := kafkaconsumer.New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.err = c.Run(ctx)
	}()
	t.Cleanup(func() { m.stop(t) })
	return m
}

// handovers is a slog.Handler that keeps the consumer's "handing over
// partitions" lines: they are logged once the partitions' workers were
// told to stop, so no new record of them starts after.
type handovers struct {
	mu   sync.Mutex
	seen []handover
}

type handover struct {
	reason     string
	partitions []int32
}

func (h *handovers) logger() *slog.Logger { return slog.New(h) }

func (h *handovers) Enabled(context.Context, slog.Level) bool { return true }

func (h *handovers) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "handing over partitions") {
		return nil
	}
	var ho handover
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "reason":
			ho.reason = a.Value.String()
		case "partitions":
			ho.partitions, _ = a.Value.Any().([]int32)
		}
		return true
	})
	h.mu.Lock()
	h.seen = append(h.seen, ho)
	h.mu.Unlock()
	return nil
}

func (h *handovers) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *handovers) WithGroup(string) slog.Handler      { return h }

// wait waits for the first handover for reason.
func (h *handovers) wait(t *testing.T, reason string) handover {
	t.Helper()
	var found handover
	waitFor(t, "a handover ("+reason+")", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, ho := range h.seen {
			if ho.reason == reason {
				found = ho
				return true
			}
		}
		return false
	})
	return found
}
