package telemetry

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/propagation"
)

// ServerInterceptors trace every RPC a server answers, continuing the
// caller's trace (the services trust one another), and count them with
// their latency by procedure and code. With no exporter configured there
// are no spans to make: the caller's trace context is only carried along,
// which costs a header lookup instead of otelconnect's span bookkeeping.
// Call it once per server: the metrics are registered on t.Metrics.
func (t *Telemetry) ServerInterceptors() ([]connect.Interceptor, error) {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_rpc_server_requests_total",
			Help: "RPCs answered, by procedure and Connect code (ok for success).",
		}, []string{"procedure", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "minizon_rpc_server_duration_seconds",
			Help:    "Time to answer an RPC, by procedure and Connect code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"procedure", "code"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := t.Metrics.Register(c); err != nil {
			return nil, fmt.Errorf("register rpc metrics: %w", err)
		}
	}
	if !t.exporting() {
		return []connect.Interceptor{m, traceContext{}}, nil
	}
	tracing, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(t.Tracing),
		otelconnect.WithPropagator(Propagator()),
		otelconnect.WithTrustRemote(),
		otelconnect.WithoutMetrics(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing interceptor: %w", err)
	}
	// Metrics outermost, so that their latency includes tracing's cost.
	return []connect.Interceptor{m, tracing}, nil
}

// ClientInterceptors pass the trace on to the services called; with no
// exporter, by writing the context's trace headers only.
func (t *Telemetry) ClientInterceptors() ([]connect.Interceptor, error) {
	if !t.exporting() {
		return []connect.Interceptor{traceContext{client: true}}, nil
	}
	tracing, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(t.Tracing),
		otelconnect.WithPropagator(Propagator()),
		otelconnect.WithoutMetrics(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing interceptor: %w", err)
	}
	return []connect.Interceptor{tracing}, nil
}

type rpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// observe counts one RPC. Every error here is a *connect.Error already:
// the platform's log interceptor, inside this one, codes the rest.
func (m *rpcMetrics) observe(procedure string, start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.requests.WithLabelValues(procedure, code).Inc()
	m.duration.WithLabelValues(procedure, code).Observe(time.Since(start).Seconds())
}

func (m *rpcMetrics) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		m.observe(req.Spec().Procedure, start, err)
		return res, err
	}
}

func (m *rpcMetrics) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (m *rpcMetrics) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		m.observe(conn.Spec().Procedure, start, err)
		return err
	}
}

// traceContext carries W3C trace context through a service that records no
// spans: a caller's traceparent reaches the events and calls it causes, so
// their consumers still link to the caller's trace.
type traceContext struct {
	// client: inject into calls made; otherwise extract from calls served.
	client bool
}

func (t traceContext) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		carrier := propagation.HeaderCarrier(req.Header())
		if t.client {
			Propagator().Inject(ctx, carrier)
		} else {
			ctx = Propagator().Extract(ctx, carrier)
		}
		return next(ctx, req)
	}
}

func (traceContext) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		Propagator().Inject(ctx, propagation.HeaderCarrier(conn.RequestHeader()))
		return conn
	}
}

func (traceContext) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return next(Propagator().Extract(ctx, propagation.HeaderCarrier(conn.RequestHeader())), conn)
	}
}
