package envconf_test

import (
	"strings"
	"testing"

	"github.com/minizon/minizon/internal/envconf"
)

// TestSecretsStringAndListNeverQuoteValues: the variables that hold secrets
// (DATABASE_URL, PRODUCT_TOKEN, PRODUCT_TOKENS, NOTIFY_WEBHOOK_URL) are read
// with String and List, which record no error whatever the value, so the
// collected start-up error can never quote one. The typed readers do quote
// a bad value: they are for settings that are not secret.
func TestSecretsStringAndListNeverQuoteValues(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-6a0d"
	values := []string{
		"postgres://u:" + secret + "@db:notaport/x",
		"host=db password=" + secret,
		" , " + secret + " ,, ",
		"\x00" + secret + "\n",
		"%zz" + secret,
	}
	for _, v := range values {
		env := envconf.FromMap(map[string]string{"DATABASE_URL": v, "PRODUCT_TOKENS": v})
		_ = env.String("DATABASE_URL", "")
		_ = env.List("PRODUCT_TOKENS", nil)
		if err := env.Err(); err != nil {
			t.Fatalf("String/List recorded an error: %v", err)
		}
	}
	// A typed reader quotes what it refuses, which is why no secret is read
	// with one.
	env := envconf.FromMap(map[string]string{"X_TIMEOUT": secret})
	env.Duration("X_TIMEOUT", 0)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "X_TIMEOUT") {
		t.Fatalf("Duration: %v, want X_TIMEOUT refused", err)
	}
}
