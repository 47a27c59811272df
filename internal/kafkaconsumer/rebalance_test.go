package kafkaconsumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A second member joins while the first is in the middle of every
// partition's batch. The contract: a partition that moves is handed over
// after the record in hand (no new one starts) and a commit of everything
// handled, and its next owner starts at the group's committed offset. So
// nothing is skipped, each partition is handled in order across the two
// members, and a record is handled twice exactly when it was handled but
// not committed when its partition moved: never while commits land, and
// every record the first member handled since its last commit when they
// do not.
func TestRebalanceMidBatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// refuse makes the broker refuse the first member's commits.
		refuse bool
	}{
		{name: "HandledRecordsAreCommittedAtTheHandoverAndNoneIsHandledTwice"},
		{name: "WithCommitsRefusedTheNextOwnerHandlesAgainWhatWasNotCommitted", refuse: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRebalanceMidBatch(t, tc.refuse)
		})
	}
}

func testRebalanceMidBatch(t *testing.T, refuse bool) {
	const partitions, perPartition, inHand = 4, 200, 50
	broker := newBroker(t, partitions)
	cl := newClient(t, broker)
	for p := range int32(partitions) {
		produce(t, cl, p, 0, perPartition)
	}
	// Until the first member's id is known, every commit is refused,
	// then only that member's.
	var mu sync.Mutex
	refused, firstID := refuse, ""
	broker.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		broker.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		mu.Lock()
		refuseThis := refused || (firstID != "" && r.MemberID == firstID)
		mu.Unlock()
		if !refuseThis {
			return nil, nil, false
		}
		return refuseCommit(r), nil, true
	})

	var j journal
	release := make(chan struct{})
	allBlocked := make(chan struct{}) // closed once every partition's worker holds offset inHand
	holding := map[int32]bool{}
	first := func(ctx context.Context, rec *kgo.Record) error {
		if rec.Offset != inHand {
			return nil
		}
		mu.Lock()
		if !holding[rec.Partition] {
			holding[rec.Partition] = true
			if len(holding) == partitions {
				close(allBlocked)
			}
		}
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var hos handovers
	start(t, config(broker, "a", j.wrap("a", first)), hos.logger())
	await(t, allBlocked, "every partition's worker to hold its record in hand, the rest of its batch queued")
	if refuse {
		id := memberID(t, cl, "a")
		mu.Lock()
		refused, firstID = false, id
		mu.Unlock()
	}

	start(t, config(broker, "b", j.wrap("b", func(context.Context, *kgo.Record) error { return nil })), nil)
	ho := hos.wait(t, "revoked")
	if len(ho.partitions) == 0 || len(ho.partitions) == partitions {
		t.Fatalf("first member handed over partitions %v; want some of %d", ho.partitions, partitions)
	}
	t.Logf("first member handed over partitions %v mid-batch", ho.partitions)
	close(release)

	// The next owner of a moved partition starts after the first member's
	// last commit: right after the record in hand, or at the start.
	resume := int64(inHand + 1)
	if refuse {
		resume = 0
	}
	waitFor(t, "every record to be handled", func() bool {
		for p := range int32(partitions) {
			if !j.covers(p, perPartition) {
				return false
			}
		}
		return true
	})
	waitFor(t, "the moved partitions' commits", func() bool {
		c := committed(t, cl)
		for _, p := range ho.partitions {
			if c[p] != perPartition {
				return false
			}
		}
		return true
	})

	for p := range int32(partitions) {
		a, b := j.handled(p, "a"), j.handled(p, "b")
		var calledAfterInHand []int64
		for _, c := range j.all() {
			if c.member == "a" && c.partition == p && c.offset > inHand {
				calledAfterInHand = append(calledAfterInHand, c.offset)
			}
		}
		if !slices.Contains(ho.partitions, p) {
			if !slices.Equal(a, upTo(0, perPartition)) || len(b) != 0 {
				t.Errorf("kept partition %d: first member handled %s, second %s; want all by the first, in order", p, runs(a), runs(b))
			}
			continue
		}
		if !slices.Equal(a, upTo(0, inHand+1)) || len(calledAfterInHand) != 0 {
			t.Errorf("moved partition %d: first member handled %s and began %s; want 0-%d, the record in hand finished and no new one begun",
				p, runs(a), runs(calledAfterInHand), inHand)
		}
		if !slices.Equal(b, upTo(resume, perPartition)) {
			t.Errorf("moved partition %d: second member handled %s; want %d-%d in order", p, runs(b), resume, perPartition-1)
		}
	}
	if !refuse {
		waitFor(t, "every partition's commit", func() bool {
			c := committed(t, cl)
			for p := range int32(partitions) {
				if c[p] != perPartition {
					return false
				}
			}
			return true
		})
	}
}

// refuseCommit answers an offset commit as a broker that does not let
// this member commit.
func refuseCommit(r *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range r.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// memberID is the group member id of the client named clientID.
func memberID(t *testing.T, cl *kgo.Client, clientID string) string {
	t.Helper()
	groups, err := kadm.NewClient(cl).DescribeGroups(t.Context(), group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range groups[group].Members {
		if m.ClientID == clientID {
			return m.MemberID
		}
	}
	t.Fatalf("no member %q in group %s", clientID, group)
	return ""
}
