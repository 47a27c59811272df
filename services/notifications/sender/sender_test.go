package sender_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/minizon/minizon/services/notifications/notification"
	"github.com/minizon/minizon/services/notifications/sender"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// event is order 42's move to awaiting_payment.
func event() notification.Notification {
	return notification.Notification{
		EventID:    uuid.MustParse("6f1c2a9e-3b7d-4c55-9e0a-0d4b8f2e7a13"),
		OrderID:    42,
		User:       7,
		Status:     notification.StatusAwaitingPayment,
		Previous:   notification.StatusNew,
		OccurredAt: time.Date(2025, 3, 14, 15, 9, 26, 535000000, time.FixedZone("MSK", 3*60*60)),
	}
}

// request is what the receiver saw of one POST.
type request struct {
	method string
	header http.Header
	body   []byte
}

// receiver is a fake webhook endpoint: it records every request and answers
// the i-th one (from 0) with answer(i, w, r).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []request
	answer func(i int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, answer func(i int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read request body: %v", err)
		}
		rc.mu.Lock()
		i := len(rc.seen)
		rc.seen = append(rc.seen, request{method: r.Method, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		rc.answer(i, w, r)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.seen...)
}

// webhook is a sender posting to rc through the test server's client, with
// a backoff small enough to keep retries quick.
func (rc *receiver) webhook(attempts int, timeout time.Duration) *sender.Webhook {
	return sender.NewWebhook(sender.WebhookConfig{
		URL: rc.srv.URL, Timeout: timeout, Attempts: attempts, Backoff: time.Millisecond,
	}, rc.srv.Client())
}

// status answers every request with code and body.
func status(code int, body string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func TestWebhookPostsTheNotification(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(http.StatusOK, ""))
	n := event()
	if err := rc.webhook(3, 5*time.Second).Send(t.Context(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	req := reqs[0]
	if req.method != http.MethodPost {
		t.Errorf("method %s, want POST", req.method)
	}
	if got := req.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	if got := req.header.Get("Idempotency-Key"); got != n.EventID.String() {
		t.Errorf("Idempotency-Key %q, want the event id %s", got, n.EventID)
	}
	var p sender.Payload
	dec := json.NewDecoder(bytes.NewReader(req.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode body %s: %v", req.body, err)
	}
	want := sender.Payload{
		EventID: n.EventID.String(), OrderID: 42, User: 7, Status: "awaiting_payment",
		PreviousStatus: "new", OccurredAt: n.OccurredAt, Text: "Order 42 is awaiting payment",
	}
	if !p.OccurredAt.Equal(want.OccurredAt) {
		t.Errorf("occurred_at %v, want %v", p.OccurredAt, want.OccurredAt)
	}
	p.OccurredAt = want.OccurredAt
	if p != want {
		t.Errorf("payload\n got %+v\nwant %+v", p, want)
	}
}

func TestWebhookOmitsPreviousStatusOfNewOrder(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(http.StatusNoContent, ""))
	n := event()
	n.Status, n.Previous = notification.StatusNew, ""
	if err := rc.webhook(1, 5*time.Second).Send(t.Context(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	var body map[string]any
	if err := json.Unmarshal(rc.requests()[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if v, ok := body["previous_status"]; ok {
		t.Errorf("previous_status = %v, want it left out", v)
	}
	if body["text"] != "Order 42 has been placed" {
		t.Errorf("text %v", body["text"])
	}
}

func TestWebhookRetriesTransientAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		code     int
		failures int
	}{
		{"500 once", http.StatusInternalServerError, 1},
		{"503 twice", http.StatusServiceUnavailable, 2},
		{"429 twice", http.StatusTooManyRequests, 2},
		{"408 once", http.StatusRequestTimeout, 1},
		// What an operator fixes (a token, a moved URL) is waited for, not
		// taken as the receiver refusing the notification.
		{"401 once", http.StatusUnauthorized, 1},
		{"404 twice", http.StatusNotFound, 2},
		{"redirect once", http.StatusFound, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, func(i int, w http.ResponseWriter, _ *http.Request) {
				if i < tc.failures {
					if tc.code == http.StatusFound {
						w.Header().Set("Location", "/moved")
					}
					w.WriteHeader(tc.code)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			n := event()
			if err := rc.webhook(tc.failures+1, 5*time.Second).Send(t.Context(), n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := rc.requests()
			if len(reqs) != tc.failures+1 {
				t.Fatalf("%d requests, want %d", len(reqs), tc.failures+1)
			}
			for i, r := range reqs {
				if got := r.header.Get("Idempotency-Key"); got != n.EventID.String() {
					t.Errorf("request %d: Idempotency-Key %q, want %s", i, got, n.EventID)
				}
				if !bytes.Equal(r.body, reqs[0].body) {
					t.Errorf("request %d: body %s differs from the first %s", i, r.body, reqs[0].body)
				}
			}
		})
	}
}

func TestWebhookRejectionIsFinal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code       int
		body, want string
	}{
		{http.StatusBadRequest, "unknown user 7\n", "400 Bad Request: unknown user 7"},
		{http.StatusConflict, `{"error":"duplicate"}`, `409 Conflict: {"error":"duplicate"}`},
		{http.StatusUnprocessableEntity, "text too long", "422 Unprocessable Entity: text too long"},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, status(tc.code, tc.body))
			err := rc.webhook(5, 5*time.Second).Send(t.Context(), event())
			if !errors.Is(err, notification.ErrRejected) {
				t.Fatalf("Send: %v, want an error wrapping ErrRejected", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if n := len(rc.requests()); n != 1 {
				t.Errorf("%d requests, want 1: a rejection is not retried", n)
			}
		})
	}
}

// TestWebhookRejectionQuotesSnippet checks that a long answer is quoted in
// part, and as text that can be logged and recorded: the error becomes the
// notification's recorded failure reason.
func TestWebhookRejectionQuotesSnippet(t *testing.T) {
	t.Parallel()
	// 2-byte characters after one ASCII byte: any cut at an even length
	// splits a character.
	body := "x" + strings.Repeat("я", 1000)
	rc := newReceiver(t, status(http.StatusBadRequest, body))
	err := rc.webhook(3, 5*time.Second).Send(t.Context(), event())
	if !errors.Is(err, notification.ErrRejected) {
		t.Fatalf("Send: %v, want an error wrapping ErrRejected", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "400 Bad Request: xяя") {
		t.Errorf("error %q does not quote the answer", msg)
	}
	if len(msg) >= len(body) {
		t.Errorf("error quotes all %d bytes of the answer", len(body))
	}
	if !utf8.ValidString(msg) {
		t.Errorf("error %q is not valid UTF-8", msg)
	}
}

func TestWebhookGivesUpAfterAttempts(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(http.StatusInternalServerError, "database is down"))
	err := rc.webhook(3, 5*time.Second).Send(t.Context(), event())
	if err == nil {
		t.Fatal("Send succeeded against a receiver that always fails")
	}
	if errors.Is(err, notification.ErrRejected) {
		t.Errorf("Send: %v wraps ErrRejected; a 500 is worth retrying later", err)
	}
	if !strings.Contains(err.Error(), "500 Internal Server Error: database is down") {
		t.Errorf("error %q does not say what the receiver answered", err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestWebhookTimesOutSlowReceiver(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		// Answer only once the sender has given up on this attempt.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	err := rc.webhook(3, 50*time.Millisecond).Send(t.Context(), event())
	if err == nil {
		t.Fatal("Send succeeded against a receiver that never answers")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send: %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if errors.Is(err, notification.ErrRejected) {
		t.Errorf("Send: %v wraps ErrRejected; a timeout is worth retrying later", err)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

// closeHook calls after once the body it wraps is closed.
type closeHook struct {
	io.ReadCloser
	after func()
}

func (c closeHook) Close() error {
	err := c.ReadCloser.Close()
	c.after()
	return err
}

// afterResponse is a transport that calls after once each response is done
// with, i.e. after the attempt is over and before any backoff begins.
type afterResponse struct {
	next  http.RoundTripper
	after func()
}

func (a afterResponse) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := a.next.RoundTrip(r)
	if err == nil {
		res.Body = closeHook{ReadCloser: res.Body, after: a.after}
	}
	return res, err
}

func TestWebhookBackoffHonoursCancel(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, status(http.StatusServiceUnavailable, "busy"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel once the first answer is read: the sender is then in its
	// backoff, which is an hour long, so the test hangs if it is not cut.
	client := &http.Client{Transport: afterResponse{next: rc.srv.Client().Transport, after: cancel}}
	w := sender.NewWebhook(sender.WebhookConfig{
		URL: rc.srv.URL, Timeout: 5 * time.Second, Attempts: 5, Backoff: time.Hour,
	}, client)
	err := w.Send(ctx, event())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send: %v, want an error wrapping context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "503 Service Unavailable: busy") {
		t.Errorf("error %q does not say what the last attempt got", err)
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestWebhookPassesTraceOn(t *testing.T) {
	t.Parallel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	for _, tc := range []struct {
		name string
		ctx  func(context.Context) context.Context
		want string
	}{
		{"span", func(ctx context.Context) context.Context { return trace.ContextWithSpanContext(ctx, sc) },
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"no span", func(ctx context.Context) context.Context { return ctx }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, status(http.StatusOK, ""))
			if err := rc.webhook(1, 5*time.Second).Send(tc.ctx(t.Context()), event()); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got := rc.requests()[0].header.Get("traceparent"); got != tc.want {
				t.Errorf("traceparent %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLogWritesOneRecord(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	n := event()
	if err := sender.NewLog(slog.New(slog.NewJSONHandler(&buf, nil))).Send(t.Context(), n); err != nil {
		t.Fatalf("Send: %v", err)
	}
	dec := json.NewDecoder(&buf)
	var rec struct {
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		OrderID int64  `json:"order_id"`
		User    int64  `json:"user"`
		Status  string `json:"status"`
		EventID string `json:"event_id"`
		Text    string `json:"text"`
	}
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("decode log record: %v", err)
	}
	if dec.More() {
		t.Errorf("more than one record: %s", buf.String())
	}
	if rec.Level != "INFO" || rec.Msg != "notification sent" || rec.OrderID != 42 || rec.User != 7 ||
		rec.Status != "awaiting_payment" || rec.EventID != n.EventID.String() || rec.Text != "Order 42 is awaiting payment" {
		t.Errorf("log record %+v", rec)
	}
}
