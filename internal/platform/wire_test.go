package platform_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
)

// The helpers below speak the three protocols as raw HTTP, as clients this
// project did not write do (grpcurl, C-core, grpc-web's JavaScript, curl):
// what is checked is what goes over the wire, not what connect-go's own
// client makes of it.

// wireAnswer is a response as a raw client sees it.
type wireAnswer struct {
	status      int
	contentType string
	header      http.Header
	// trailers are gRPC's HTTP trailers, gRPC-Web's trailers frame, or
	// the headers of a trailers-only response.
	trailers http.Header
	code     connect.Code // 0: ok
	message  string
	messages [][]byte // the response messages, unenveloped
	body     []byte   // the body as received (for text mode: still base64)
}

// envelope frames payload as gRPC, gRPC-Web and Connect streams do.
func envelope(flags byte, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32([]byte{flags}, uint32(len(payload)))
	return append(b, payload...)
}

// enveloped is msg marshalled and framed.
func enveloped(t *testing.T, msg proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return envelope(0, b)
}

// frames splits a body into envelopes.
func frames(t *testing.T, b []byte) (flags []byte, payloads [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated envelope prefix %x", b)
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if len(b) < 5+n {
			t.Fatalf("envelope of %d bytes, %d left", n, len(b)-5)
		}
		flags = append(flags, b[0])
		payloads = append(payloads, b[5:5+n])
		b = b[5+n:]
	}
	return flags, payloads
}

// decodeText decodes a gRPC-Web text body: base64 in one or more padded
// parts.
func decodeText(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []byte
	for len(b) > 0 {
		end := len(b)
		if i := bytes.IndexByte(b, '='); i >= 0 {
			end = min((i/4+1)*4, len(b))
		}
		var err error
		if out, err = base64.StdEncoding.AppendDecode(out, b[:end]); err != nil {
			t.Fatalf("text body %q is not base64 in padded parts: %v", b, err)
		}
		b = b[end:]
	}
	return out
}

// callWire posts body to url and reads the answer by its content type.
func callWire(t *testing.T, client *http.Client, url, contentType string, body []byte, header http.Header) wireAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	if strings.HasPrefix(contentType, "application/grpc") && !strings.HasPrefix(contentType, "application/grpc-web") {
		req.Header.Set("Te", "trailers")
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read the body: %v", err)
	}
	return readAnswer(t, res, raw)
}

// readAnswer interprets a response whose body has been read.
func readAnswer(t *testing.T, res *http.Response, raw []byte) wireAnswer {
	t.Helper()
	a := wireAnswer{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), header: res.Header, body: raw}
	ct := a.contentType
	switch {
	case strings.HasPrefix(ct, "application/grpc-web"):
		b := raw
		if strings.HasPrefix(ct, "application/grpc-web-text") {
			b = decodeText(t, raw)
		}
		flags, payloads := frames(t, b)
		a.trailers = res.Header
		for i, p := range payloads {
			if flags[i]&0x80 == 0 {
				a.messages = append(a.messages, p)
				continue
			}
			a.trailers = parseTrailersFrame(t, p)
		}
		a.readStatus(t)
	case strings.HasPrefix(ct, "application/grpc"):
		_, a.messages = frames(t, raw)
		a.trailers = res.Trailer
		if a.trailers.Get("Grpc-Status") == "" {
			a.trailers = res.Header // trailers-only
		}
		a.readStatus(t)
	case res.StatusCode == http.StatusOK:
		a.messages = [][]byte{raw}
	case !strings.HasPrefix(ct, "application/json"):
		// Not an RPC's answer at all (net/http's 404 page, say).
		a.code = connect.CodeUnknown
	default:
		var e struct{ Code, Message string }
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("HTTP %d %s: %q is not a Connect error", res.StatusCode, ct, raw)
		}
		if err := a.code.UnmarshalText([]byte(e.Code)); err != nil {
			t.Fatalf("Connect error code %q: %v", e.Code, err)
		}
		a.message = e.Message
	}
	return a
}

// parseTrailersFrame reads gRPC-Web's trailers frame: HTTP/1 header lines.
func parseTrailersFrame(t *testing.T, p []byte) http.Header {
	t.Helper()
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			t.Fatalf("trailers frame line %q", sc.Text())
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

func (a *wireAnswer) readStatus(t *testing.T) {
	t.Helper()
	s := a.trailers.Get("Grpc-Status")
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("grpc-status %q (HTTP %d %s, trailers %v)", s, a.status, a.contentType, a.trailers)
	}
	a.code = connect.Code(n)
	if a.message, err = url.PathUnescape(a.trailers.Get("Grpc-Message")); err != nil {
		t.Fatalf("grpc-message %q: %v", a.trailers.Get("Grpc-Message"), err)
	}
}

// wantGRPC fails unless a is an answer of code over a gRPC protocol: HTTP
// 200, the request's content type and the status in grpc-status.
func (a wireAnswer) wantGRPC(t *testing.T, contentType string, code connect.Code) {
	t.Helper()
	if a.status != http.StatusOK || a.contentType != contentType || a.code != code {
		t.Fatalf("HTTP %d %s code %v %q, want HTTP 200 %s code %v", a.status, a.contentType, a.code, a.message, contentType, code)
	}
}

// wireProtocol is one way of sending a unary call as raw HTTP.
type wireProtocol struct {
	name        string
	client      func(*testing.T) *http.Client
	contentType string
	// timeout is the header carrying a deadline of ms milliseconds.
	timeout func(ms int) (string, string)
	// encode frames a marshalled message as a request body.
	encode func(b []byte) []byte
}

func grpcTimeout(ms int) (string, string) { return "Grpc-Timeout", strconv.Itoa(ms) + "m" }

// wireProtocols are the three protocols with a binary codec, as raw
// clients send them, and gRPC-Web's text mode.
func wireProtocols() []wireProtocol {
	framed := func(b []byte) []byte { return envelope(0, b) }
	return []wireProtocol{
		{"connect", http1, "application/proto", func(ms int) (string, string) { return "Connect-Timeout-Ms", strconv.Itoa(ms) },
			func(b []byte) []byte { return b }},
		{"grpc", h2c, "application/grpc", grpcTimeout, framed},
		{"grpc-web", http1, "application/grpc-web+proto", grpcTimeout, framed},
		{"grpc-web-text", http1, "application/grpc-web-text", grpcTimeout,
			func(b []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(envelope(0, b))) }},
	}
}

// call sends msg to the procedure at url in this protocol.
func (p wireProtocol) call(t *testing.T, url string, msg proto.Message, header http.Header) wireAnswer {
	t.Helper()
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return callWire(t, p.client(t), url, p.contentType, p.encode(b), header)
}
