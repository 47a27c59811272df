package notifications_test

import (
	"strings"
	"testing"
	"time"

	"github.com/minizon/minizon/services/notifications"
)

// TestSecretsConfigErrorsHideWebhookCredentials: a NOTIFY_WEBHOOK_URL that
// is refused may still carry the receiver's credentials, in its userinfo or
// its query; the start-up error names the variable, not its value.
func TestSecretsConfigErrorsHideWebhookCredentials(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"ftp://hook:UserinfoSecret-5c80@hooks.example/notify?token=QuerySecret-5c80",
		"hooks.example/notify?token=QuerySecret-5c80",
		"http://hook:UserinfoSecret-5c80@/notify",
		"http://hook:UserinfoSecret-5c80@hooks.example:port/notify?token=QuerySecret-5c80",
	} {
		cfg := notifications.Config{
			DatabaseURL: "postgres://u:DbSecret-5c80@db/notifications", KafkaBrokers: []string{"kafka:9092"},
			WebhookURL: url, WebhookTimeout: time.Second, WebhookAttempts: 1, RetryBackoffMax: time.Second,
		}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "NOTIFY_WEBHOOK_URL") {
			t.Fatalf("error %v, want NOTIFY_WEBHOOK_URL refused", err)
		}
		for _, s := range []string{"UserinfoSecret-5c80", "QuerySecret-5c80", "DbSecret-5c80"} {
			if strings.Contains(err.Error(), s) {
				t.Errorf("the error holds a credential: %v", err)
			}
		}
	}
}
