package sender_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/minizon/minizon/services/notifications/sender"
)

// Credentials a webhook URL may carry, as receivers commonly take them: in
// the userinfo or as a query parameter.
const (
	userinfoSecret = "UserinfoSecret-7d21"
	querySecret    = "QuerySecret-7d21"
)

// withCredentials returns base (http://host:port) with both credentials.
func withCredentials(base string) string {
	return strings.Replace(base, "http://", "http://hook:"+userinfoSecret+"@", 1) + "/notify?token=" + querySecret
}

// TestSecretsWebhookErrorsHideCredentials: a failed delivery's error is
// logged by the consumer on every retry, so it must not repeat the
// credentials in NOTIFY_WEBHOOK_URL: not when the receiver is down, not when
// it is too slow, not when it refuses.
func TestSecretsWebhookErrorsHideCredentials(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(refusing.Close)

	// Only the receiver that never answers runs into the timeout; the others
	// get a long one, so that a busy machine does not turn their failures
	// into timeouts (which would leave their own errors untested).
	for name, tc := range map[string]struct {
		base    string
		timeout time.Duration
	}{"down": {down, time.Minute}, "slow": {slow.URL, 200 * time.Millisecond}, "refusing": {refusing.URL, time.Minute}} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := sender.NewWebhook(sender.WebhookConfig{URL: withCredentials(tc.base), Timeout: tc.timeout, Attempts: 1}, nil)
			err := w.Send(t.Context(), event())
			if err == nil {
				t.Fatal("delivered")
			}
			for _, s := range []string{userinfoSecret, querySecret} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("the error holds a credential: %v", err)
				}
			}
		})
	}
}
