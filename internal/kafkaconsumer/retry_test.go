package kafkaconsumer_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A handler that fails for one partition's records holds back that
// partition only: its failed record is retried with a doubling backoff
// and the partition is not fetched meanwhile, while the other partitions'
// records, old and new, are handled. Once the handler recovers, the
// partition goes on from the failed record, in order, with nothing
// skipped, and everything is committed.
func TestFailingPartitionIsPausedAndRetriedWhileTheOthersFlow(t *testing.T) {
	t.Parallel()
	const partitions, stuck, failAt, batch = 3, int32(1), 5, 20
	broker := newBroker(t, partitions)
	fetched := observeFetches(broker)
	cl := newClient(t, broker)

	var down atomic.Bool
	down.Store(true)
	var j journal
	cfg := config(broker, "a", j.wrap("a", func(_ context.Context, rec *kgo.Record) error {
		if rec.Partition == stuck && rec.Offset >= failAt && down.Load() {
			return errors.New("downstream unavailable")
		}
		return nil
	}))
	// Without fetch sessions every fetch request names each partition it
	// fetches, so a paused one is seen missing.
	cfg.ClientOptions = append(cfg.ClientOptions, kgo.DisableFetchSessions())
	start(t, cfg, nil)
	for p := range int32(partitions) {
		produce(t, cl, p, 0, batch)
	}

	attempts := func() []handling {
		var out []handling
		for _, c := range j.all() {
			if c.partition == stuck && c.offset == failAt {
				out = append(out, c)
			}
		}
		return out
	}
	waitFor(t, "the failed record to be retried", func() bool { return len(attempts()) >= 2 })
	// The partition was paused when its first attempt failed; only a
	// fetch already under way may still ask for it.
	pausedFrom := fetched.count() + 1
	for p := range int32(partitions) {
		produce(t, cl, p, batch, batch)
	}
	for p := range int32(partitions) {
		if p == stuck {
			continue
		}
		waitFor(t, "a healthy partition's records, old and new", func() bool { return j.covers(p, 2*batch) })
	}
	waitFor(t, "three attempts and fetches after the pause", func() bool {
		return len(attempts()) >= 4 && fetched.count() >= pausedFrom+3
	})
	if got := j.handled(stuck, ""); !slices.Equal(got, upTo(0, failAt)) {
		t.Errorf("failing partition handled %s while failing; want 0-%d and nothing after", runs(got), failAt-1)
	}
	for i, ps := range fetched.since(pausedFrom) {
		if slices.Contains(ps, stuck) {
			t.Errorf("fetch %d after the pause asked for the failing partition: %v", pausedFrom+i, ps)
		}
	}
	// Backoff: each retry waited at least its turn (20ms doubling to 160ms).
	// Lower bounds only: a busy machine makes the waits longer, never shorter.
	tries := attempts()
	for i := 1; i < len(tries); i++ {
		want := min(20*time.Millisecond<<(i-1), 160*time.Millisecond)
		if gap := tries[i].at.Sub(tries[i-1].at); gap < want {
			t.Errorf("retry %d came %s after the attempt before it; want at least %s", i, gap, want)
		}
	}

	resumedFrom := fetched.count()
	down.Store(false)
	waitFor(t, "the failing partition to catch up", func() bool { return j.covers(stuck, 2*batch) })
	for p := range int32(partitions) {
		if got := j.handled(p, ""); !slices.Equal(got, upTo(0, 2*batch)) {
			t.Errorf("partition %d handled %s; want 0-%d once each, in order", p, runs(got), 2*batch-1)
		}
	}
	for _, c := range j.all() {
		if c.err != nil && (c.partition != stuck || c.offset != failAt) {
			t.Errorf("partition %d offset %d was attempted while an earlier record failed", c.partition, c.offset)
		}
	}
	if !slices.ContainsFunc(fetched.since(resumedFrom), func(ps []int32) bool { return slices.Contains(ps, stuck) }) {
		t.Error("no fetch asked for the partition after it recovered")
	}
	waitFor(t, "every record to be committed", func() bool {
		c := committed(t, cl)
		return c[0] == 2*batch && c[1] == 2*batch && c[2] == 2*batch
	})
}

// fetches keeps the partitions each fetch request asked for, in order.
type fetches struct {
	mu  sync.Mutex
	req [][]int32
}

// observeFetches records every fetch request broker receives.
func observeFetches(broker *kfake.Cluster) *fetches {
	f := &fetches{}
	broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Observe: true, Count: -1, When: func(req kmsg.Request) bool {
		var ps []int32
		for _, t := range req.(*kmsg.FetchRequest).Topics {
			for _, p := range t.Partitions {
				ps = append(ps, p.Partition)
			}
		}
		f.mu.Lock()
		f.req = append(f.req, ps)
		f.mu.Unlock()
		return true
	}})
	return f
}

func (f *fetches) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.req)
}

// since returns the requests from the i-th on.
func (f *fetches) since(i int) [][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.req[min(i, len(f.req)):])
}
