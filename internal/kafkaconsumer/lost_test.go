package kafkaconsumer_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A partition lost (the group told the member its generation is over, as
// after a missed session) may be another member's already: its record in
// hand is abandoned at once, without the handover grace, and nothing more
// is committed for it. Its next owner, here the same member after it
// rejoined, starts at the last commit: the records handled since are
// handled again. That is the second place, after refused commits, where
// the contract lets a record be handled twice.
func TestALostPartitionIsAbandonedAtOnceAndHandledAgainFromTheLastCommit(t *testing.T) {
	t.Parallel()
	const stuckAt, total = 20, 30
	broker := newBroker(t, 1)
	cl := newClient(t, broker)
	produce(t, cl, 0, 0, total)

	atRecord := make(chan struct{})
	ended := make(chan error, 1)
	var j journal
	first := true
	cfg := config(broker, "a", j.wrap("a", func(ctx context.Context, rec *kgo.Record) error {
		if rec.Offset != stuckAt || !first {
			return nil
		}
		first = false // a partition's records are handled one at a time
		close(atRecord)
		<-ctx.Done()
		ended <- ctx.Err()
		return ctx.Err()
	}))
	// Far longer than the test waits: a cancellation within the wait
	// is not the grace running out.
	cfg.HandoverGrace = 10 * time.Minute
	var hos handovers
	start(t, cfg, hos.logger())
	await(t, atRecord, "the record in hand")

	broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Heartbeat}, Group: group, Err: kerr.IllegalGeneration})
	if ho := hos.wait(t, "lost"); !slices.Equal(ho.partitions, []int32{0}) {
		t.Errorf("lost partitions %v; want 0", ho.partitions)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the record in hand ended with %v; want it cancelled", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the record in hand of a lost partition was not abandoned")
	}

	waitFor(t, "every record to be handled and committed", func() bool { return committed(t, cl)[0] == total })
	want := append(upTo(0, stuckAt), upTo(0, total)...)
	if got := j.handled(0, ""); !slices.Equal(got, want) {
		t.Errorf("handled %s; want %s: up to the lost record, then again from the last commit (none)", runs(got), runs(want))
	}
}
