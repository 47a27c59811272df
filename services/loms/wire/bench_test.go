package wire_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/wire"
)

// BenchmarkEncodeEvent measures the encoding of one order event, which the
// outbox relay does for every status change it publishes: a relay batch of
// hundreds of events pays it hundreds of times.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, n := range []int{3, 50} {
		items := make([]order.Item, n)
		for i := range items {
			items[i] = order.Item{SKU: uint32(773297411 + i), Count: uint32(1 + i%5)}
		}
		e := order.Event{
			ID: uuid.New(), OrderID: 42, User: 7, Status: order.StatusAwaitingPayment, Previous: order.StatusNew,
			OccurredAt: time.Date(2026, 11, 26, 1, 2, 3, 4, time.UTC),
			Items:      items,
		}
		b.Run(strconv.Itoa(n)+"_items", func(b *testing.B) {
			enc, err := wire.EncodeEvent(e)
			if err != nil {
				b.Fatal(err)
			}
			var got lomsv1.OrderEvent
			if err := proto.Unmarshal(enc, &got); err != nil || len(got.GetItems()) != n || got.GetEventId() != e.ID.String() {
				b.Fatalf("decoded %d items, event id %q, %v; want %d, %q", len(got.GetItems()), got.GetEventId(), err, n, e.ID)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _ = wire.EncodeEvent(e)
			}
		})
	}
}
