package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpctest"
)

// The tests in this file prove each connection limit of platform.Config over
// real sockets. Each sets the limit under test short and every other one
// long, so that a connection closed in time can only have been closed by
// the limit under test. The bound on "in time" is generous (closeWithin):
// the tests assert that a limit fires, never how fast. A limit under test
// is still a second or two, not less: the well-behaved clients beside the
// slow ones must get their requests in before it on a busy machine.

// closeWithin is how long a limit may take to fire before the test calls it
// broken: it only keeps a broken limit from hanging the test.
const closeWithin = 30 * time.Second

// long is the value of every timeout a test does not exercise.
const long = time.Minute

// limitsConfig is baseConfig with every timeout long and the other limits
// at their defaults; a test shortens the one it exercises.
func limitsConfig() platform.Config {
	cfg := baseConfig()
	cfg.ReadHeaderTimeout = long
	cfg.ReadTimeout = long
	cfg.WriteTimeout = 2 * long
	cfg.IdleTimeout = long
	cfg.MaxHeaderBytes = platform.DefaultMaxHeaderBytes
	cfg.MaxConcurrentStreams = platform.DefaultMaxConcurrentStreams
	return cfg
}

func TestLimitsConfig(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		env := envconf.FromMap(nil)
		cfg := platform.ReadConfig(env)
		if err := errors.Join(env.Err(), cfg.Validate()); err != nil {
			t.Fatal(err)
		}
		want := platform.Config{
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, MaxConcurrentStreams: 250,
		}
		got := platform.Config{
			ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout,
			IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes, MaxConcurrentStreams: cfg.MaxConcurrentStreams,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("defaults\n got %+v\nwant %+v", got, want)
		}
		if cfg.WriteTimeout <= cfg.RequestTimeout {
			t.Fatalf("default write timeout %v does not exceed the default request timeout %v", cfg.WriteTimeout, cfg.RequestTimeout)
		}
	})
	t.Run("set", func(t *testing.T) {
		env := envconf.FromMap(map[string]string{
			"MINIZON_READ_HEADER_TIMEOUT": "2s", "MINIZON_READ_TIMEOUT": "10s", "MINIZON_WRITE_TIMEOUT": "45s",
			"MINIZON_IDLE_TIMEOUT": "90s", "MINIZON_MAX_HEADER_BYTES": "16384", "MINIZON_MAX_STREAMS": "100",
		})
		cfg := platform.ReadConfig(env)
		if err := errors.Join(env.Err(), cfg.Validate()); err != nil {
			t.Fatal(err)
		}
		if cfg.ReadHeaderTimeout != 2*time.Second || cfg.ReadTimeout != 10*time.Second || cfg.WriteTimeout != 45*time.Second ||
			cfg.IdleTimeout != 90*time.Second || cfg.MaxHeaderBytes != 16384 || cfg.MaxConcurrentStreams != 100 {
			t.Fatalf("read %+v", cfg)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		vars := map[string]string{
			"MINIZON_READ_HEADER_TIMEOUT": "soon", "MINIZON_READ_TIMEOUT": "-1s",
			"MINIZON_MAX_HEADER_BYTES": "100", "MINIZON_MAX_STREAMS": "0",
		}
		env := envconf.FromMap(vars)
		platform.ReadConfig(env)
		err := env.Err()
		for name := range vars {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("error %v does not name %s", err, name)
			}
		}
	})
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string // what the error must name
	}{
		{"zero header timeout", map[string]string{"MINIZON_READ_HEADER_TIMEOUT": "0s"}, "MINIZON_READ_HEADER_TIMEOUT"},
		{"zero read timeout", map[string]string{"MINIZON_READ_TIMEOUT": "0"}, "MINIZON_READ_TIMEOUT"},
		{"zero write timeout", map[string]string{"MINIZON_WRITE_TIMEOUT": "0s"}, "MINIZON_WRITE_TIMEOUT"},
		{"zero idle timeout", map[string]string{"MINIZON_IDLE_TIMEOUT": "0s"}, "MINIZON_IDLE_TIMEOUT"},
		{"header timeout beyond the read timeout", map[string]string{"MINIZON_READ_HEADER_TIMEOUT": "40s"}, "MINIZON_READ_TIMEOUT"},
		{"request timeout beyond the write timeout", map[string]string{"MINIZON_REQUEST_TIMEOUT": "2m"}, "MINIZON_WRITE_TIMEOUT"},
		{"write timeout equal to the request timeout", map[string]string{"MINIZON_WRITE_TIMEOUT": "30s"}, "MINIZON_REQUEST_TIMEOUT"},
		{"write timeout within the default request timeout", map[string]string{"MINIZON_REQUEST_TIMEOUT": "0s", "MINIZON_WRITE_TIMEOUT": "20s"}, "MINIZON_WRITE_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := envconf.FromMap(tc.vars)
			cfg := platform.ReadConfig(env)
			if err := env.Err(); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// dial opens a raw TCP connection, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitClosed reads from conn until the server closes it and returns what
// it read; it fails the test if the connection is still open after within.
func waitClosed(t *testing.T, r io.Reader, conn net.Conn, within time.Duration) []byte {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	switch {
	case err == nil, errors.Is(err, syscall.ECONNRESET):
		return got
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("the server did not close the connection within %v (read %q)", within, got)
	default:
		t.Fatalf("read: %v (read %q)", err, got)
	}
	return nil
}

// A slowloris client, which sends part of a request's headers and stalls,
// is disconnected after ReadHeaderTimeout without being served; other
// clients are served while it stalls.
func TestSlowHeadersAreCutOff(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig()
	cfg.ReadHeaderTimeout = 2 * time.Second
	h := startServer(t, cfg, newImpl())

	stalled := make([]net.Conn, 5)
	for i := range stalled {
		stalled[i] = dial(t, h.addr)
		if _, err := io.WriteString(stalled[i], "POST "+lomsv1connect.LomsServiceStocksProcedure+" HTTP/1.1\r\nHost: shop\r\nContent-Ty"); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range map[string]*http.Client{"HTTP/1.1": http1(t), "h2c": h2c(t)} {
		client := lomsv1connect.NewLomsServiceClient(c, h.base, connect.WithGRPCWeb())
		if _, err := client.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1}); err != nil {
			t.Fatalf("a normal %s client beside stalled ones: %v", name, err)
		}
	}
	for _, conn := range stalled {
		// net/http closes the connection, saying 400 Bad Request first
		// when it has read part of a header line.
		if got := string(waitClosed(t, conn, conn, closeWithin)); got != "" && !strings.HasPrefix(got, "HTTP/1.1 4") {
			t.Fatalf("a stalled client was answered: %q", got)
		}
	}
}

// slowReader yields data one byte per interval until stop is closed.
type slowReader struct {
	data     []byte
	interval time.Duration
	stop     <-chan struct{}
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	select {
	case <-time.After(r.interval):
	case <-r.stop:
		return 0, errors.New("stopped")
	}
	p[0], r.data = r.data[0], r.data[1:]
	return 1, nil
}

// A client that sends its headers and then dribbles the body is cut off
// after ReadTimeout: over HTTP/1.1 the connection is closed, over HTTP/2
// the stream ends in an error; the handler never runs.
func TestDribbledBodyIsCutOff(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig()
	cfg.ReadHeaderTimeout = 2 * time.Second
	cfg.ReadTimeout = 2 * time.Second
	const interval = 50 * time.Millisecond
	// Long enough that sending it takes longer than the test waits for the
	// cut.
	key := strings.Repeat("k", int(closeWithin/interval))

	t.Run("HTTP/1.1", func(t *testing.T) {
		t.Parallel()
		h := startServer(t, cfg, newImpl())
		body := `{"user":1,"idempotencyKey":"` + key + `"}`
		conn := dial(t, h.addr)
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
			lomsv1connect.LomsServiceCreateOrderProcedure, len(body))
		stop := make(chan struct{})
		dribbled := make(chan struct{})
		go func() {
			defer close(dribbled)
			// Writing fails once the server has closed the connection.
			_, _ = io.Copy(conn, &slowReader{data: []byte(body), interval: interval, stop: stop})
		}()
		got := waitClosed(t, conn, conn, closeWithin)
		close(stop)
		<-dribbled
		if strings.HasPrefix(string(got), "HTTP/1.1 200") {
			t.Fatalf("the dribbled request was answered 200: %q", got)
		}
		if n := h.impl.calls.Load(); n != 0 {
			t.Fatalf("the handler ran %d times", n)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		t.Parallel()
		h := startServer(t, cfg, newImpl())
		msg, err := proto.Marshal(&lomsv1.CreateOrderRequest{User: 1, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		body := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...) // one gRPC message
		stop := make(chan struct{})
		defer close(stop)
		ctx, cancel := context.WithTimeout(t.Context(), closeWithin)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+lomsv1connect.LomsServiceCreateOrderProcedure,
			&slowReader{data: body, interval: interval, stop: stop})
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		res, err := h2c(t).Do(req)
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		if ctx.Err() != nil {
			t.Fatalf("the stream was not cut off within %v", closeWithin)
		}
		if err == nil {
			if s := res.Header.Get("Grpc-Status") + res.Trailer.Get("Grpc-Status"); s == "" || s == "0" {
				t.Fatalf("the dribbled request succeeded: HTTP %d grpc-status %q", res.StatusCode, s)
			}
		}
		if n := h.impl.calls.Load(); n != 0 {
			t.Fatalf("the handler ran %d times", n)
		}
	})
}

// Both HTTP versions: a connection with nothing in flight is closed after
// IdleTimeout.
func TestIdleConnectionsAreClosed(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig()
	cfg.IdleTimeout = 2 * time.Second

	t.Run("HTTP/1.1 keep-alive", func(t *testing.T) {
		t.Parallel()
		h := startServer(t, cfg, newImpl())
		conn := dial(t, h.addr)
		body := `{"sku":5}`
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			lomsv1connect.LomsServiceStocksProcedure, len(body), body)
		br := bufio.NewReader(conn)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || res.Close {
			t.Fatalf("first request: HTTP %d, close %v, %v; want 200 on a kept-alive connection", res.StatusCode, res.Close, err)
		}
		if got := waitClosed(t, br, conn, closeWithin); len(got) > 0 {
			t.Fatalf("unexpected bytes on an idle connection: %q", got)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		t.Parallel()
		h := startServer(t, cfg, newImpl())
		conn := dial(t, h.addr)
		h2Handshake(t, conn)
		if err := conn.SetReadDeadline(time.Now().Add(closeWithin)); err != nil {
			t.Fatal(err)
		}
		goAway := false
		for {
			f, err := readFrame(conn)
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				break
			}
			if err != nil {
				t.Fatalf("the idle HTTP/2 connection is still open after %v: %v", closeWithin, err)
			}
			goAway = goAway || f.typ == frameGoAway
		}
		if !goAway {
			t.Fatal("the server closed the idle connection without GOAWAY")
		}
	})
}

// waiter is a LomsService whose Stocks answers only when its deadline
// passes.
type waiter struct {
	lomsv1connect.UnimplementedLomsServiceHandler
}

func (waiter) Stocks(ctx context.Context, _ *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	<-ctx.Done()
	return nil, connect.NewError(connect.CodeDeadlineExceeded, ctx.Err())
}

// WriteTimeout bounds how long an answer may take. That is why Validate
// wants it longer than RequestTimeout: a call that runs into the default
// deadline gets its deadline_exceeded only if the write timeout has not cut
// the answer off first, which over HTTP/1.1 closes the connection and over
// HTTP/2 resets the stream. The two timeouts are far apart either way, so
// that which fires first does not depend on how soon a busy machine runs
// the timers.
func TestWriteTimeoutCutsOffLateAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		requestTimeout time.Duration
		writeTimeout   time.Duration
		wantAnswered   bool
	}{
		{"longer than the request timeout", 300 * time.Millisecond, time.Minute, true},
		{"shorter than the request timeout", 3 * time.Second, 100 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := limitsConfig()
			cfg.RequestTimeout = tc.requestTimeout
			cfg.WriteTimeout = tc.writeTimeout
			if err := cfg.Validate(); (err == nil) != tc.wantAnswered || (err != nil && !strings.Contains(err.Error(), "MINIZON_WRITE_TIMEOUT")) {
				t.Fatalf("Validate: %v", err)
			}
			base := "http://" + serveService(t, cfg, waiter{})
			for name, c := range map[string]lomsv1connect.LomsServiceClient{
				"Connect over HTTP/1.1": lomsv1connect.NewLomsServiceClient(http1(t), base),
				"gRPC over h2c":         lomsv1connect.NewLomsServiceClient(h2c(t), base, connect.WithGRPC()),
			} {
				_, err := c.Stocks(t.Context(), &lomsv1.StocksRequest{Sku: 1})
				if answered := connect.CodeOf(err) == connect.CodeDeadlineExceeded; answered != tc.wantAnswered {
					t.Errorf("%s: %v; want the server's deadline_exceeded %v", name, err, tc.wantAnswered)
				}
			}
		})
	}
}

// HTTP/2 frame types, flags, settings and error codes the raw tests use
// (RFC 9113, sections 6, 6.5.2 and 7).
const (
	frameData      = 0x0
	frameHeaders   = 0x1
	frameRSTStream = 0x3
	frameSettings  = 0x4
	frameGoAway    = 0x7

	flagAck        = 0x1
	flagEndStream  = 0x1
	flagEndHeaders = 0x4

	settingMaxConcurrentStreams = 0x3
	settingMaxHeaderListSize    = 0x6

	errProtocol      = 0x1
	errRefusedStream = 0x7
)

// frame is one HTTP/2 frame.
type frame struct {
	typ, flags byte
	stream     uint32
	payload    []byte
}

// readFrame reads one HTTP/2 frame.
func readFrame(r io.Reader) (frame, error) {
	var hdr [9]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, err
	}
	f := frame{
		typ: hdr[3], flags: hdr[4], stream: binary.BigEndian.Uint32(hdr[5:]) &^ (1 << 31),
		payload: make([]byte, int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2])),
	}
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return frame{}, err
	}
	return f, nil
}

// writeFrame writes one HTTP/2 frame.
func writeFrame(w io.Writer, f frame) error {
	n := len(f.payload)
	hdr := []byte{byte(n >> 16), byte(n >> 8), byte(n), f.typ, f.flags}
	hdr = binary.BigEndian.AppendUint32(hdr, f.stream)
	_, err := w.Write(append(hdr, f.payload...))
	return err
}

// h2Handshake opens cleartext HTTP/2 with prior knowledge, as gRPC clients
// do, and acknowledges the server's settings; it returns them.
func h2Handshake(t *testing.T, conn net.Conn) map[uint16]uint32 {
	t.Helper()
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := writeFrame(conn, frame{typ: frameSettings}); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(stuck))
	defer conn.SetReadDeadline(time.Time{})
	for {
		f, err := readFrame(conn)
		if err != nil {
			t.Fatalf("waiting for the server's SETTINGS: %v", err)
		}
		if f.typ != frameSettings || f.flags&flagAck != 0 {
			continue
		}
		settings := map[uint16]uint32{}
		for p := f.payload; len(p) >= 6; p = p[6:] {
			settings[binary.BigEndian.Uint16(p)] = binary.BigEndian.Uint32(p[2:])
		}
		if err := writeFrame(conn, frame{typ: frameSettings, flags: flagAck}); err != nil {
			t.Fatal(err)
		}
		return settings
	}
}

// hpackLiterals encodes header fields as HPACK literals without indexing or
// Huffman coding (RFC 7541, section 6.2.2), which every decoder accepts.
func hpackLiterals(fields ...string) []byte {
	var b []byte
	for i := 0; i < len(fields); i += 2 {
		name, value := fields[i], fields[i+1]
		b = append(b, 0)
		b = append(hpackInt(b, len(name)), name...)
		b = append(hpackInt(b, len(value)), value...)
	}
	return b
}

// hpackInt appends a string length: an integer with a 7-bit prefix and the
// Huffman bit clear (RFC 7541, section 5.1).
func hpackInt(b []byte, n int) []byte {
	if n < 127 {
		return append(b, byte(n))
	}
	b, n = append(b, 127), n-127
	for ; n >= 128; n >>= 7 {
		b = append(b, byte(n&127|128))
	}
	return append(b, byte(n))
}

// h2Status returns the :status a response header block starts with. It
// decodes only the two ways a status is sent: an indexed field of the
// static table, or a literal with an indexed :status name and a plain
// value (RFC 7541, sections 6.1 and 6.2.1, appendix A).
func h2Status(t *testing.T, block []byte) string {
	t.Helper()
	static := map[byte]string{8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}
	switch {
	case len(block) >= 1 && block[0]&0x80 != 0 && static[block[0]&0x7f] != "":
		return static[block[0]&0x7f]
	case len(block) >= 2 && block[0]&0xc0 == 0x40 && static[block[0]&0x3f] != "" && block[1]&0x80 == 0 && len(block) >= 2+int(block[1]):
		return string(block[2 : 2+block[1]])
	}
	t.Fatalf("cannot decode a :status from header block %x", block)
	return ""
}

// Headers over MaxHeaderBytes get 431 over HTTP/1.1; over HTTP/2 the limit
// is announced in SETTINGS, so the request fails and never reaches a
// handler. Headers within the limit are served.
func TestOversizedHeadersAreRefused(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig()
	cfg.MaxHeaderBytes = 4 << 10
	// Well over the limit, as net/http allows 4 KiB of slack for HTTP/1.1.
	big := strings.Repeat("x", 4*cfg.MaxHeaderBytes)
	small := strings.Repeat("x", cfg.MaxHeaderBytes/2)
	h := startServer(t, cfg, newImpl())

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn := dial(t, h.addr)
		body := `{"sku":5}`
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: shop\r\nX-Pad: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			lomsv1connect.LomsServiceStocksProcedure, big, len(body), body)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("HTTP %d, want 431", res.StatusCode)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		conn := dial(t, h.addr)
		// net/http announces the limit plus room for the per-field
		// overhead HTTP/2 counts (RFC 9113, section 6.5.2).
		if got := h2Handshake(t, conn)[settingMaxHeaderListSize]; got < uint32(cfg.MaxHeaderBytes) || got > uint32(2*cfg.MaxHeaderBytes) {
			t.Fatalf("SETTINGS_MAX_HEADER_LIST_SIZE %d, want about %d", got, cfg.MaxHeaderBytes)
		}
		// A client that sends more anyway, in fields each within the limit
		// (a single field over it ends the connection: HPACK cannot skip
		// a string it refuses to decode) and in a block that fits one
		// frame.
		headers := hpackLiterals(":method", "POST", ":scheme", "http", ":authority", h.addr,
			":path", lomsv1connect.LomsServiceStocksProcedure, "content-type", "application/grpc",
			"x-pad-1", small, "x-pad-2", small, "x-pad-3", small, "x-pad-4", small)
		if err := writeFrame(conn, frame{typ: frameHeaders, flags: flagEndHeaders | flagEndStream, stream: 1, payload: headers}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(stuck))
		for {
			f, err := readFrame(conn)
			if err != nil {
				t.Fatalf("waiting for the answer: %v", err)
			}
			if f.typ == frameRSTStream || f.typ == frameGoAway {
				t.Fatalf("got frame type %d, want a 431 response", f.typ)
			}
			if f.typ == frameHeaders && f.stream == 1 {
				if got := h2Status(t, f.payload); got != "431" {
					t.Fatalf(":status %s, want 431", got)
				}
				break
			}
		}
	})
	before := h.impl.calls.Load()
	for name, c := range map[string]*http.Client{"HTTP/1.1": http1(t), "h2c": h2c(t)} {
		t.Run(name+" client", func(t *testing.T) {
			client := lomsv1connect.NewLomsServiceClient(c, h.base, connect.WithGRPCWeb())
			// The first call also lets an HTTP/2 client learn the server's
			// settings.
			call := func(pad string) error {
				ctx, info := connect.NewClientContext(t.Context())
				info.RequestHeader().Set("X-Pad", pad)
				_, err := client.Stocks(ctx, &lomsv1.StocksRequest{Sku: 1})
				return err
			}
			if err := call(small); err != nil {
				t.Fatalf("headers within the limit: %v", err)
			}
			if err := call(big); err == nil {
				t.Fatal("headers over the limit were accepted")
			}
		})
	}
	if n := h.impl.calls.Load() - before; n != 2 {
		t.Fatalf("the handler ran %d times, want 2 (only the calls within the limit)", n)
	}
}

// gate is a LomsService whose Stocks waits for a release and records how
// many calls were in it at once.
type gate struct {
	lomsv1connect.UnimplementedLomsServiceHandler
	entered chan struct{}
	release chan struct{}
	stop    chan struct{} // closed when the test ends: every call returns

	mu       sync.Mutex
	inFlight int
	peak     int
}

func (g *gate) Stocks(ctx context.Context, _ *lomsv1.StocksRequest) (*lomsv1.StocksResponse, error) {
	g.mu.Lock()
	g.inFlight++
	g.peak = max(g.peak, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-g.stop:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &lomsv1.StocksResponse{}, nil
}

// stuck is how long recv and send wait before they call the test stuck: it
// only keeps a broken build from hanging.
const stuck = 30 * time.Second

// recv receives from ch; ok is false if ch is closed.
func recv[T any](t *testing.T, ch <-chan T) (v T, ok bool) {
	t.Helper()
	select {
	case v, ok = <-ch:
		return v, ok
	case <-time.After(stuck):
		t.Fatalf("nothing received in %v", stuck)
	}
	panic("unreachable")
}

// send sends ch's zero value.
func send[T any](t *testing.T, ch chan<- T) {
	t.Helper()
	select {
	case ch <- *new(T):
	case <-time.After(stuck):
		t.Fatalf("nobody received in %v", stuck)
	}
}

// serveService runs impl on a platform server on a loopback port until the
// test ends and returns its host:port.
func serveService(t *testing.T, cfg platform.Config, impl lomsv1connect.LomsServiceHandler) string {
	t.Helper()
	return serveServiceLogging(t, cfg, impl, slog.New(slog.DiscardHandler))
}

// serveServiceLogging is serveService with the server logging to log.
func serveServiceLogging(t *testing.T, cfg platform.Config, impl lomsv1connect.LomsServiceHandler, log *slog.Logger) string {
	t.Helper()
	srv := rpctest.NewServer(t, cfg, log)
	path, h := lomsv1connect.NewLomsServiceHandler(impl, srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// streamEnd is how the server ended a stream: with the end of its response,
// or with RST_STREAM and an error code.
type streamEnd struct {
	stream uint32
	reset  bool
	code   uint32
}

// One HTTP/2 connection carries at most MaxConcurrentStreams calls at once,
// whatever the client does. The server announces the cap; a client that
// ignores it has its extra streams reset without their handler running,
// and once earlier calls finish, new ones on the same connection proceed.
//
// The client is raw frames: Go's own HTTP/2 client in strict mode, which
// would queue calls beyond the cap as grpc-go does, stalls for good once
// more calls wait than the cap allows (golang/go#70809).
func TestHTTP2StreamsPerConnectionAreCapped(t *testing.T) {
	t.Parallel()
	const streams = 4
	cfg := limitsConfig()
	cfg.MaxConcurrentStreams = streams
	g := &gate{entered: make(chan struct{}, 2*streams), release: make(chan struct{}), stop: make(chan struct{})}
	addr := serveService(t, cfg, g)
	t.Cleanup(func() { close(g.stop) }) // before the server drains

	conn := dial(t, addr)
	if got := h2Handshake(t, conn)[settingMaxConcurrentStreams]; got != streams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", got, streams)
	}
	ends := make(chan streamEnd, 4*streams)
	go func() {
		for {
			f, err := readFrame(conn)
			if err != nil {
				close(ends)
				return
			}
			switch {
			case f.typ == frameRSTStream && len(f.payload) == 4:
				ends <- streamEnd{stream: f.stream, reset: true, code: binary.BigEndian.Uint32(f.payload)}
			case (f.typ == frameHeaders || f.typ == frameData) && f.flags&flagEndStream != 0:
				ends <- streamEnd{stream: f.stream}
			}
		}
	}()
	// A unary gRPC Stocks call, as grpc-go sends it.
	headers := hpackLiterals(
		":method", "POST", ":scheme", "http", ":authority", addr, ":path", lomsv1connect.LomsServiceStocksProcedure,
		"content-type", "application/grpc", "te", "trailers")
	body := []byte{0, 0, 0, 0, 2, 0x08, 0x01} // one message: StocksRequest{sku: 1}
	next := uint32(1)
	openStream := func() uint32 {
		id := next
		next += 2
		if err := writeFrame(conn, frame{typ: frameHeaders, flags: flagEndHeaders, stream: id, payload: headers}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	sendBody := func(id uint32) {
		if err := writeFrame(conn, frame{typ: frameData, flags: flagEndStream, stream: id, payload: body}); err != nil {
			t.Fatal(err)
		}
	}
	open := func() { sendBody(openStream()) }
	end := func() streamEnd {
		t.Helper()
		e, ok := recv(t, ends)
		if !ok {
			t.Fatal("the server closed the connection")
		}
		return e
	}

	// Two streams more than the cap, all at once on the one connection.
	// The bodies follow once the server has answered every stream's
	// headers, so that the reset streams get no DATA (which the server
	// would answer with a second reset, STREAM_CLOSED).
	ids := make([]uint32, streams+2)
	for i := range ids {
		ids[i] = openStream()
	}
	for _, extra := range ids[streams:] {
		e := end()
		if !e.reset || (e.code != errProtocol && e.code != errRefusedStream) || e.stream != extra {
			t.Fatalf("got %+v, want stream %d beyond the first %d reset with PROTOCOL_ERROR or REFUSED_STREAM", e, extra, streams)
		}
	}
	for _, id := range ids[:streams] {
		sendBody(id)
	}
	for range streams {
		recv(t, g.entered)
	}

	// Two calls finish; two new ones on the same connection proceed.
	for range 2 {
		send(t, g.release)
		if e := end(); e.reset {
			t.Fatalf("a call in flight was reset: %+v", e)
		}
	}
	open()
	open()
	for range 2 {
		recv(t, g.entered)
	}
	for range streams {
		send(t, g.release)
		if e := end(); e.reset {
			t.Fatalf("a call in flight was reset: %+v", e)
		}
	}
	g.mu.Lock()
	peak := g.peak
	g.mu.Unlock()
	if peak != streams {
		t.Fatalf("%d calls in the handler at once, want %d", peak, streams)
	}
}

// TestBodyLimit covers Connect (plain and gzip) and plain gRPC; these are
// the other protocols, and compressed messages that inflate past the limit
// while their bodies stay under it, which only the decompressed-size check
// catches.
func TestBodyLimitOverOtherProtocols(t *testing.T) {
	t.Parallel()
	cfg := baseConfig()
	cfg.MaxBodyBytes = 1024
	oversized := &lomsv1.CreateOrderRequest{User: 1, IdempotencyKey: strings.Repeat("k", 4<<10)}
	within := &lomsv1.CreateOrderRequest{User: 1, IdempotencyKey: strings.Repeat("k", 512)}
	for _, tc := range []struct {
		name   string
		client func(*testing.T) *http.Client
		opts   []connect.ClientOption
	}{
		{"gRPC-Web over HTTP/1.1", http1, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"gRPC-Web over h2c", h2c, []connect.ClientOption{connect.WithGRPCWeb()}},
		{"gzip gRPC", h2c, []connect.ClientOption{connect.WithGRPC(), connect.WithSendGzip()}},
		{"gzip gRPC-Web", http1, []connect.ClientOption{connect.WithGRPCWeb(), connect.WithSendGzip()}},
		{"gzip Connect proto", http1, []connect.ClientOption{connect.WithSendGzip()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startServer(t, cfg, newImpl())
			c := lomsv1connect.NewLomsServiceClient(tc.client(t), h.base, tc.opts...)
			_, err := c.CreateOrder(t.Context(), oversized)
			wantCode(t, err, connect.CodeResourceExhausted)
			if n := h.impl.calls.Load(); n != 0 {
				t.Fatalf("the handler ran %d times for an oversized request", n)
			}
			if _, err := c.CreateOrder(t.Context(), within); err != nil {
				t.Fatalf("a request within the limit: %v", err)
			}
		})
	}
}

// TestHealthWatchOutlivesTheWriteTimeout: a health Watch stream is meant to
// stay open for as long as its client watches; the write timeout, meant for
// one answer, must not reset it, nor must the read timeouts (only the drain
// ends it). The timeouts are short, but not so short that the request's
// headers could miss them on a busy machine: the stream must outlive three
// of them.
func TestHealthWatchOutlivesTheWriteTimeout(t *testing.T) {
	t.Parallel()
	cfg := limitsConfig()
	cfg.RequestTimeout = time.Second
	cfg.WriteTimeout = 2 * time.Second
	cfg.ReadTimeout = 2 * time.Second
	cfg.ReadHeaderTimeout = 2 * time.Second
	addr := serveService(t, cfg, waiter{})
	for name, client := range map[string]*http.Client{"HTTP/1.1": http1(t), "h2c": h2c(t)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// A Connect server stream: one enveloped JSON message, {}.
			body := append([]byte{0, 0, 0, 0, 2}, "{}"...)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/grpc.health.v1.Health/Watch",
				bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/connect+json")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			ended := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, res.Body)
				ended <- err
			}()
			select {
			case err := <-ended:
				t.Fatalf("the Watch stream ended after less than 3 write timeouts: %v", err)
			case <-time.After(3 * cfg.WriteTimeout):
			}
		})
	}
}
