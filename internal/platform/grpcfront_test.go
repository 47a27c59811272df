package platform_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/rpctest"
)

// serveWithRest runs newImpl on a server that, as minizon dev does, also
// serves a page at every other path.
func serveWithRest(t *testing.T) string {
	t.Helper()
	srv := rpctest.NewServer(t, baseConfig(), slog.New(slog.DiscardHandler))
	path, h := lomsv1connect.NewLomsServiceHandler(newImpl(), srv.HandlerOptions()...)
	srv.Mount(lomsv1connect.LomsServiceName, path, h)
	srv.HandleRest(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "<!doctype html><title>storefront</title>")
	}))
	return "http://" + rpctest.Serve(t, srv.Handler())
}

// A procedure no service serves is unimplemented in gRPC's own terms (HTTP
// 200, the request's content type, grpc-status 12 and a grpc-message naming
// what is unknown) over gRPC, gRPC-Web and its text mode; over Connect it
// is the 404 that protocol defines.
func TestUnknownProcedureIsUnimplemented(t *testing.T) {
	t.Parallel()
	base := serveWithRest(t)
	for _, tc := range []struct{ path, message string }{
		{"/minizon.loms.v1.LomsService/Nope", "unknown method Nope for service minizon.loms.v1.LomsService"},
		{"/minizon.nope.v1.Nope/Get", "unknown service minizon.nope.v1.Nope"},
		{"/grpc.health.v1.Health/Nope", "unknown method Nope for service grpc.health.v1.Health"},
		{"/grpc.reflection.v1.ServerReflection/Nope", "unknown method Nope for service grpc.reflection.v1.ServerReflection"},
	} {
		for _, p := range wireProtocols() {
			a := p.call(t, base+tc.path, &lomsv1.StocksRequest{Sku: 1}, nil)
			if p.name == "connect" {
				if a.status != http.StatusNotFound {
					t.Errorf("%s %s: HTTP %d, want 404", p.name, tc.path, a.status)
				}
				continue
			}
			if a.status != http.StatusOK || a.contentType != p.contentType || a.code != connect.CodeUnimplemented || a.message != tc.message {
				t.Errorf("%s %s: HTTP %d %s code %v %q, want HTTP 200 %s unimplemented %q",
					p.name, tc.path, a.status, a.contentType, a.code, a.message, p.contentType, tc.message)
			}
		}
	}
	// The procedures that exist are still served.
	for _, p := range wireProtocols() {
		if a := p.call(t, base+lomsv1connect.LomsServiceStocksProcedure, &lomsv1.StocksRequest{Sku: 1}, nil); a.code != 0 || len(a.messages) != 1 {
			t.Errorf("%s: Stocks answered code %v %q with %d messages", p.name, a.code, a.message, len(a.messages))
		}
	}
}

// A request compressed in an encoding the server lacks is unimplemented,
// with grpc-accept-encoding saying what it takes and no empty grpc-encoding
// header (which C-core logs as invalid metadata); gzip works.
func TestUnsupportedEncodingIsUnimplemented(t *testing.T) {
	t.Parallel()
	base := serveWithRest(t)
	msg, err := proto.Marshal(&lomsv1.StocksRequest{Sku: 7})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(msg)
	zw.Close()
	for _, p := range wireProtocols() {
		if p.name == "connect" {
			continue
		}
		encode := func(payload []byte) []byte {
			b := envelope(1, payload)
			if p.name == "grpc-web-text" {
				return []byte(base64.StdEncoding.EncodeToString(b))
			}
			return b
		}
		a := callWire(t, p.client(t), base+lomsv1connect.LomsServiceStocksProcedure, p.contentType, encode([]byte("not brotli")),
			http.Header{"Grpc-Encoding": {"br"}})
		a.wantGRPC(t, p.contentType, connect.CodeUnimplemented)
		if acc := a.header.Get("Grpc-Accept-Encoding"); !strings.Contains(acc, "gzip") {
			t.Errorf("%s: grpc-accept-encoding %q, want it to list gzip", p.name, acc)
		}
		for _, h := range []http.Header{a.header, a.trailers} {
			if v, ok := h["Grpc-Encoding"]; ok {
				t.Errorf("%s: a grpc-encoding header %q came with the refusal", p.name, v)
			}
		}

		a = callWire(t, p.client(t), base+lomsv1connect.LomsServiceStocksProcedure, p.contentType, encode(gz.Bytes()),
			http.Header{"Grpc-Encoding": {"gzip"}})
		a.wantGRPC(t, p.contentType, 0)
		var res lomsv1.StocksResponse
		if len(a.messages) != 1 || proto.Unmarshal(a.messages[0], &res) != nil || res.GetStocks()[0].GetCount() != 7 {
			t.Errorf("%s: gzip request answered %x", p.name, a.messages)
		}
	}
}
