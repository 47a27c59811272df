package telemetry

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
)

// ServerInterceptors trace every RPC a server answers, continuing the
// caller's trace (the services trust one another), and count them with
// their latency by procedure and code. Call it once per server: the metrics
// are registered on t.Metrics.
func (t *Telemetry) ServerInterceptors() ([]connect.Interceptor, error) {
	tracing, err := otelconnect.NewInterceptor(
		otelconnect.WithTracerProvider(t.Tracing),
		otelconnect.WithPropagator(Propagator()),
		otelconnect.WithTrustRemote(),
		otelconnect.WithoutMetrics(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing interceptor: %w", err)
	}
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
	// Metrics outermost, so that their latency includes tracing's cost.
	return []connect.Interceptor{m, tracing}, nil
}

// ClientInterceptors pass the trace on to the services called.
func (t *Telemetry) ClientInterceptors() ([]connect.Interceptor, error) {
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
