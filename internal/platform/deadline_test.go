package platform_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
)

// A call its caller gave up on is the caller's deadline or cancellation,
// never a fault of the server: the caller gets deadline_exceeded or
// canceled, the log line says so at info level, and the metrics count it
// under that code.

// cutShort is a LomsService whose ListOrder and CancelOrder wait for their
// call to end: ListOrder then returns the bare context error, CancelOrder
// an internal error, as a query cut short by the deadline may.
type cutShort struct {
	lomsv1connect.UnimplementedLomsServiceHandler
	entered chan struct{}
}

func (c *cutShort) Stocks(context.Context, *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	return &lomsv1.StocksResponse{}, nil
}

func (c *cutShort) ListOrder(ctx context.Context, _ *lomsv1.ListOrderRequest) (*lomsv1.ListOrderResponse, error) {
	c.enter(ctx)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (c *cutShort) CancelOrder(ctx context.Context, _ *lomsv1.CancelOrderRequest) (*lomsv1.CancelOrderResponse, error) {
	c.enter(ctx)
	<-ctx.Done()
	return nil, connect.NewError(connect.CodeInternal, errors.New("cancel order: conn closed"))
}

func (c *cutShort) enter(context.Context) {
	if c.entered != nil {
		c.entered <- struct{}{}
	}
}

// metricsText returns the server's /metrics page.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	res, err := http1(t).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricsOf returns the /metrics page of a server's handler tree, served
// in-process (the server may have stopped).
func metricsOf(srv *platform.Server) string {
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// wantOnlyCode fails unless every rpc log line has code at info level and
// no handler error went uncoded.
func wantOnlyCode(t *testing.T, logs *rpctest.LogBuffer, code string, lines int) {
	t.Helper()
	got := rpcLines(t, logs.String())
	if len(got) != lines {
		t.Fatalf("%d rpc log lines, want %d:\n%s", len(got), lines, logs.String())
	}
	for _, l := range got {
		if l.Code != code || l.Level != "INFO" {
			t.Errorf("log line %+v, want code %s at INFO", l, code)
		}
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("an error was logged:\n%s", logs.String())
	}
}

// The deadline is gone before the handler runs: connect-go then returns the
// bare context error, which used to be answered as internal.
func TestDeadlineGoneBeforeTheHandlerIsDeadlineExceeded(t *testing.T) {
	t.Parallel()
	logs := &rpctest.LogBuffer{}
	base := "http://" + serveServiceLogging(t, baseConfig(), &cutShort{}, slog.New(slog.NewJSONHandler(logs, nil)))
	protocols := wireProtocols()
	for _, p := range protocols {
		name, value := p.timeout(0)
		a := p.call(t, base+lomsv1connect.LomsServiceStocksProcedure, &lomsv1.StocksRequest{Sku: 1}, http.Header{name: {value}})
		if p.name == "connect" {
			if a.status != http.StatusGatewayTimeout || a.code != connect.CodeDeadlineExceeded {
				t.Errorf("%s: HTTP %d code %v %q, want HTTP 504 deadline_exceeded", p.name, a.status, a.code, a.message)
			}
			continue
		}
		if a.status != http.StatusOK || a.contentType != p.contentType || a.code != connect.CodeDeadlineExceeded {
			t.Errorf("%s: HTTP %d %s code %v %q, want HTTP 200 %s deadline_exceeded", p.name, a.status, a.contentType, a.code, a.message, p.contentType)
		}
	}
	wantOnlyCode(t, logs, "deadline_exceeded", len(protocols))
	m := metricsText(t, base)
	want := fmt.Sprintf(`minizon_rpc_server_requests_total{code="deadline_exceeded",procedure=%q} %d`, lomsv1connect.LomsServiceStocksProcedure, len(protocols))
	if !strings.Contains(m, want) || strings.Contains(m, `code="internal"`) {
		t.Fatalf("metrics do not count %d deadline_exceeded and no internal:\n%s", len(protocols), m)
	}
}

// The deadline passes while the handler runs: the handler's bare context
// error, or a fault its cut-short work reports, is the deadline. So is the
// server's own deadline for callers that set none.
func TestDeadlinePassingInTheHandlerIsDeadlineExceeded(t *testing.T) {
	t.Parallel()
	logs := &rpctest.LogBuffer{}
	base := "http://" + serveServiceLogging(t, baseConfig(), &cutShort{}, slog.New(slog.NewJSONHandler(logs, nil)))
	cfg := baseConfig()
	cfg.RequestTimeout = 50 * time.Millisecond
	defaulted := "http://" + serveServiceLogging(t, cfg, &cutShort{}, slog.New(slog.NewJSONHandler(logs, nil)))
	calls := 0
	for _, p := range wireProtocols() {
		for _, tc := range []struct {
			name, base, procedure string
			header                http.Header
		}{
			{"bare context error", base, lomsv1connect.LomsServiceListOrderProcedure, nil},
			{"internal after the cut", base, lomsv1connect.LomsServiceCancelOrderProcedure, nil},
			{"the server's default deadline", defaulted, lomsv1connect.LomsServiceListOrderProcedure, nil},
		} {
			header := http.Header{}
			if tc.base == base {
				name, value := p.timeout(50)
				header.Set(name, value)
			}
			// Both requests marshal to the same bytes: order_id 1.
			a := p.call(t, tc.base+tc.procedure, &lomsv1.ListOrderRequest{OrderId: 1}, header)
			calls++
			if a.code != connect.CodeDeadlineExceeded || strings.Contains(a.message, "conn closed") {
				t.Errorf("%s, %s: code %v %q, want deadline_exceeded without the cause", p.name, tc.name, a.code, a.message)
			}
		}
	}
	wantOnlyCode(t, logs, "deadline_exceeded", calls)
}

// A caller that goes away mid-call is canceled in the log, not an error.
func TestCallerLeavingIsCanceled(t *testing.T) {
	t.Parallel()
	logs := &rpctest.LogBuffer{}
	impl := &cutShort{entered: make(chan struct{}, 1)}
	base := "http://" + serveServiceLogging(t, baseConfig(), impl, slog.New(slog.NewJSONHandler(logs, nil)))
	protocols := rpctest.Protocols(t)
	for _, p := range protocols {
		c := lomsv1connect.NewLomsServiceClient(p.HTTP, base, p.Options...)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := c.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: 1})
			done <- err
		}()
		<-impl.entered
		cancel()
		if err := <-done; connect.CodeOf(err) != connect.CodeCanceled {
			t.Errorf("%s: the caller got %v, want its own canceled", p.Name, err)
		}
	}
	// The line is written when the handler returns, after the caller left.
	settle := time.Now().Add(time.Minute)
	for len(rpcLines(t, logs.String())) < len(protocols) && time.Now().Before(settle) {
		time.Sleep(10 * time.Millisecond)
	}
	wantOnlyCode(t, logs, "canceled", len(protocols))
}

// A long-lived server stream ended by the shutdown is unavailable for its
// client (reconnect, likely to another replica), even when its handler
// returns the bare context error; streams get their log line and metrics
// like unary calls.
func TestStreamEndedByShutdownIsUnavailable(t *testing.T) {
	t.Parallel()
	const service, procedure = "minizon.test.v1.Follow", "/minizon.test.v1.Follow/Follow"
	logs := &rpctest.LogBuffer{}
	srv := rpctest.NewServer(t, baseConfig(), slog.New(slog.NewJSONHandler(logs, nil)))
	follow := connect.NewServerStreamHandler(procedure,
		func(ctx context.Context, _ *connect.Request[emptypb.Empty], s *connect.ServerStream[emptypb.Empty]) error {
			if err := s.Send(&emptypb.Empty{}); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}, srv.HandlerOptions()...)
	srv.Mount(service, "/"+service+"/", follow, procedure)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	var serveErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr = srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		stop()
		<-served
	})
	base := "http://" + ln.Addr().String()

	protocols := rpctest.Protocols(t)
	var streams []*connect.ServerStreamForClient[emptypb.Empty]
	for _, p := range protocols {
		c := connect.NewClient[emptypb.Empty, emptypb.Empty](p.HTTP, base+procedure, p.Options...)
		s, err := c.CallServerStream(t.Context(), connect.NewRequest(&emptypb.Empty{}))
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if !s.Receive() {
			t.Fatalf("%s: no first message: %v", p.Name, s.Err())
		}
		streams = append(streams, s)
	}
	stop()
	for i, s := range streams {
		for s.Receive() {
		}
		if err := s.Err(); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "shutting down") {
			t.Errorf("%s: the stream ended with %v, want unavailable saying the server is shutting down", protocols[i].Name, err)
		}
		s.Close()
	}
	<-served
	if serveErr != nil {
		t.Fatalf("serve: %v", serveErr)
	}
	wantOnlyCode(t, logs, "unavailable", len(protocols))
	if !strings.Contains(metricsOf(srv), fmt.Sprintf(`minizon_rpc_server_requests_total{code="unavailable",procedure=%q} %d`, procedure, len(protocols))) {
		t.Fatalf("the metrics do not count the streams as unavailable")
	}
}
