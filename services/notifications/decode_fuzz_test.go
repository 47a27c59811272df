package notifications

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/kafkaconsumer"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications/notification"
)

// knownStatuses are the statuses an order event may report.
var knownStatuses = map[notification.Status]bool{
	notification.StatusNew: true, notification.StatusAwaitingPayment: true, notification.StatusFailed: true,
	notification.StatusPayed: true, notification.StatusCancelled: true,
}

// addEventSeeds adds record values: events as LOMS writes them, events
// each missing or breaking one thing, and bytes that are no protobuf at
// all. wrap turns a value into the target's arguments.
func addEventSeeds(f *testing.F, wrap func([]byte) []any) {
	at := time.Date(2026, 11, 26, 1, 2, 3, 4, time.UTC)
	valid := func() *lomsv1.OrderEvent {
		return &lomsv1.OrderEvent{
			EventId: "0b3e4f2c-8d2a-4c51-9d4e-6f1b2a3c4d5e", OrderId: 42, User: 7,
			Status:         lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT,
			PreviousStatus: lomsv1.OrderStatus_ORDER_STATUS_NEW,
			OccurredAt:     timestamppb.New(at),
			Items:          []*lomsv1.OrderItem{{Sku: 773297411, Count: 2}, {Sku: 773587830, Count: 65535}},
		}
	}
	for _, mutate := range []func(*lomsv1.OrderEvent){
		func(*lomsv1.OrderEvent) {},
		func(e *lomsv1.OrderEvent) {
			e.Status, e.PreviousStatus = lomsv1.OrderStatus_ORDER_STATUS_NEW, lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
		},
		func(e *lomsv1.OrderEvent) { e.Status = lomsv1.OrderStatus_ORDER_STATUS_CANCELLED },
		func(e *lomsv1.OrderEvent) { e.EventId = "{0B3E4F2C-8D2A-4C51-9D4E-6F1B2A3C4D5E}" }, // a UUID spelled otherwise
		func(e *lomsv1.OrderEvent) { e.EventId = "urn:uuid:0b3e4f2c8d2a4c519d4e6f1b2a3c4d5e" },
		func(e *lomsv1.OrderEvent) { e.EventId = "" },
		func(e *lomsv1.OrderEvent) { e.EventId = uuid.Nil.String() },
		func(e *lomsv1.OrderEvent) { e.OrderId = 0 },
		func(e *lomsv1.OrderEvent) { e.User = -1 },
		func(e *lomsv1.OrderEvent) { e.Status = lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED },
		func(e *lomsv1.OrderEvent) { e.Status = 6 },         // a status this build does not know
		func(e *lomsv1.OrderEvent) { e.PreviousStatus = 6 }, // a previous status this build does not know
		func(e *lomsv1.OrderEvent) { e.OccurredAt = nil },
		func(e *lomsv1.OrderEvent) {
			e.OccurredAt = &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999999999}
		}, // 9999-12-31T23:59:59.999999999Z
		func(e *lomsv1.OrderEvent) { e.OccurredAt = &timestamppb.Timestamp{Seconds: -62135596800} }, // 0001-01-01T00:00:00Z
		func(e *lomsv1.OrderEvent) { e.OccurredAt = &timestamppb.Timestamp{Seconds: 253402300800} }, // year 10000
		func(e *lomsv1.OrderEvent) { e.OccurredAt = &timestamppb.Timestamp{Seconds: 1 << 62} },
		func(e *lomsv1.OrderEvent) { e.OccurredAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -1} },
	} {
		e := valid()
		mutate(e)
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wrap(b)...)
	}
	f.Add(wrap(nil)...)
	f.Add(wrap([]byte(`{"eventId":"0b3e4f2c-8d2a-4c51-9d4e-6f1b2a3c4d5e","orderId":"42"}`))...) // JSON is not the wire format
	f.Add(wrap([]byte("\x0a\xff\xff\xff\xff\x0f"))...)                                          // a length beyond the end
	f.Add(wrap([]byte("\x0a\x02\xc3\x28"))...)                                                  // event_id not UTF-8
}

// FuzzDecode feeds decode arbitrary record values. It never panics; what it
// accepts is a notification within the contract (an event id, positive
// order and user ids, a status the user can be told about, a previous
// status that is empty or known, an occurred_at inside protobuf's Timestamp
// range, which the store can record), and that notification, encoded again
// as an OrderEvent, decodes to the same notification. What it
// rejects either is not an OrderEvent or is one marked notification.ErrInvalid.
func FuzzDecode(f *testing.F) {
	addEventSeeds(f, func(b []byte) []any { return []any{b} })
	f.Fuzz(func(t *testing.T, value []byte) {
		n, err := decode(value)
		if err != nil {
			var ev lomsv1.OrderEvent
			if proto.Unmarshal(value, &ev) == nil && !errors.Is(err, notification.ErrInvalid) {
				t.Fatalf("an OrderEvent rejected without ErrInvalid: %v", err)
			}
			return
		}
		checkNotification(t, n)
		var ev lomsv1.OrderEvent
		if err := proto.Unmarshal(value, &ev); err != nil {
			t.Fatalf("decode accepted what is no OrderEvent: %v", err)
		}
		again, err := proto.Marshal(&lomsv1.OrderEvent{
			EventId: n.EventID.String(), OrderId: n.OrderID, User: n.User, Status: wireStatus(t, n.Status),
			PreviousStatus: wireStatus(t, n.Previous), OccurredAt: timestamppb.New(n.OccurredAt), Items: ev.GetItems(),
		})
		if err != nil {
			t.Fatalf("encode %+v again: %v", n, err)
		}
		n2, err := decode(again)
		if err != nil {
			t.Fatalf("%+v encoded again does not decode: %v", n, err)
		}
		if n2.EventID != n.EventID || n2.OrderID != n.OrderID || n2.User != n.User || n2.Status != n.Status ||
			n2.Previous != n.Previous || !n2.OccurredAt.Equal(n.OccurredAt) {
			t.Fatalf("%+v encoded again decodes as %+v", n, n2)
		}
	})
}

// checkNotification fails unless n is a notification the contract allows.
func checkNotification(t *testing.T, n notification.Notification) {
	t.Helper()
	if err := n.Validate(); err != nil {
		t.Fatalf("accepted an invalid notification: %v", err)
	}
	switch {
	case n.EventID == uuid.Nil, n.OrderID <= 0, n.User <= 0, !knownStatuses[n.Status]:
		t.Fatalf("accepted %+v", n)
	case n.Previous != "" && !knownStatuses[n.Previous]:
		t.Fatalf("accepted previous status %q", n.Previous)
	}
	if err := timestamppb.New(n.OccurredAt).CheckValid(); err != nil {
		t.Fatalf("accepted occurred_at %s: %v", n.OccurredAt, err)
	}
	if text := n.Text(); !strings.HasPrefix(text, fmt.Sprintf("Order %d ", n.OrderID)) || strings.HasSuffix(text, " ") {
		t.Fatalf("text %q", text)
	}
}

// wireStatus is the proto enum's status of the given name, unspecified
// for none.
func wireStatus(t *testing.T, s notification.Status) lomsv1.OrderStatus {
	t.Helper()
	if s == "" {
		return lomsv1.OrderStatus_ORDER_STATUS_UNSPECIFIED
	}
	v, ok := lomsv1.OrderStatus_value["ORDER_STATUS_"+strings.ToUpper(string(s))]
	if !ok {
		t.Fatalf("status %q is not in the proto enum", s)
	}
	return lomsv1.OrderStatus(v)
}

// fuzzRecorder delivers by calling send, and records what it was given.
type fuzzRecorder struct {
	calls int
	got   notification.Notification
	err   error
}

func (r *fuzzRecorder) Deliver(ctx context.Context, n notification.Notification,
	send func(context.Context, notification.Notification) error) (notification.Outcome, error) {
	r.calls++
	r.got = n
	if r.err != nil {
		return 0, r.err
	}
	if err := send(ctx, n); err != nil {
		return 0, err
	}
	return notification.Sent, nil
}

type fuzzSender struct{ sent []notification.Notification }

func (s *fuzzSender) Send(_ context.Context, n notification.Notification) error {
	s.sent = append(s.sent, n)
	return nil
}

// FuzzHandle drives the consumer's handler with arbitrary record values and
// trace headers. A value decode rejects is ErrPoison, which sends the record
// to the dead-letter topic, and reaches neither the store nor the user; a
// value it accepts is a notification the store can record (see
// checkNotification), delivered once, as decoded, under one span that links
// to the trace in the headers when they carry one; a failed delivery is
// returned as it is, to be retried, never as poison.
func FuzzHandle(f *testing.F) {
	for _, tp := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "00-00000000000000000000000000000000-0000000000000000-01", "zz"} {
		addEventSeeds(f, func(b []byte) []any { return []any{b, tp, false} })
	}
	addEventSeeds(f, func(b []byte) []any { return []any{b, "", true} })
	f.Fuzz(func(t *testing.T, value []byte, traceparent string, failDelivery bool) {
		spans := tracetest.NewSpanRecorder()
		tel := telemetry.Nop().WithTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
		recorder, sender := &fuzzRecorder{}, &fuzzSender{}
		if failDelivery {
			recorder.err = errors.New("database is down")
		}
		h, err := newHandler(recorder, sender, tel)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{
			Topic: Topic, Partition: 3, Offset: 17, Key: []byte("42"), Value: value,
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte(traceparent)}},
		}
		ctx := context.Background()
		err = h.handle(ctx, rec)

		n, decodeErr := decode(value)
		if decodeErr != nil {
			if !errors.Is(err, kafkaconsumer.ErrPoison) {
				t.Fatalf("undecodable record (%v) handled with %v, not dead-lettered", decodeErr, err)
			}
			if recorder.calls != 0 || len(sender.sent) != 0 || len(spans.Ended()) != 0 {
				t.Fatal("an undecodable record reached the store or the user")
			}
			return
		}
		checkNotification(t, n)
		switch {
		case failDelivery && (err == nil || errors.Is(err, kafkaconsumer.ErrPoison)):
			t.Fatalf("failed delivery handled with %v; want the error, to retry", err)
		case !failDelivery && err != nil:
			t.Fatalf("valid record handled with %v", err)
		case recorder.calls != 1 || recorder.got != n:
			t.Fatalf("store got %+v (%d calls), want %+v", recorder.got, recorder.calls, n)
		case !failDelivery && (len(sender.sent) != 1 || sender.sent[0] != n):
			t.Fatalf("sent %+v, want %+v", sender.sent, n)
		}
		ended := spans.Ended()
		if len(ended) != 1 || ended[0].Name() != "notify "+string(n.Status) {
			t.Fatalf("%d spans", len(ended))
		}
		cause := trace.SpanContextFromContext(telemetry.Propagator().Extract(ctx, headerCarrier(rec.Headers)))
		links := ended[0].Links()
		if cause.IsValid() != (len(links) == 1) || (cause.IsValid() && !links[0].SpanContext.Equal(cause)) {
			t.Fatalf("traceparent %q: links %v", traceparent, links)
		}
	})
}
