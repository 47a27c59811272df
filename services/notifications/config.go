package notifications

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/minizon/minizon/internal/envconf"
)

// Config is Notifications' configuration.
type Config struct {
	// DatabaseURL is Notifications' own database (DATABASE_URL), where
	// every notification is recorded by event id.
	DatabaseURL string
	// KafkaBrokers are the seed brokers (KAFKA_BROKERS, comma-separated).
	KafkaBrokers []string
	// WebhookURL, when set, receives every notification as a JSON POST
	// (NOTIFY_WEBHOOK_URL); unset, notifications are log lines.
	WebhookURL string
	// WebhookTimeout bounds one webhook attempt (NOTIFY_WEBHOOK_TIMEOUT).
	WebhookTimeout time.Duration
	// WebhookAttempts is how often one delivery is tried before the
	// record is retried as a whole (NOTIFY_WEBHOOK_ATTEMPTS).
	WebhookAttempts int
	// RetryBackoffMax caps the wait between retries of a record whose
	// database write or delivery failed (NOTIFY_RETRY_BACKOFF_MAX).
	RetryBackoffMax time.Duration
	// SessionTimeout is how long the group waits for a replica that
	// stopped heartbeating before its partitions go to the others
	// (KAFKA_SESSION_TIMEOUT): the longest a killed replica's partitions
	// stand still. 0 keeps franz-go's default, which is Kafka's.
	SessionTimeout time.Duration
}

// Defaults used when a variable is unset.
const (
	DefaultWebhookTimeout  = 5 * time.Second
	DefaultWebhookAttempts = 3
	DefaultRetryBackoffMax = 30 * time.Second
	// DefaultSessionTimeout is Kafka's own default.
	DefaultSessionTimeout = 45 * time.Second
)

// ReadConfig reads Notifications' variables; errors are collected in env.
func ReadConfig(env *envconf.Reader) Config {
	return Config{
		DatabaseURL:     env.String("DATABASE_URL", ""),
		KafkaBrokers:    env.List("KAFKA_BROKERS", nil),
		WebhookURL:      env.String("NOTIFY_WEBHOOK_URL", ""),
		WebhookTimeout:  env.Duration("NOTIFY_WEBHOOK_TIMEOUT", DefaultWebhookTimeout),
		WebhookAttempts: int(env.Int("NOTIFY_WEBHOOK_ATTEMPTS", DefaultWebhookAttempts, 1, 10)),
		RetryBackoffMax: env.Duration("NOTIFY_RETRY_BACKOFF_MAX", DefaultRetryBackoffMax),
		SessionTimeout:  env.Duration("KAFKA_SESSION_TIMEOUT", DefaultSessionTimeout),
	}
}

// Validate reports missing or inconsistent settings.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS is required"))
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// Not quoted: the URL may hold the receiver's credentials.
			errs = append(errs, errors.New("NOTIFY_WEBHOOK_URL: want an http:// or https:// URL with a host"))
		}
	}
	if c.WebhookTimeout <= 0 || c.RetryBackoffMax <= 0 {
		errs = append(errs, errors.New("NOTIFY_WEBHOOK_TIMEOUT and NOTIFY_RETRY_BACKOFF_MAX must be positive"))
	}
	// Brokers refuse sessions outside their bounds: Kafka's
	// group.min/max.session.timeout.ms are 6s and 30m by default,
	// Redpanda's group_max_session_timeout_ms 5m.
	if c.SessionTimeout != 0 && (c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("KAFKA_SESSION_TIMEOUT=%s: want between 6s and 5m", c.SessionTimeout))
	}
	return errors.Join(errs...)
}
