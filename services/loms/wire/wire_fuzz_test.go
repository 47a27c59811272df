package wire_test

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/wire"
)

// FuzzEncodeEvent encodes arbitrary events and decodes the record value as
// a consumer does: every field comes back as it went in, the status as its
// enum number and the time to the nanosecond. items holds 8 bytes per item
// (sku, count, little endian).
func FuzzEncodeEvent(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), int64(42), int64(7), int8(order.StatusPayed), int8(order.StatusAwaitingPayment),
		int64(1795654923), int64(4), []byte{0x03, 0x4b, 0x17, 0x2e, 0x02, 0, 0, 0, 0x06, 0x8f, 0x1b, 0x2e, 0xff, 0xff, 0, 0})
	f.Add([]byte{}, int64(0), int64(0), int8(order.StatusUnspecified), int8(order.StatusUnspecified), int64(0), int64(0), []byte(nil))
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), int64(math.MaxInt64), int64(math.MinInt64),
		int8(-1), int8(127), int64(math.MaxInt64), int64(-1), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte("time.Time minimum"), int64(1), int64(1), int8(order.StatusNew), int8(order.StatusUnspecified),
		int64(-62135596800), int64(0), []byte{1, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, id []byte, orderID, user int64, status, previous int8, sec, nsec int64, items []byte) {
		var eventID uuid.UUID
		copy(eventID[:], id)
		e := order.Event{
			ID: eventID, OrderID: orderID, User: user, Status: order.Status(status), Previous: order.Status(previous),
			OccurredAt: time.Unix(sec, nsec).UTC(),
		}
		for ; len(items) >= 8; items = items[8:] {
			e.Items = append(e.Items, order.Item{SKU: binary.LittleEndian.Uint32(items), Count: binary.LittleEndian.Uint32(items[4:])})
		}
		b, err := wire.EncodeEvent(e)
		if err != nil {
			t.Fatalf("encode %+v: %v", e, err)
		}
		var got lomsv1.OrderEvent
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatalf("decode the encoded event: %v", err)
		}
		if got.GetEventId() != e.ID.String() || got.GetOrderId() != e.OrderID || got.GetUser() != e.User ||
			got.GetStatus() != wire.Status(e.Status) || got.GetPreviousStatus() != wire.Status(e.Previous) {
			t.Fatalf("event %+v came back as %v", e, &got)
		}
		if ts := got.GetOccurredAt(); ts.GetSeconds() != e.OccurredAt.Unix() || int(ts.GetNanos()) != e.OccurredAt.Nanosecond() {
			t.Fatalf("occurred_at %s came back as %v", e.OccurredAt, ts)
		}
		if len(got.GetItems()) != len(e.Items) {
			t.Fatalf("%d items came back as %d", len(e.Items), len(got.GetItems()))
		}
		for i, it := range got.GetItems() {
			if it.GetSku() != e.Items[i].SKU || it.GetCount() != e.Items[i].Count {
				t.Fatalf("item %d %+v came back as %v", i, e.Items[i], it)
			}
		}
	})
}
