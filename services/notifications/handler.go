package notifications

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/kafkaconsumer"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications/notification"
)

// Sender delivers one notification to its user.
type Sender interface {
	Send(ctx context.Context, n notification.Notification) error
}

// Recorder delivers a notification once per event (the store).
type Recorder interface {
	Deliver(ctx context.Context, n notification.Notification,
		send func(context.Context, notification.Notification) error) (notification.Outcome, error)
}

// handler turns order event records into notifications.
type handler struct {
	recorder Recorder
	sender   Sender
	tracer   trace.Tracer
	handled  *prometheus.CounterVec
}

func newHandler(recorder Recorder, sender Sender, tel *telemetry.Telemetry) (*handler, error) {
	h := &handler{
		recorder: recorder,
		sender:   sender,
		tracer:   tel.Tracing.Tracer("github.com/minizon/minizon/services/notifications"),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_notifications_total",
			Help: "Order events handled, by status and outcome: sent, duplicate (notified before) or failed (rejected by the receiver).",
		}, []string{"status", "outcome"}),
	}
	if err := tel.Metrics.Register(h.handled); err != nil {
		return nil, fmt.Errorf("register notification metrics: %w", err)
	}
	return h, nil
}

// handle is the consumer.Handler. Its span links to the request that
// changed the order (CreateOrder, OrderPayed, ...), whose trace context
// LOMS put in the record's headers.
func (h *handler) handle(ctx context.Context, rec *kgo.Record) error {
	n, err := decode(rec.Value)
	if err != nil {
		return fmt.Errorf("%w: %w", kafkaconsumer.ErrPoison, err)
	}
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.destination.name", rec.Topic),
			attribute.Int64("messaging.destination.partition.id", int64(rec.Partition)),
			attribute.Int64("messaging.kafka.offset", rec.Offset),
			attribute.String("messaging.message.id", n.EventID.String()),
			attribute.Int64("minizon.order_id", n.OrderID),
		),
	}
	if cause := trace.SpanContextFromContext(telemetry.Propagator().Extract(ctx, headerCarrier(rec.Headers))); cause.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: cause}))
	}
	ctx, span := h.tracer.Start(ctx, "notify "+string(n.Status), opts...)
	defer span.End()
	outcome, err := h.recorder.Deliver(ctx, n, h.sender.Send)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	span.SetAttributes(attribute.String("minizon.notification.outcome", outcome.String()))
	h.handled.WithLabelValues(string(n.Status), outcome.String()).Inc()
	return nil
}

// decode reads a record value written by LOMS.
func decode(value []byte) (notification.Notification, error) {
	var ev lomsv1.OrderEvent
	if err := proto.Unmarshal(value, &ev); err != nil {
		return notification.Notification{}, fmt.Errorf("decode minizon.loms.v1.OrderEvent: %w", err)
	}
	id, err := uuid.Parse(ev.GetEventId())
	if err != nil {
		return notification.Notification{}, fmt.Errorf("%w: event_id %q is not a UUID", notification.ErrInvalid, ev.GetEventId())
	}
	if ev.GetOccurredAt() == nil {
		return notification.Notification{}, fmt.Errorf("%w: occurred_at missing", notification.ErrInvalid)
	}
	n := notification.Notification{
		EventID:    id,
		OrderID:    ev.GetOrderId(),
		User:       ev.GetUser(),
		Status:     status(ev.GetStatus()),
		Previous:   status(ev.GetPreviousStatus()),
		OccurredAt: ev.GetOccurredAt().AsTime(),
	}
	return n, n.Validate()
}

// status converts a LOMS status (the proto enum, the source of truth) by
// name; UNSPECIFIED, or a status from a newer LOMS, is "", which Validate
// rejects.
func status(s lomsv1.OrderStatus) notification.Status {
	switch s {
	case lomsv1.OrderStatus_ORDER_STATUS_NEW:
		return notification.StatusNew
	case lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT:
		return notification.StatusAwaitingPayment
	case lomsv1.OrderStatus_ORDER_STATUS_FAILED:
		return notification.StatusFailed
	case lomsv1.OrderStatus_ORDER_STATUS_PAYED:
		return notification.StatusPayed
	case lomsv1.OrderStatus_ORDER_STATUS_CANCELLED:
		return notification.StatusCancelled
	}
	return ""
}

// headerCarrier reads trace context from Kafka record headers.
type headerCarrier []kgo.RecordHeader

var _ propagation.TextMapCarrier = headerCarrier(nil)

func (h headerCarrier) Get(key string) string {
	for _, kv := range h {
		if kv.Key == key {
			return string(kv.Value)
		}
	}
	return ""
}

func (h headerCarrier) Set(string, string) {}

func (h headerCarrier) Keys() []string {
	keys := make([]string, len(h))
	for i, kv := range h {
		keys[i] = kv.Key
	}
	return keys
}
