// Package rpctest helps tests talk to services the way real callers do:
// each of the three protocols over the HTTP version its clients use, and
// servers on loopback ports that speak HTTP/1.1 and cleartext HTTP/2.
package rpctest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/telemetry"
)

// Protocol is one way of calling a service.
type Protocol struct {
	// Name is connect, grpc or grpcweb.
	Name string
	// HTTP is the client to pass to a generated client's constructor.
	HTTP *http.Client
	// Options select the protocol.
	Options []connect.ClientOption
}

// Protocols returns the three protocols as clients use them: Connect with
// JSON and gRPC-Web over HTTP/1.1 (as browsers and curl do), gRPC over
// cleartext HTTP/2 with prior knowledge. Idle connections close when the
// test ends.
func Protocols(t testing.TB) []Protocol {
	h1 := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(h1.CloseIdleConnections)
	h2 := H2C(t)
	return []Protocol{
		{Name: "connect", HTTP: h1, Options: []connect.ClientOption{connect.WithProtoJSON()}},
		{Name: "grpc", HTTP: h2, Options: []connect.ClientOption{connect.WithGRPC()}},
		{Name: "grpcweb", HTTP: h1, Options: []connect.ClientOption{connect.WithGRPCWeb()}},
	}
}

// Clients builds a generated client per protocol, keyed by protocol name.
func Clients[C any](t testing.TB, base string, newClient func(connect.HTTPClient, string, ...connect.ClientOption) C) map[string]C {
	out := map[string]C{}
	for _, p := range Protocols(t) {
		out[p.Name] = newClient(p.HTTP, base, p.Options...)
	}
	return out
}

// H2C is a client that speaks cleartext HTTP/2 with prior knowledge, as gRPC
// clients do.
func H2C(t testing.TB) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// Serve runs h on a loopback port over HTTP/1.1 and cleartext HTTP/2 until
// the test ends, and returns its host:port.
func Serve(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// GRPCOnly refuses every protocol but gRPC, as the original public
// ProductService did.
func GRPCOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct := r.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "application/grpc-web") {
			http.Error(w, "gRPC only", http.StatusUnsupportedMediaType)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewServer returns a platform server with its own registry and no span
// export, as tests need one per service.
func NewServer(t testing.TB, cfg platform.Config, log *slog.Logger) *platform.Server {
	t.Helper()
	srv, err := platform.NewServer(cfg, log, telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// PostConnect sends body to a unary procedure of h over the Connect
// protocol, in-process, and returns the answer's code ("ok" for success)
// and error message, for tests (fuzz tests above all) that drive a handler
// with raw bytes.
func PostConnect(t testing.TB, h http.Handler, procedure, contentType string, body []byte) (code, message string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, procedure, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code == http.StatusOK {
		return "ok", ""
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Code == "" {
		t.Fatalf("%s %s: HTTP %d with body %q", procedure, contentType, rec.Code, rec.Body.String())
	}
	return e.Code, e.Message
}

// LogBuffer is a log sink that a test may read while servers write to it.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is what was written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
