package platform

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/minizon/minizon/internal/telemetry"
)

// BenchmarkServerInterceptors is what every RPC pays in the interceptors
// each service handler is built with (metrics, tracing with no exporter,
// the log line, the default deadline), around a handler that does nothing.
// The log goes to io.Discard: the write itself is the log's destination's
// cost, not the interceptors'.
func BenchmarkServerInterceptors(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelWarn} {
		b.Run("log="+level.String(), func(b *testing.B) {
			srv, err := NewServer(Config{}, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: level})), telemetry.Nop())
			if err != nil {
				b.Fatal(err)
			}
			var next connect.UnaryFunc = func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
				return connect.NewResponse(&emptypb.Empty{}), nil
			}
			// The first interceptor is the outermost, as connect applies them.
			for i := len(srv.interceptors) - 1; i >= 0; i-- {
				next = srv.interceptors[i].WrapUnary(next)
			}
			req := connect.NewRequest(&emptypb.Empty{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := next(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
