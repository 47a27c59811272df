// Package notifytest runs Notifications for tests: a webhook standing in
// for the user-facing messaging service, and an instance consuming in the
// background until the test ends. Notifications' own tests and systest
// share it.
package notifytest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/notifications/sender"
)

// Webhook records every notification POSTed to it and answers what fail
// says (0 for 200).
type Webhook struct {
	URL  string
	mu   sync.Mutex
	got  []sender.Payload
	fail func(sender.Payload) int
}

// NewWebhook serves a webhook until the test ends.
func NewWebhook(t testing.TB) *Webhook {
	t.Helper()
	w := &Webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var p sender.Payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		fail := w.fail
		w.mu.Unlock()
		if fail != nil {
			if code := fail(p); code != 0 {
				http.Error(rw, "not now", code)
				return
			}
		}
		w.mu.Lock()
		w.got = append(w.got, p)
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// SetFail makes the webhook answer f's status for a notification (0: 200).
func (w *Webhook) SetFail(f func(sender.Payload) int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fail = f
}

// Received are the notifications accepted so far, in arrival order.
func (w *Webhook) Received() []sender.Payload {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]sender.Payload(nil), w.got...)
}

// Running is a Notifications instance consuming in the background.
type Running struct {
	App *notifications.App
	// Stop stops it and waits; it runs at the test's end anyway.
	Stop func()
}

// Start runs Notifications on dbURL, consuming brokers and posting to
// webhookURL, until Stop or the test's end.
func Start(t testing.TB, dbURL string, brokers []string, webhookURL string, tel *telemetry.Telemetry) *Running {
	t.Helper()
	app, err := notifications.Open(t.Context(), notifications.Config{
		DatabaseURL: dbURL, KafkaBrokers: brokers, WebhookURL: webhookURL,
		WebhookTimeout: 5 * time.Second, WebhookAttempts: 2, RetryBackoffMax: 200 * time.Millisecond,
	}, platform.Deps{Log: slog.New(slog.DiscardHandler), Tel: tel})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Workers()[0](ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
			app.Close(context.Background())
		})
	}
	t.Cleanup(stop)
	return &Running{App: app, Stop: stop}
}
