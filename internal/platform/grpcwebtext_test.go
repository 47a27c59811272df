package platform_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// gRPC-Web's text mode, the default of Google's grpc-web JavaScript client:
// the body base64-encoded both ways, in padded parts.
func TestGRPCWebTextUnary(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	req := enveloped(t, &lomsv1.StocksRequest{Sku: 42})
	b64 := base64.StdEncoding.EncodeToString
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"text", "application/grpc-web-text", b64(req)},
		{"text+proto", "application/grpc-web-text+proto", b64(req)},
		// A client may flush its body in parts, each padded.
		{"two padded parts", "application/grpc-web-text", b64(req[:4]) + b64(req[4:])},
	} {
		a := callWire(t, http1(t), h.base+lomsv1connect.LomsServiceStocksProcedure, tc.contentType, []byte(tc.body), nil)
		a.wantGRPC(t, tc.contentType, 0)
		var res lomsv1.StocksResponse
		if len(a.messages) != 1 || proto.Unmarshal(a.messages[0], &res) != nil || res.GetStocks()[0].GetCount() != 42 {
			t.Fatalf("%s: messages %x, want the stocks of sku 42", tc.name, a.messages)
		}
		if _, err := base64.StdEncoding.DecodeString(string(a.body[:4])); err != nil {
			t.Fatalf("%s: the body %q does not start in base64", tc.name, a.body)
		}
	}

	// An error's status travels the same way.
	a := callWire(t, http1(t), h.base+lomsv1connect.LomsServiceListOrderProcedure, "application/grpc-web-text",
		[]byte(b64(enveloped(t, &lomsv1.ListOrderRequest{OrderId: 404}))), nil)
	a.wantGRPC(t, "application/grpc-web-text", connect.CodeNotFound)

	a = callWire(t, http1(t), h.base+lomsv1connect.LomsServiceStocksProcedure, "application/grpc-web-text", []byte("**not base64**"), nil)
	a.wantGRPC(t, "application/grpc-web-text", connect.CodeInvalidArgument)
}

// A server stream in text mode: each message is flushed as a padded part
// of its own, so the client has it while the stream goes on. The stream
// here is health Watch, which sends the current status and stays open.
func TestGRPCWebTextServerStream(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+healthpb.Health_Watch_FullMethodName,
		bytes.NewReader([]byte(base64.StdEncoding.EncodeToString(enveloped(t, &healthpb.HealthCheckRequest{})))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/grpc-web-text+proto")
	res, err := http1(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "application/grpc-web-text+proto" {
		t.Fatalf("HTTP %d %s", res.StatusCode, ct)
	}
	// The first part: the message's 5-byte prefix and 2 bytes of status
	// are 7 bytes, 12 base64 characters with padding.
	first := make(chan []byte, 1)
	go func() {
		part := make([]byte, 12)
		if _, err := io.ReadFull(res.Body, part); err != nil {
			first <- nil
			return
		}
		first <- part
	}()
	var part []byte
	select {
	case part = <-first:
	case <-time.After(time.Minute): // only keeps a missing flush from hanging the test
		t.Fatal("no first message while the stream is open: the text encoder did not flush it")
	}
	flags, payloads := frames(t, decodeText(t, part))
	var msg healthpb.HealthCheckResponse
	if len(payloads) != 1 || flags[0] != 0 || proto.Unmarshal(payloads[0], &msg) != nil || msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first part %q, want one message saying SERVING", part)
	}
}
