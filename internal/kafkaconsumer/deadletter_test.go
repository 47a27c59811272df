package kafkaconsumer_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/minizon/minizon/internal/kafkaconsumer"
)

// A record the handler rejects as poison goes to the dead-letter topic
// with its key, value and headers, plus headers naming the reason and
// where it came from; it is committed at once and never handled again,
// and the records after it are handled. A dead letter that cannot be
// written is retried: the partition does not go past its poison record
// until the dead letter is written, and it is written once.
func TestPoisonRecordIsDeadLetteredCommittedAndSkipped(t *testing.T) {
	t.Parallel()
	broker := newBroker(t, 2)
	cl := newClient(t, broker)
	// The broker refuses the first two dead letters.
	refusals := broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: deadLetter,
		Err: kerr.TopicAuthorizationFailed, Count: 2})

	atGood := make(chan struct{})
	release := make(chan struct{})
	var j journal
	start(t, config(broker, "a", j.wrap("a", func(ctx context.Context, rec *kgo.Record) error {
		if v := string(rec.Value); strings.HasPrefix(v, "poison") {
			return fmt.Errorf("%w: %s is no order", kafkaconsumer.ErrPoison, v)
		}
		if rec.Partition == 0 && rec.Offset == 2 {
			close(atGood)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})), nil)

	// Partition 0: good, poison (with a header of its own), good, poison, good.
	p0 := []*kgo.Record{
		{Key: []byte("k0"), Value: []byte("good 0")},
		{Key: []byte("k1"), Value: []byte("poison 1"), Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-1")}}},
		{Key: []byte("k2"), Value: []byte("good 2")},
		{Key: []byte("k3"), Value: []byte("poison 3")},
		{Key: []byte("k4"), Value: []byte("good 4")},
	}
	for _, r := range p0 {
		r.Topic, r.Partition = topic, 0
	}
	if err := cl.ProduceSync(t.Context(), p0...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produce(t, cl, 1, 0, 5)

	await(t, atGood, "the record after the first poison one")
	// The poison record before was committed as soon as it was written
	// aside, not at the end of its batch: a crash now would not write it
	// twice.
	if c := committed(t, cl); c[0] != 2 {
		t.Errorf("while the record after the first poison one is handled, partition 0's commit is %d; want 2", c[0])
	}
	close(release)
	waitFor(t, "every record to be handled and committed", func() bool {
		c := committed(t, cl)
		return c[0] == 5 && c[1] == 5
	})

	if got := j.handled(0, ""); !slices.Equal(got, []int64{0, 2, 4}) {
		t.Errorf("partition 0 handled %v; want the good records 0, 2, 4", got)
	}
	if got := j.handled(1, ""); !slices.Equal(got, upTo(0, 5)) {
		t.Errorf("partition 1 handled %s; want 0-4", runs(got))
	}
	var order []int64
	for _, c := range j.all() {
		if c.partition == 0 {
			order = append(order, c.offset)
		}
	}
	// Each refused dead letter sends the record through the handler again.
	if want := []int64{0, 1, 1, 1, 2, 3, 4}; !slices.Equal(order, want) {
		t.Errorf("partition 0's handler calls were for offsets %v; want %v", order, want)
	}
	if n := refusals.Hits(); n != 2 {
		t.Errorf("the broker refused %d dead letters; want 2", n)
	}

	dead := readAll(t, broker, deadLetter, 2)
	for i, want := range []*kgo.Record{p0[1], p0[3]} {
		got := dead[i]
		if string(got.Key) != string(want.Key) || string(got.Value) != string(want.Value) {
			t.Errorf("dead letter %d: key %q value %q; want the original %q %q", i, got.Key, got.Value, want.Key, want.Value)
		}
		wantHeaders := append(slices.Clone(want.Headers),
			kgo.RecordHeader{Key: kafkaconsumer.HeaderReason, Value: fmt.Appendf(nil, "record cannot be handled: %s is no order", want.Value)},
			kgo.RecordHeader{Key: kafkaconsumer.HeaderTopic, Value: []byte(topic)},
			kgo.RecordHeader{Key: kafkaconsumer.HeaderPartition, Value: []byte("0")},
			kgo.RecordHeader{Key: kafkaconsumer.HeaderOffset, Value: strconv.AppendInt(nil, want.Offset, 10)},
		)
		if !slices.EqualFunc(got.Headers, wantHeaders, func(a, b kgo.RecordHeader) bool {
			return a.Key == b.Key && string(a.Value) == string(b.Value)
		}) {
			t.Errorf("dead letter %d headers:\n got %s\nwant %s", i, headers(got.Headers), headers(wantHeaders))
		}
	}
}

// readAll reads topic from the start until it has n records, and checks
// that it holds no more.
func readAll(t *testing.T, broker *kfake.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := newClient(t, broker, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []*kgo.Record
	waitFor(t, fmt.Sprintf("%d records on %s", n, topic), func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		got = append(got, cl.PollFetches(ctx).Records()...)
		return len(got) >= n
	})
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if len(got) != n || total != int64(n) {
		t.Fatalf("%s holds %d records (read %d); want %d", topic, total, len(got), n)
	}
	return got
}

func headers(hs []kgo.RecordHeader) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s=%q ", h.Key, h.Value)
	}
	return b.String()
}
