package kafkaconsumer_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

// When Run's context ends, Run stops every worker between records: the
// record in hand finishes, its context untouched, if it can within the
// handover grace, and is abandoned (its context cancelled) if it cannot.
// Run returns once everything handled is committed and the member left
// the group, and no goroutine of the consumer outlives it.
//
// Not parallel: the goroutine check must see only this test's.
func TestShutdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		// finishes says whether the handler finishes the record in hand
		// when told to, or only when its context is cancelled.
		finishes bool
	}{
		{name: "TheRecordInHandFinishesWithinTheGrace", grace: time.Minute, finishes: true},
		{name: "TheRecordInHandIsAbandonedAfterTheGrace", grace: 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			testShutdown(t, tc.grace, tc.finishes)
			noLeaks(t, before)
		})
	}
}

func testShutdown(t *testing.T, grace time.Duration, finishes bool) {
	const inHand, total = 3, 10
	broker := newBroker(t, 2)
	cl := newClient(t, broker)
	produce(t, cl, 0, 0, total)
	produce(t, cl, 1, 0, total)

	atRecord := make(chan struct{})
	release := make(chan struct{})
	ended := make(chan error, 1) // the context error the record in hand ended with
	var j journal
	cfg := config(broker, "a", j.wrap("a", func(ctx context.Context, rec *kgo.Record) error {
		if rec.Partition != 0 || rec.Offset != inHand {
			return nil
		}
		close(atRecord)
		select {
		case <-release:
		case <-ctx.Done():
		}
		ended <- ctx.Err()
		return ctx.Err()
	}))
	cfg.HandoverGrace = grace
	var hos handovers
	m := start(t, cfg, hos.logger())
	await(t, atRecord, "the record in hand")
	waitFor(t, "the other partition to be handled", func() bool { return j.covers(1, total) })

	m.cancel()
	if ho := hos.wait(t, "shutdown"); !slices.Equal(ho.partitions, []int32{0, 1}) {
		t.Errorf("shutdown handed over partitions %v; want 0 and 1", ho.partitions)
	}
	if finishes {
		select {
		case <-m.done:
			t.Fatal("Run returned while a record was in hand")
		default:
		}
		close(release)
	}
	if err := m.wait(t); err != nil {
		t.Errorf("Run: %v", err)
	}
	switch err := <-ended; {
	case finishes && err != nil:
		t.Errorf("the record in hand's context ended with %v; want it untouched", err)
	case !finishes && !errors.Is(err, context.Canceled):
		t.Errorf("the abandoned record's context ended with %v; want it cancelled", err)
	}

	last := int64(inHand) // the first record not handled on partition 0
	if finishes {
		last = inHand + 1
	}
	if got := j.handled(0, ""); !slices.Equal(got, upTo(0, last)) {
		t.Errorf("partition 0 handled %s; want 0-%d and no record begun after the shutdown", runs(got), last-1)
	}
	if c := committed(t, cl); c[0] != last || c[1] != total {
		t.Errorf("committed offsets once Run returned: %v; want partition 0 at %d, 1 at %d", c, last, total)
	}
	cl.Close()
	broker.Close()
}

// noLeaks fails t if goroutines started since ignored outlive it. The
// Kafka client's and broker's end shortly after Close returns: it looks
// again for up to a minute.
func noLeaks(t *testing.T, ignored goleak.Option) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := goleak.Find(ignored)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines left behind: %v", err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
