// Package telemetry holds what miniZON reports through: OpenTelemetry
// tracing, exported over OTLP only when an endpoint is configured, and a
// Prometheus registry served on /metrics.
package telemetry

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/minizon/minizon/internal/envconf"
)

// Config says where traces go.
type Config struct {
	// Endpoint is the OTLP collector (OTEL_EXPORTER_OTLP_ENDPOINT, or
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT for traces alone). Empty: spans
	// are not recorded, but incoming trace context is still passed on.
	Endpoint string
	// Protocol is the OTLP protocol (OTEL_EXPORTER_OTLP_PROTOCOL); only
	// http/protobuf is built in.
	Protocol string
	// ServiceName names this process in traces (OTEL_SERVICE_NAME).
	ServiceName string
}

// ReadConfig reads the standard OpenTelemetry variables miniZON acts on; the
// exporter reads the rest (headers, timeout, certificates) itself.
func ReadConfig(env *envconf.Reader, service string) Config {
	endpoint := env.String("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if endpoint == "" {
		endpoint = env.String("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	}
	return Config{
		Endpoint:    endpoint,
		Protocol:    env.String("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
		ServiceName: env.String("OTEL_SERVICE_NAME", "minizon-"+service),
	}
}

// Validate rejects an exporter protocol that is not built in, rather than
// silently sending nothing.
func (c Config) Validate() error {
	if c.Endpoint != "" && c.Protocol != "http/protobuf" {
		return fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is supported", c.Protocol)
	}
	return nil
}

// Propagator is the wire format of trace context, in HTTP headers and Kafka
// record headers alike: W3C traceparent and tracestate.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Telemetry is passed to everything that reports.
type Telemetry struct {
	// Tracing creates spans; a no-op provider when nothing exports.
	Tracing trace.TracerProvider
	// Metrics is the registry /metrics serves. Each Telemetry has its own,
	// so tests and several services in one process do not collide.
	Metrics  *prometheus.Registry
	shutdown func(context.Context) error
}

// New sets up tracing as cfg says and a registry with the Go runtime and
// process collectors.
func New(ctx context.Context, cfg Config) (*Telemetry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := Nop()
	t.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Endpoint == "" {
		return t, nil
	}
	// The exporter reads OTEL_EXPORTER_OTLP_* itself, endpoint included.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.Tracing = tp
	t.shutdown = tp.Shutdown
	return t, nil
}

// Nop records no spans and has an empty registry: for tests and tools.
func Nop() *Telemetry {
	return &Telemetry{Tracing: noop.NewTracerProvider(), Metrics: prometheus.NewRegistry()}
}

// WithTracing returns t reporting spans to tp, for tests that look at them.
func (t *Telemetry) WithTracing(tp trace.TracerProvider) *Telemetry {
	c := *t
	c.Tracing = tp
	return &c
}

// exporting reports whether spans go anywhere.
func (t *Telemetry) exporting() bool {
	_, none := t.Tracing.(noop.TracerProvider)
	return !none
}

// Shutdown exports the spans still buffered.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	if err := t.shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("export last spans: %w", err)
	}
	return nil
}
