// Package sender delivers notifications to users: as structured log lines,
// or to an HTTP webhook that does the actual messaging.
package sender

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications/notification"
)

// Log "delivers" a notification as one log line, the default when no
// webhook is configured.
type Log struct {
	log *slog.Logger
}

// NewLog returns a sender writing to log.
func NewLog(log *slog.Logger) *Log { return &Log{log: log} }

// Send writes msg="notification sent" with the order, user, status and
// event id.
func (l *Log) Send(ctx context.Context, n notification.Notification) error {
	l.log.InfoContext(ctx, "notification sent",
		"order_id", n.OrderID, "user", n.User, "status", string(n.Status), "event_id", n.EventID.String(),
		"text", n.Text())
	return nil
}

// WebhookConfig says where and how patiently to post.
type WebhookConfig struct {
	// URL receives a JSON POST per notification.
	URL string
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Attempts is how many times one Send tries before giving up.
	Attempts int
	// Backoff is the wait after the first failed attempt; it doubles
	// after each further one, with jitter.
	Backoff time.Duration
}

// Webhook posts notifications to an HTTP endpoint.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
}

// NewWebhook returns a webhook sender posting with (a copy of) client; nil
// means a default one.
func NewWebhook(cfg WebhookConfig, client *http.Client) *Webhook {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}}
	}
	// A redirect would turn the POST into a body-less GET whose 200 would
	// count as delivered: take it as a failure instead.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &c
	if cfg.Attempts < 1 {
		cfg.Attempts = 1
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	return &Webhook{cfg: cfg, client: client}
}

// maxBackoff caps the wait between attempts.
const maxBackoff = 5 * time.Second

// Payload is the JSON body the webhook receives.
type Payload struct {
	EventID        string    `json:"event_id"`
	OrderID        int64     `json:"order_id"`
	User           int64     `json:"user"`
	Status         string    `json:"status"`
	PreviousStatus string    `json:"previous_status,omitempty"`
	OccurredAt     time.Time `json:"occurred_at"`
	Text           string    `json:"text"`
}

// Send posts n, retrying network errors, timeouts and any answer but 2xx
// with backoff, except 400, 409, 413 and 422: the receiver refused the
// notification itself, and the error wraps notification.ErrRejected. Every attempt carries the event id in the
// Idempotency-Key header, so that the receiver can drop a repeat.
func (w *Webhook) Send(ctx context.Context, n notification.Notification) error {
	body, err := json.Marshal(Payload{
		EventID: n.EventID.String(), OrderID: n.OrderID, User: n.User, Status: string(n.Status),
		PreviousStatus: string(n.Previous), OccurredAt: n.OccurredAt.UTC(), Text: n.Text(),
	})
	if err != nil {
		return fmt.Errorf("encode webhook payload: %w", err)
	}
	wait := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err = w.post(ctx, n, body)
		if err == nil || errors.Is(err, notification.ErrRejected) || attempt == w.cfg.Attempts {
			return err
		}
		// Full jitter spreads the retries of many consumers.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, maxBackoff)
	}
}

func (w *Webhook) post(ctx context.Context, n notification.Notification, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: webhook request: %w", notification.ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", n.EventID.String())
	req.Header.Set("User-Agent", "minizon-notifications")
	telemetry.Propagator().Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := w.client.Do(req)
	if err != nil {
		// The client's *url.Error quotes the URL, and net/http masks only a
		// userinfo password: a token in the query would reach the logs.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("post to webhook: %w", err)
	}
	defer res.Body.Close()
	// Read a little of the answer for the error, and drain the rest so the
	// connection is reused.
	body256, _ := io.ReadAll(io.LimitReader(res.Body, 256))
	// The answer may be in any encoding and is cut anywhere; the reason is
	// recorded as text.
	snippet := strings.TrimSpace(strings.ToValidUTF8(strings.ReplaceAll(string(body256), "\x00", ""), "?"))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	switch code := res.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusBadRequest || code == http.StatusConflict || code == http.StatusRequestEntityTooLarge ||
		code == http.StatusUnprocessableEntity:
		// The receiver refused this notification itself.
		return fmt.Errorf("%w: webhook answered %s: %s", notification.ErrRejected, res.Status, snippet)
	default:
		// Timeouts, overload and server errors pass; so does what an
		// operator can fix (401, 403, 404, a redirect to a moved URL), and
		// the notifications wait for it rather than being dropped.
		return fmt.Errorf("webhook answered %s: %s", res.Status, snippet)
	}
}
