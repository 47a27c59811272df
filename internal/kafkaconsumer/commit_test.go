package kafkaconsumer_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Offsets are committed only for handled records, and all of those are
// committed when a member stops. A member stopped while its handler is
// stuck on a record (it would never finish by itself) abandons that
// record once the handover grace is over: the group's committed offset is
// that record's, though the records before it were handled in the same
// batch, and a new member resumes exactly there: it handles the abandoned
// record and the ones after, and nothing that was handled.
func TestAMemberStoppedMidHandlingIsSucceededFromTheFirstUnhandledRecord(t *testing.T) {
	t.Parallel()
	const stuckAt, total = 20, 30
	broker := newBroker(t, 2)
	cl := newClient(t, broker)
	produce(t, cl, 0, 0, total)
	produce(t, cl, 1, 0, total)

	inHand := make(chan struct{})
	var j journal
	cfg := config(broker, "a", j.wrap("a", func(ctx context.Context, rec *kgo.Record) error {
		if rec.Partition == 0 && rec.Offset == stuckAt {
			close(inHand)
			<-ctx.Done() // stuck until the consumer gives up on it
			return ctx.Err()
		}
		return nil
	}))
	cfg.HandoverGrace = 100 * time.Millisecond
	first := start(t, cfg, nil)
	await(t, inHand, "the record the handler is stuck on")
	waitFor(t, "the other partition to be handled and committed", func() bool { return committed(t, cl)[1] == total })
	if c, ok := committed(t, cl)[0]; ok && c > stuckAt {
		t.Errorf("partition 0 committed up to %d while its record %d is in hand", c, stuckAt)
	}

	first.stop(t)
	calls := j.all()
	last := calls[len(calls)-1]
	if last.partition != 0 || last.offset != stuckAt || !errors.Is(last.err, context.Canceled) {
		t.Errorf("the last call was for partition %d offset %d and ended with %v; want the stuck record, cancelled",
			last.partition, last.offset, last.err)
	}
	if c := committed(t, cl); c[0] != stuckAt || c[1] != total {
		t.Errorf("committed offsets after the stop: %v; want partition 0 at %d (the first unhandled record), 1 at %d",
			c, stuckAt, total)
	}

	start(t, config(broker, "b", j.wrap("b", func(context.Context, *kgo.Record) error { return nil })), nil)
	waitFor(t, "the next member to handle the rest", func() bool { return committed(t, cl)[0] == total })
	if got := j.handled(0, "a"); !slices.Equal(got, upTo(0, stuckAt)) {
		t.Errorf("first member handled %s of partition 0; want 0-%d", runs(got), stuckAt-1)
	}
	if got := j.handled(0, "b"); !slices.Equal(got, upTo(stuckAt, total)) {
		t.Errorf("next member handled %s of partition 0; want %d-%d", runs(got), stuckAt, total-1)
	}
	if got := j.handled(1, "b"); len(got) != 0 {
		t.Errorf("next member handled %s of partition 1 again", runs(got))
	}
}
