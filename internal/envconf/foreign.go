package envconf

import "strings"

// ownPrefixes start the names of the variables that configure miniZON.
var ownPrefixes = []string{"MINIZON_", "LOMS_", "CHECKOUT_", "PRODUCT_", "NOTIFY_", "KAFKA_", "OTEL_"}

// Foreign returns environ (as os.Environ gives it) without the variables
// that configure miniZON, so that a service a harness starts runs on its
// defaults plus what the harness adds, whatever the harness's shell has
// set; GOGC, PATH and the like pass through.
func Foreign(environ []string) []string {
	var out []string
next:
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" {
			continue
		}
		for _, p := range ownPrefixes {
			if strings.HasPrefix(name, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
