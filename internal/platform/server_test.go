package platform_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/encoding/protowire"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
)

// lomsImpl is a stand-in LomsService: Stocks echoes the sku, ListOrder knows
// only order 1, CancelOrder fails with an uncoded error, and CreateOrder can
// be held inside the handler to test draining.
type lomsImpl struct {
	lomsv1connect.UnimplementedLomsServiceHandler

	calls atomic.Int32 // handler invocations of any method

	// When hold is set, CreateOrder sends on entered, then waits for
	// release; returned is set just before it returns.
	hold        bool
	entered     chan struct{}
	release     chan struct{}
	releaseOnce sync.Once
	returned    atomic.Bool
}

func newImpl() *lomsImpl {
	return &lomsImpl{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

// holding returns an implementation whose CreateOrder blocks until unblock.
func holding() *lomsImpl {
	impl := newImpl()
	impl.hold = true
	return impl
}

func (s *lomsImpl) unblock() { s.releaseOnce.Do(func() { close(s.release) }) }

func (s *lomsImpl) Stocks(_ context.Context, req *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	s.calls.Add(1)
	return &lomsv1.StocksResponse{Stocks: []*lomsv1.Stock{{WarehouseId: 1, Count: uint64(req.GetSku())}}}, nil
}

func (s *lomsImpl) ListOrder(_ context.Context, req *lomsv1.ListOrderRequest) (*lomsv1.ListOrderResponse, error) {
	s.calls.Add(1)
	if req.GetOrderId() != 1 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("order %d not found", req.GetOrderId()))
	}
	return &lomsv1.ListOrderResponse{Status: lomsv1.OrderStatus_ORDER_STATUS_NEW, User: 1}, nil
}

func (s *lomsImpl) CancelOrder(context.Context, *lomsv1.CancelOrderRequest) (*lomsv1.CancelOrderResponse, error) {
	s.calls.Add(1)
	return nil, errors.New("disk on fire")
}

func (s *lomsImpl) CreateOrder(_ context.Context, req *lomsv1.CreateOrderRequest) (*lomsv1.CreateOrderResponse, error) {
	s.calls.Add(1)
	if s.hold {
		s.entered <- struct{}{}
		<-s.release
	}
	s.returned.Store(true)
	return &lomsv1.CreateOrderResponse{OrderId: 7, Status: lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT}, nil
}

// notifyListener closes closed when the server closes it, which Shutdown
// does first: from then on the server is draining.
type notifyListener struct {
	net.Listener
	once   sync.Once
	closed chan struct{}
}

func (l *notifyListener) Close() error {
	// Close first, then tell: a test that dials after the signal must find
	// the port closed.
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}

// harness is a platform.Server with lomsImpl mounted on a loopback port.
type harness struct {
	srv    *platform.Server
	impl   *lomsImpl
	logs   *rpctest.LogBuffer
	ln     *notifyListener
	base   string // http://127.0.0.1:port
	addr   string
	cancel context.CancelFunc
	ctx    context.Context
	done   chan struct{}
	err    error // Serve's or Run's result, set before done is closed
}

func baseConfig() platform.Config {
	// The drain timeout is long: no test should ever reach it.
	return platform.Config{MaxBodyBytes: 1 << 20, ShutdownTimeout: time.Minute}
}

// newHarness builds and mounts the server; call serve or run to start it.
func newHarness(t *testing.T, cfg platform.Config, impl *lomsImpl) *harness {
	t.Helper()
	logs := &rpctest.LogBuffer{}
	srv := rpctest.NewServer(t, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	path, h := lomsv1connect.NewLomsServiceHandler(impl, srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hs := &harness{
		srv: srv, impl: impl, logs: logs,
		ln:   &notifyListener{Listener: ln, closed: make(chan struct{})},
		addr: ln.Addr().String(), base: "http://" + ln.Addr().String(),
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
	}
	t.Cleanup(func() {
		cancel()
		impl.unblock()
		hs.ln.Close() // in case the server never started
		<-hs.done
	})
	return hs
}

func (h *harness) serve() *harness {
	go func() {
		defer close(h.done)
		h.err = h.srv.Serve(h.ctx, h.ln)
	}()
	return h
}

func (h *harness) run(workers ...func(context.Context) error) *harness {
	go func() {
		defer close(h.done)
		h.err = h.srv.Run(h.ctx, h.ln, workers...)
	}()
	return h
}

// wait returns Serve's or Run's result.
func (h *harness) wait() error {
	<-h.done
	return h.err
}

func startServer(t *testing.T, cfg platform.Config, impl *lomsImpl) *harness {
	t.Helper()
	return newHarness(t, cfg, impl).serve()
}

// http1 is a client that speaks HTTP/1.1 only, as browsers behind most
// proxies and curl do.
func http1(t *testing.T) *http.Client {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// h2c is a client that speaks cleartext HTTP/2 with prior knowledge, as
// gRPC clients do.
func h2c(t *testing.T) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func wantCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if got := connect.CodeOf(err); err == nil || got != want {
		t.Fatalf("got error %v (code %v), want code %v", err, got, want)
	}
}

func TestOneRPCOverEveryProtocolOnOnePort(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	h1, h2 := http1(t), h2c(t)
	for _, tc := range []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect proto over HTTP/1.1", h1, nil},
		{"connect JSON over HTTP/1.1", h1, []connect.ClientOption{connect.WithProtoJSON()}},
		{"connect JSON over h2c", h2, []connect.ClientOption{connect.WithProtoJSON()}},
		{"gRPC over h2c", h2, []connect.ClientOption{connect.WithGRPC()}},
		{"gRPC-Web over HTTP/1.1", h1, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"gRPC-Web over h2c", h2, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := lomsv1connect.NewLomsServiceClient(tc.client, h.base, tc.opts...)
			res, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 42})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.GetStocks(); len(got) != 1 || got[0].GetCount() != 42 {
				t.Fatalf("got stocks %v, want one stock with count 42", got)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	health := grpchealth.NewClient(h2c(t), h.base, connect.WithGRPC())

	t.Run("mounted service and server are serving", func(t *testing.T) {
		for _, svc := range []string{lomsv1connect.LomsServiceName, ""} {
			res, err := health.Check(t.Context(), &grpchealth.CheckRequest{Service: svc})
			if err != nil {
				t.Fatalf("check %q: %v", svc, err)
			}
			if res.Status != grpchealth.StatusServing {
				t.Fatalf("check %q: got %v, want SERVING", svc, res.Status)
			}
		}
	})
	t.Run("unknown service is not found", func(t *testing.T) {
		_, err := health.Check(t.Context(), &grpchealth.CheckRequest{Service: "minizon.nope.v1.Nope"})
		wantCode(t, err, connect.CodeNotFound)
	})
}

func TestHealthReportsNotServingOnShutdown(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	health := grpchealth.NewClient(h2c(t), h.base, connect.WithGRPC())

	// A watcher (as a gRPC client doing client-side health checking) sees
	// the flip to NOT_SERVING on its open stream.
	watchCtx, stopWatch := context.WithCancel(t.Context())
	defer stopWatch()
	events := health.Watch(watchCtx, &grpchealth.CheckRequest{Service: lomsv1connect.LomsServiceName})
	first := <-events
	if first.Err != nil || first.Response.Status != grpchealth.StatusServing {
		t.Fatalf("first watch event: %+v, want SERVING", first)
	}
	h.cancel()
	// The watcher sees NOT_SERVING or its stream ends: shutdown does not
	// wait for watchers to leave on their own.
	for ev := range events {
		if ev.Err != nil || ev.Response.Status == grpchealth.StatusNotServing {
			break
		}
		t.Fatalf("watch event after shutdown began: %+v, want NOT_SERVING or the stream's end", ev)
	}
	if err := h.wait(); err != nil {
		t.Fatalf("serve with an open health watch: %v", err)
	}

	// After shutdown, the port is closed ...
	if conn, err := net.Dial("tcp", h.addr); err == nil {
		conn.Close()
		t.Fatal("a new connection was accepted after shutdown")
	}
	// ... and the server's handler tree reports NOT_SERVING for the
	// service and the whole server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h.srv.Handler()}
	go hs.Serve(ln)
	defer hs.Close()
	after := grpchealth.NewClient(http1(t), "http://"+ln.Addr().String())
	for _, svc := range []string{lomsv1connect.LomsServiceName, ""} {
		res, err := after.Check(t.Context(), &grpchealth.CheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("check %q: %v", svc, err)
		}
		if res.Status != grpchealth.StatusNotServing {
			t.Fatalf("check %q after shutdown: got %v, want NOT_SERVING", svc, res.Status)
		}
	}
}

// TestShutdownDelayKeepsAnsweringNotServing: during the shutdown delay,
// pollers (load balancers, probes) get NOT_SERVING on new connections and
// RPCs still succeed, so traffic can move away before the port closes. The
// delay is long enough for the checks below to fit in it on a busy machine.
func TestShutdownDelayKeepsAnsweringNotServing(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.ShutdownDelay = 10 * time.Second
	h := startServer(t, cfg, newImpl())
	fresh := func() *http.Client { return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} }
	health := grpchealth.NewClient(fresh(), h.base)
	h.cancel()
	for {
		res, err := health.Check(t.Context(), &grpchealth.CheckRequest{Service: lomsv1connect.LomsServiceName})
		if err != nil {
			t.Fatalf("health check during the delay: %v", err)
		}
		if res.Status == grpchealth.StatusNotServing {
			break
		}
	}
	c := lomsv1connect.NewLomsServiceClient(fresh(), h.base)
	if _, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 3}); err != nil {
		t.Fatalf("RPC during the delay: %v", err)
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}

func TestReflection(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	client := h2c(t)

	t.Run("v1 lists the mounted service and resolves its schema", func(t *testing.T) {
		t.Parallel()
		stream := grpcreflect.NewClient(client, h.base, connect.WithGRPC()).NewStream(t.Context())
		defer stream.Close()
		names, err := stream.ListServices()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(names, lomsv1connect.LomsServiceName) {
			t.Fatalf("ListServices = %v, want it to contain %s", names, lomsv1connect.LomsServiceName)
		}
		// What buf curl and grpcurl do next: fetch the schema.
		files, err := stream.FileContainingSymbol(lomsv1connect.LomsServiceName)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatal("FileContainingSymbol returned no files")
		}
		if got := files[0].GetName(); got != "minizon/loms/v1/loms.proto" {
			t.Fatalf("FileContainingSymbol returned %q first, want minizon/loms/v1/loms.proto", got)
		}
		// Health is callable without .proto files too.
		if !slices.Contains(names, grpchealth.HealthV1ServiceName) {
			t.Fatalf("ListServices = %v, want it to contain %s", names, grpchealth.HealthV1ServiceName)
		}
		if files, err := stream.FileContainingSymbol(grpchealth.HealthV1ServiceName); err != nil || len(files) == 0 {
			t.Fatalf("health schema: %v %v", files, err)
		}
	})
	t.Run("v1alpha lists the mounted service", func(t *testing.T) {
		t.Parallel()
		names := listServicesV1Alpha(t, client, h.base)
		if !slices.Contains(names, lomsv1connect.LomsServiceName) {
			t.Fatalf("v1alpha list_services = %v, want it to contain %s", names, lomsv1connect.LomsServiceName)
		}
	})
}

// listServicesV1Alpha sends one raw gRPC ServerReflectionRequest{list_services:
// "*"} to the v1alpha service, as older grpcurl versions do, and decodes the
// service names by hand (the connect client only falls back to v1alpha when
// v1 is missing).
func listServicesV1Alpha(t *testing.T, client *http.Client, base string) []string {
	t.Helper()
	msg := protowire.AppendTag(nil, 7, protowire.BytesType) // list_services
	msg = protowire.AppendString(msg, "*")
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	body = append(body, msg...)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		base+"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP status %d, want 200", res.StatusCode)
	}
	if s := res.Trailer.Get("Grpc-Status") + res.Header.Get("Grpc-Status"); s != "0" {
		t.Fatalf("grpc-status %q (%s), want 0", s, res.Trailer.Get("Grpc-Message")+res.Header.Get("Grpc-Message"))
	}
	if len(data) < 5 || int(binary.BigEndian.Uint32(data[1:5])) != len(data)-5 {
		t.Fatalf("response is not one gRPC message: %x", data)
	}
	var names []string
	for _, svc := range fields(t, fieldBytes(t, data[5:], 6), 1) { // list_services_response.service
		for _, name := range fields(t, svc, 1) { // ServiceResponse.name
			names = append(names, string(name))
		}
	}
	return names
}

// fields returns every length-delimited field num in b.
func fields(t *testing.T, b []byte, num protowire.Number) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		n, typ, tagLen := protowire.ConsumeTag(b)
		if tagLen < 0 {
			t.Fatalf("bad protobuf tag: %v", protowire.ParseError(tagLen))
		}
		b = b[tagLen:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				t.Fatalf("bad protobuf field: %v", protowire.ParseError(l))
			}
			out = append(out, v)
			b = b[l:]
			continue
		}
		l := protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			t.Fatalf("bad protobuf field: %v", protowire.ParseError(l))
		}
		b = b[l:]
	}
	return out
}

func fieldBytes(t *testing.T, b []byte, num protowire.Number) []byte {
	t.Helper()
	f := fields(t, b, num)
	if len(f) != 1 {
		t.Fatalf("want exactly one field %d in %x, got %d", num, b, len(f))
	}
	return f[0]
}

// preflight sends what a browser sends before a cross-origin Connect POST.
func preflight(t *testing.T, base, origin string) *http.Response {
	t.Helper()
	return browserRequest(t, http.MethodOptions, base+lomsv1connect.LomsServiceStocksProcedure, "", map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "connect-protocol-version,content-type",
	})
}

// browserRequest sends a request with the given headers over HTTP/1.1 and
// returns the response with its body read and closed.
func browserRequest(t *testing.T, method, url, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http1(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func corsHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			out[k] = v
		}
	}
	return out
}

func TestCORS(t *testing.T) {
	t.Parallel()
	withOrigins := func(origins ...string) platform.Config {
		cfg := baseConfig()
		cfg.AllowedOrigins = origins
		return cfg
	}
	for _, tc := range []struct {
		name       string
		cfg        platform.Config
		origin     string
		wantOrigin string
	}{
		{"allowed origin", withOrigins("http://shop.example"), "http://shop.example", "http://shop.example"},
		{"other origin", withOrigins("http://shop.example"), "http://evil.example", ""},
		{"any origin", withOrigins("*"), "http://evil.example", "*"},
		{"no origins configured", baseConfig(), "http://shop.example", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startServer(t, tc.cfg, newImpl())
			res := preflight(t, h.base, tc.origin)
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Fatalf("preflight Access-Control-Allow-Origin = %q, want %q (all CORS headers: %v)",
					got, tc.wantOrigin, corsHeaders(res.Header))
			}
			if tc.wantOrigin == "" {
				if got := corsHeaders(res.Header); len(got) > 0 {
					t.Fatalf("refused preflight carries CORS headers %v", got)
				}
				return
			}
			if res.StatusCode/100 != 2 {
				t.Fatalf("preflight status %d, want 2xx", res.StatusCode)
			}
			if got := res.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") {
				t.Fatalf("Access-Control-Allow-Methods = %q, want POST", got)
			}
			if got := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")); !strings.Contains(got, "connect-protocol-version") || !strings.Contains(got, "content-type") {
				t.Fatalf("Access-Control-Allow-Headers = %q, want connect-protocol-version and content-type", got)
			}

			// The actual request: the browser may read the response and the
			// gRPC-Web status headers.
			post := browserRequest(t, http.MethodPost, h.base+lomsv1connect.LomsServiceStocksProcedure, `{"sku":3}`, map[string]string{
				"Origin": tc.origin, "Content-Type": "application/json", "Connect-Protocol-Version": "1",
			})
			if post.StatusCode != http.StatusOK {
				t.Fatalf("POST status %d", post.StatusCode)
			}
			if got := post.Header.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Fatalf("POST Access-Control-Allow-Origin = %q, want %q", got, tc.wantOrigin)
			}
			if got := strings.ToLower(post.Header.Get("Access-Control-Expose-Headers")); !strings.Contains(got, "grpc-status") {
				t.Fatalf("Access-Control-Expose-Headers = %q, want grpc-status exposed", got)
			}
		})
	}
}

// connectError is the JSON body of a Connect unary error.
type connectError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func postJSON(t *testing.T, url string, body []byte, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Protocol-Version", "1")
	res, err := http1(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, data
}

func TestBodyLimit(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.MaxBodyBytes = 1024
	// A valid StocksRequest padded with JSON whitespace.
	padded := func(n int) []byte {
		return []byte(`{"sku":5` + strings.Repeat(" ", n-len(`{"sku":5}`)) + `}`)
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		header http.Header
	}{
		{"4 KiB body", padded(4 << 10), nil},
		{"small gzip body that inflates to 64 KiB", gzipped(padded(64 << 10)), http.Header{"Content-Encoding": {"gzip"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startServer(t, cfg, newImpl())
			url := h.base + lomsv1connect.LomsServiceStocksProcedure
			if len(tc.body) <= 1024 != (tc.header != nil) {
				t.Fatalf("test body of %d bytes does not test what it says", len(tc.body))
			}
			status, data := postJSON(t, url, tc.body, tc.header)
			var ce connectError
			if err := json.Unmarshal(data, &ce); err != nil {
				t.Fatalf("HTTP %d, body %q is not a Connect error: %v", status, data, err)
			}
			if ce.Code != "resource_exhausted" || status != http.StatusTooManyRequests {
				t.Fatalf("HTTP %d %+v, want 429 resource_exhausted", status, ce)
			}
			if n := h.impl.calls.Load(); n != 0 {
				t.Fatalf("the handler ran %d times for an oversized request", n)
			}

			// A request within the limit still works.
			status, data = postJSON(t, url, padded(1000), nil)
			if status != http.StatusOK {
				t.Fatalf("1000-byte request: HTTP %d %s", status, data)
			}
		})
	}
	t.Run("gRPC message over the limit", func(t *testing.T) {
		t.Parallel()
		h := startServer(t, cfg, newImpl())
		c := lomsv1connect.NewLomsServiceClient(h2c(t), h.base, connect.WithGRPC())
		_, err := c.CreateOrder(t.Context(), &lomsv1.CreateOrderRequest{User: 1, IdempotencyKey: strings.Repeat("k", 4<<10)})
		wantCode(t, err, connect.CodeResourceExhausted)
		if n := h.impl.calls.Load(); n != 0 {
			t.Fatalf("the handler ran %d times for an oversized request", n)
		}
	})
}

// rpcLine is one "rpc" log record.
type rpcLine struct {
	Level      string   `json:"level"`
	Msg        string   `json:"msg"`
	Procedure  string   `json:"procedure"`
	Protocol   string   `json:"protocol"`
	Code       string   `json:"code"`
	DurationMS *float64 `json:"duration_ms"`
	Error      string   `json:"error"`
}

func rpcLines(t *testing.T, logs string) []rpcLine {
	t.Helper()
	var out []rpcLine
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l rpcLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if l.Msg == "rpc" {
			out = append(out, l)
		}
	}
	return out
}

func TestLogLinePerRPC(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	connectc := lomsv1connect.NewLomsServiceClient(http1(t), h.base, connect.WithProtoJSON())
	grpcc := lomsv1connect.NewLomsServiceClient(h2c(t), h.base, connect.WithGRPC())
	webc := lomsv1connect.NewLomsServiceClient(http1(t), h.base, connect.WithGRPCWeb())

	if _, err := connectc.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := grpcc.ListOrder(t.Context(), &lomsv1.ListOrderRequest{OrderId: 404})
	wantCode(t, err, connect.CodeNotFound)
	_, err = webc.CancelOrder(t.Context(), &lomsv1.CancelOrderRequest{OrderId: 1})
	wantCode(t, err, connect.CodeInternal)
	if strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("the raw error reached the caller: %v", err)
	}
	if !strings.Contains(h.logs.String(), "disk on fire") {
		t.Fatalf("the cause is not in the log:\n%s", h.logs.String())
	}

	// The interceptor logs before the response is written, so every line is
	// in the buffer once the clients have their answers.
	lines := rpcLines(t, h.logs.String())
	want := []rpcLine{
		{Level: "INFO", Procedure: lomsv1connect.LomsServiceStocksProcedure, Protocol: "connect", Code: "ok"},
		{Level: "INFO", Procedure: lomsv1connect.LomsServiceListOrderProcedure, Protocol: "grpc", Code: "not_found", Error: "not_found: order 404 not found"},
		{Level: "ERROR", Procedure: lomsv1connect.LomsServiceCancelOrderProcedure, Protocol: "grpcweb", Code: "internal", Error: "internal: internal error; the server logged the cause"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d rpc log lines, want %d:\n%s", len(lines), len(want), h.logs.String())
	}
	for i, got := range lines {
		if got.DurationMS == nil || *got.DurationMS < 0 {
			t.Errorf("line %d: duration_ms missing or negative: %+v", i, got)
		}
		got.Msg, got.DurationMS = "", nil
		if got != want[i] {
			t.Errorf("line %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestShutdownDrainsInFlightRPC(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client func(*testing.T) *http.Client
		opts   []connect.ClientOption
	}{
		{"connect over HTTP/1.1", http1, nil},
		{"gRPC over h2c", h2c, []connect.ClientOption{connect.WithGRPC()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startServer(t, baseConfig(), holding())
			c := lomsv1connect.NewLomsServiceClient(tc.client(t), h.base, tc.opts...)
			type result struct {
				res *lomsv1.CreateOrderResponse
				err error
			}
			rpc := make(chan result, 1)
			go func() {
				res, err := c.CreateOrder(context.Background(), &lomsv1.CreateOrderRequest{User: 1})
				rpc <- result{res, err}
			}()
			<-h.impl.entered
			h.cancel()
			<-h.ln.closed // the server is draining

			if conn, err := net.Dial("tcp", h.addr); err == nil {
				conn.Close()
				t.Fatal("a new connection was accepted while draining")
			}
			select {
			case <-h.done:
				t.Fatalf("Serve returned %v with an RPC in flight", h.err)
			default:
			}

			h.impl.unblock()
			r := <-rpc
			if r.err != nil {
				t.Fatalf("in-flight RPC failed: %v", r.err)
			}
			if r.res.GetOrderId() != 7 {
				t.Fatalf("in-flight RPC returned %v", r.res)
			}
			if err := h.wait(); err != nil {
				t.Fatalf("Serve returned %v, want nil", err)
			}
			if conn, err := net.Dial("tcp", h.addr); err == nil {
				conn.Close()
				t.Fatal("a new connection was accepted after shutdown")
			}
		})
	}
}

func TestRunStopsWorkersAfterServer(t *testing.T) {
	t.Parallel()
	impl := holding()
	h := newHarness(t, baseConfig(), impl)
	workerStopping := make(chan struct{})
	finishWorker := make(chan struct{})
	var handlerDoneWhenCancelled atomic.Bool
	h.run(func(ctx context.Context) error {
		<-ctx.Done()
		handlerDoneWhenCancelled.Store(impl.returned.Load())
		close(workerStopping)
		<-finishWorker // work accepted before the signal is finished
		return nil
	})

	c := lomsv1connect.NewLomsServiceClient(http1(t), h.base)
	rpc := make(chan error, 1)
	go func() {
		_, err := c.CreateOrder(context.Background(), &lomsv1.CreateOrderRequest{User: 1})
		rpc <- err
	}()
	<-impl.entered
	h.cancel()
	<-h.ln.closed
	select {
	case <-workerStopping:
		t.Fatal("the worker was cancelled while the server was still draining an RPC")
	default:
	}

	impl.unblock()
	if err := <-rpc; err != nil {
		t.Fatalf("in-flight RPC: %v", err)
	}
	<-workerStopping
	if !handlerDoneWhenCancelled.Load() {
		t.Fatal("the worker was cancelled before the in-flight handler returned")
	}
	select {
	case <-h.done:
		t.Fatal("Run returned before its worker did")
	default:
	}
	close(finishWorker)
	if err := h.wait(); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
}

func TestRunReturnsWorkerError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig(), newImpl())
	errBroken := errors.New("relay: broker gone")
	otherCancelled := make(chan struct{})
	h.run(
		func(ctx context.Context) error { return errBroken },
		func(ctx context.Context) error {
			<-ctx.Done()
			close(otherCancelled)
			return nil
		},
	)
	err := h.wait()
	if !errors.Is(err, errBroken) {
		t.Fatalf("Run returned %v, want %v", err, errBroken)
	}
	select {
	case <-otherCancelled:
	default:
		t.Fatal("Run returned before cancelling the other worker")
	}
	if conn, err := net.Dial("tcp", h.addr); err == nil {
		conn.Close()
		t.Fatal("the server still accepts connections after a worker failed")
	}
}

func TestRunReturnsServeErrorAndStopsWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, baseConfig(), newImpl())
	h.ln.Close() // accept fails at once
	workerCancelled := make(chan struct{})
	h.run(func(ctx context.Context) error {
		<-ctx.Done()
		close(workerCancelled)
		return nil
	})
	if err := h.wait(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Run returned %v, want an accept error wrapping net.ErrClosed", err)
	}
	select {
	case <-workerCancelled:
	default:
		t.Fatal("Run returned without stopping its worker")
	}
}

// refusedConnectError returns the error pgx gives for a database that is
// not listening.
func refusedConnectError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	_, err = pgconn.Connect(t.Context(), fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable&connect_timeout=5", addr.Port))
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connecting to a closed port gave %T %v, want *pgconn.ConnectError", err, err)
	}
	return err
}

func TestInfraErrorOfNilIsNil(t *testing.T) {
	t.Parallel()
	if err := platform.InfraError(t.Context(), slog.New(slog.NewJSONHandler(io.Discard, nil)), "database", nil); err != nil {
		t.Fatalf("got %v", err)
	}
}

func TestInfraError(t *testing.T) {
	t.Parallel()
	coded := connect.NewError(connect.CodeFailedPrecondition, errors.New("order is payed"))
	for _, tc := range []struct {
		name        string
		err         error
		want        connect.Code
		wantMessage string // substring of the message callers see
		wantLog     string // substring of the log, "" for no log line
	}{
		{"deadline", fmt.Errorf("reserve stock: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded, "database did not answer in time", ""},
		{"cancelled", fmt.Errorf("reserve stock: %w", context.Canceled), connect.CodeCanceled, "request cancelled", ""},
		{"pgx cannot connect", nil, connect.CodeUnavailable, "database is unavailable", "dependency unavailable"},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), connect.CodeUnavailable, "database is unavailable", "connection refused"},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, connect.CodeUnavailable, "database is unavailable", "connection reset"},
		{"connection closed mid-reply", fmt.Errorf("create order: COMMIT: %w", io.ErrUnexpectedEOF), connect.CodeUnavailable, "database is unavailable", "unexpected EOF"},
		{"postgres shutting down", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, connect.CodeUnavailable, "database is unavailable", "57P01"},
		{"postgres connection exception", &pgconn.PgError{Code: "08006", Message: "connection failure"}, connect.CodeUnavailable, "database is unavailable", "08006"},
		{"a write on a standby mid-failover", &pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}, connect.CodeUnavailable, "database is unavailable", "25006"},
		{"postgres constraint violation", &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}, connect.CodeInternal, "internal error", "duplicate key"},
		{"plain error", errors.New("boom"), connect.CodeInternal, "internal error", "boom"},
		{"malformed postgres code", &pgconn.PgError{Code: "0", Message: "odd server"}, connect.CodeInternal, "internal error", "odd server"},
		{"connect error passes through", fmt.Errorf("call: %w", coded), connect.CodeFailedPrecondition, "order is payed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := tc.err
			if in == nil {
				in = refusedConnectError(t)
			}
			logs := &rpctest.LogBuffer{}
			got := platform.InfraError(t.Context(), slog.New(slog.NewJSONHandler(logs, nil)), "database", in)
			var ce *connect.Error
			if !errors.As(got, &ce) {
				t.Fatalf("got %T %v, want a *connect.Error", got, got)
			}
			if ce.Code() != tc.want {
				t.Fatalf("code %v, want %v (error %v)", ce.Code(), tc.want, got)
			}
			if !strings.Contains(ce.Message(), tc.wantMessage) {
				t.Fatalf("message %q, want it to contain %q", ce.Message(), tc.wantMessage)
			}
			if tc.want == connect.CodeInternal || tc.want == connect.CodeUnavailable {
				// The cause is for the log, never for the caller.
				if cause := in.Error(); strings.Contains(got.Error(), cause) || strings.Contains(ce.Message(), tc.wantLog) {
					t.Fatalf("caller sees the cause: %q", got.Error())
				}
			}
			if tc.wantLog == "" {
				if l := logs.String(); l != "" {
					t.Fatalf("unexpected log: %s", l)
				}
			} else if l := logs.String(); !strings.Contains(l, tc.wantLog) || !strings.Contains(l, `"dependency":"database"`) {
				t.Fatalf("log %q, want the cause %q and the dependency", l, tc.wantLog)
			}
		})
	}
}

// deadlineImpl reports the time left to each Stocks call.
type deadlineImpl struct {
	lomsv1connect.UnimplementedLomsServiceHandler
	left chan time.Duration
}

func (d *deadlineImpl) Stocks(ctx context.Context, _ *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		d.left <- -1
	} else {
		d.left <- time.Until(dl)
	}
	return &lomsv1.StocksResponse{}, nil
}

// A caller without a deadline gets MINIZON_REQUEST_TIMEOUT's; a caller's own
// deadline stands. The handler finds either less the time the call took to
// reach it, which the test bounds by the time the whole call took: no
// allowance for a busy machine is needed.
func TestRequestsWithoutDeadlineGetOne(t *testing.T) {
	t.Parallel()
	const requestTimeout, callerTimeout = time.Hour, time.Minute
	impl := &deadlineImpl{left: make(chan time.Duration, 1)}
	srv := rpctest.NewServer(t, platform.Config{RequestTimeout: requestTimeout}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	path, h := lomsv1connect.NewLomsServiceHandler(impl, srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := lomsv1connect.NewLomsServiceClient(ts.Client(), ts.URL)
	start := time.Now()
	if _, err := client.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if left := <-impl.left; left <= requestTimeout-took || left > requestTimeout {
		t.Fatalf("no caller deadline: %v left, want the 1h default less at most the call's %v", left, took)
	}
	start = time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), callerTimeout)
	defer cancel()
	if _, err := client.Stocks(ctx, &lomsv1.StocksRequest{Sku: 1}); err != nil {
		t.Fatal(err)
	}
	took = time.Since(start)
	// The deadline travels in whole milliseconds, rounded down.
	if left := <-impl.left; left <= callerTimeout-took-time.Millisecond || left > callerTimeout {
		t.Fatalf("caller deadline 1m: %v left, want it less at most the call's %v", left, took)
	}
}

// TestProfilesOnlyOnTheDebugPort checks MINIZON_DEBUG_ADDR: the profiles are
// served on that port while Run runs, never on the service's port, and the
// port is closed when Run returns.
func TestProfilesOnlyOnTheDebugPort(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DebugAddr = ln.Addr().String()
	ln.Close()
	h := newHarness(t, cfg, newImpl()).run()
	c := http1(t)
	get := func(url string) (int, string) {
		t.Helper()
		res, err := c.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	var code int
	var body string
	// The debug server starts beside the service; the limit only keeps a
	// broken build from hanging.
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, body = get("http://" + cfg.DebugAddr + "/debug/pprof/"); code != 0 {
			break
		}
	}
	if code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("debug port: %d %.200s", code, body)
	}
	if code, _ := get("http://" + cfg.DebugAddr + "/debug/pprof/heap?debug=1"); code != http.StatusOK {
		t.Fatalf("heap profile: %d", code)
	}
	if code, _ := get(h.base + "/debug/pprof/"); code == http.StatusOK {
		t.Fatal("the service's port serves profiles")
	}
	h.cancel()
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	if code, _ := get("http://" + cfg.DebugAddr + "/debug/pprof/"); code != 0 {
		t.Fatalf("debug port still answers after Run returned: %d", code)
	}
}

func TestDebugAddrInUseFailsRun(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := baseConfig()
	cfg.DebugAddr = taken.Addr().String()
	h := newHarness(t, cfg, newImpl()).run()
	if err := h.wait(); err == nil || !strings.Contains(err.Error(), "MINIZON_DEBUG_ADDR") {
		t.Fatalf("Run with a taken debug port: %v", err)
	}
}
