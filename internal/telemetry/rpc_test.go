package telemetry_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/minizon/minizon/internal/telemetry"
)

const callerTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// TestTraceContextCarriedWithoutExporter checks that a service recording no
// spans still passes its caller's trace on: the server side puts the
// caller's traceparent in the handler's context, and the client side writes
// the context's trace into the outgoing call.
func TestTraceContextCarriedWithoutExporter(t *testing.T) {
	t.Parallel()
	tel := telemetry.Nop()
	server, err := tel.ServerInterceptors()
	if err != nil {
		t.Fatal(err)
	}
	client, err := tel.ClientInterceptors()
	if err != nil {
		t.Fatal(err)
	}
	var outgoing string
	var call connect.UnaryFunc = func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		outgoing = req.Header().Get("traceparent")
		return connect.NewResponse(&emptypb.Empty{}), nil
	}
	for i := len(client) - 1; i >= 0; i-- {
		call = client[i].WrapUnary(call)
	}
	var seen trace.SpanContext
	var handler connect.UnaryFunc = func(ctx context.Context, _ connect.AnyRequest) (connect.AnyResponse, error) {
		seen = trace.SpanContextFromContext(ctx)
		// The handler calls a dependency with its own context.
		return call(ctx, connect.NewRequest(&emptypb.Empty{}))
	}
	for i := len(server) - 1; i >= 0; i-- {
		handler = server[i].WrapUnary(handler)
	}
	req := connect.NewRequest(&emptypb.Empty{})
	req.Header().Set("traceparent", callerTrace)
	if _, err := handler(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || !seen.IsRemote() {
		t.Fatalf("handler's span context %v, want the caller's trace", seen)
	}
	if outgoing != callerTrace {
		t.Fatalf("outgoing traceparent %q, want %q", outgoing, callerTrace)
	}

	outgoing = "unset"
	if _, err := handler(t.Context(), connect.NewRequest(&emptypb.Empty{})); err != nil {
		t.Fatal(err)
	}
	if seen.IsValid() || outgoing != "" {
		t.Fatalf("without a caller's trace: span context %v, outgoing traceparent %q", seen, outgoing)
	}
}
