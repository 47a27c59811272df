package platform

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// gRPC-Web's text mode (application/grpc-web-text[+codec]) is gRPC-Web with
// the body base64-encoded both ways, the default of Google's grpc-web
// JavaScript client. connect-go serves only the binary mode, so grpcWebText
// translates in front of it: the request body is decoded, the response body
// (messages and the trailers frame) encoded, and the content types swapped.
const (
	grpcWebBinary = "application/grpc-web"
	grpcWebText   = "application/grpc-web-text"
)

// newGRPCWebText wraps next with the text mode's translation.
func newGRPCWebText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		binary, ok := textToBinary(r.Header.Get("Content-Type"))
		if !ok || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		r.Header.Set("Content-Type", binary)
		// The decoded body is shorter: its length is not known up front.
		r.Header.Del("Content-Length")
		r.ContentLength = -1
		r.Body = &base64Body{src: r.Body}
		tw := &textResponse{ResponseWriter: w}
		next.ServeHTTP(tw, r)
		tw.finish()
	})
}

// textToBinary returns the binary mode's content type for a text mode's.
func textToBinary(contentType string) (string, bool) {
	mt := mediaType(contentType)
	if mt != grpcWebText && !strings.HasPrefix(mt, grpcWebText+"+") {
		return "", false
	}
	return grpcWebBinary + strings.TrimPrefix(mt, grpcWebText), true
}

// base64Body decodes a text-mode request body. A client may send it in
// several parts, each padded (the protocol allows padding wherever a
// sender flushed), so each padded quantum ends a part decoded on its own.
type base64Body struct {
	src  io.ReadCloser
	in   []byte // received, not yet a whole quantum or not yet decoded
	out  []byte // decoded, not yet read
	rerr error  // src's error, returned once in and out are used up
}

func (b *base64Body) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.rerr != nil {
			if b.rerr == io.EOF && len(b.in) > 0 {
				// A last part without its padding: decode what it holds.
				out, err := base64.RawStdEncoding.AppendDecode(nil, b.in)
				b.in = nil
				if err != nil {
					return 0, badBase64(err)
				}
				b.out = out
				continue
			}
			return 0, b.rerr
		}
		var buf [4096]byte
		n, err := b.src.Read(buf[:])
		b.in = append(b.in, buf[:n]...)
		b.rerr = err
		if err := b.decode(); err != nil {
			b.rerr = err
		}
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// decode decodes the whole quanta of in, each padded one with those before
// it as a part of its own.
func (b *base64Body) decode() error {
	whole := len(b.in) / 4 * 4
	chunk := b.in[:whole]
	for len(chunk) > 0 {
		end := len(chunk)
		if i := bytes.IndexByte(chunk, '='); i >= 0 {
			end = (i/4 + 1) * 4
		}
		var err error
		if b.out, err = base64.StdEncoding.AppendDecode(b.out, chunk[:end]); err != nil {
			return badBase64(err)
		}
		chunk = chunk[end:]
	}
	b.in = append(b.in[:0], b.in[whole:]...)
	return nil
}

func badBase64(err error) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("grpc-web-text: the body is not base64: %w", err))
}

func (b *base64Body) Close() error { return b.src.Close() }

// textResponse base64-encodes the response body. Each flush ends a padded
// part, so every message of a server stream reaches the client as it is
// sent, not when the next one fills the last quantum.
type textResponse struct {
	http.ResponseWriter
	enc           io.WriteCloser // the current part's encoder; nil between parts
	headerWritten bool
}

// text swaps the content type before the headers go out.
func (w *textResponse) text() {
	if w.headerWritten {
		return
	}
	w.headerWritten = true
	h := w.Header()
	if ct := h.Get("Content-Type"); ct == grpcWebBinary || strings.HasPrefix(ct, grpcWebBinary+"+") {
		h.Set("Content-Type", grpcWebText+strings.TrimPrefix(ct, grpcWebBinary))
	}
	h.Del("Content-Length")
}

func (w *textResponse) WriteHeader(code int) {
	w.text()
	w.ResponseWriter.WriteHeader(code)
}

func (w *textResponse) Write(p []byte) (int, error) {
	w.text()
	if w.enc == nil {
		w.enc = base64.NewEncoder(base64.StdEncoding, w.ResponseWriter)
	}
	return w.enc.Write(p)
}

// endPart writes the current part's last bytes, padded.
func (w *textResponse) endPart() {
	if w.enc != nil {
		_ = w.enc.Close()
		w.enc = nil
	}
}

func (w *textResponse) Flush() {
	w.text()
	w.endPart()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// finish ends the body once the handler returned.
func (w *textResponse) finish() {
	w.text()
	w.endPart()
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *textResponse) Unwrap() http.ResponseWriter { return w.ResponseWriter }
