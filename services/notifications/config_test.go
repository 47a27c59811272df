package notifications_test

import (
	"strings"
	"testing"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/services/notifications"
)

// KAFKA_SESSION_TIMEOUT must be one every broker accepts: Kafka's 6s
// minimum, Redpanda's 5m maximum.
func TestSessionTimeoutWithinWhatBrokersAccept(t *testing.T) {
	t.Parallel()
	base := map[string]string{"DATABASE_URL": "postgres://db/notifications", "KAFKA_BROKERS": "kafka:9092"}
	for v, ok := range map[string]bool{"": true, "6s": true, "45s": true, "5m": true, "5s": false, "6m": false} {
		vars := map[string]string{}
		for k, x := range base {
			vars[k] = x
		}
		if v != "" {
			vars["KAFKA_SESSION_TIMEOUT"] = v
		}
		env := envconf.FromMap(vars)
		cfg := notifications.ReadConfig(env)
		err := cfg.Validate()
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "KAFKA_SESSION_TIMEOUT")) {
			t.Errorf("KAFKA_SESSION_TIMEOUT=%q: %v, want ok=%v", v, err, ok)
		}
		if v == "" && cfg.SessionTimeout != notifications.DefaultSessionTimeout {
			t.Errorf("default %v, want %v", cfg.SessionTimeout, notifications.DefaultSessionTimeout)
		}
	}
}
