// Package envconf reads configuration from environment variables and collects
// every invalid value, so that start-up can report all of them at once.
package envconf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reader reads typed values from an environment. The zero value is not
// usable; create one with New or FromMap.
type Reader struct {
	lookup func(string) (string, bool)
	errs   []error
	// names are the variables asked for, in order, for checks that a
	// deployment sets only variables that something reads.
	names []string
}

// New reads the process environment.
func New() *Reader { return &Reader{lookup: os.LookupEnv} }

// FromMap reads the given variables only, for tests.
func FromMap(vars map[string]string) *Reader {
	return &Reader{lookup: func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}}
}

func (r *Reader) get(name string) (string, bool) {
	if !slices.Contains(r.names, name) {
		r.names = append(r.names, name)
	}
	v, ok := r.lookup(name)
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	return v, v != ""
}

func (r *Reader) fail(name, v, want string) {
	r.errs = append(r.errs, fmt.Errorf("%s=%q: want %s", name, v, want))
}

// String returns the variable, or def when it is unset or empty.
func (r *Reader) String(name, def string) string {
	if v, ok := r.get(name); ok {
		return v
	}
	return def
}

// List returns the comma-separated variable without empty elements, or def.
func (r *Reader) List(name string, def []string) []string {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Duration returns the variable as a Go duration ("10m", "1.5s"); it must
// not be negative.
func (r *Reader) Duration(name string, def time.Duration) time.Duration {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.fail(name, v, "a non-negative Go duration such as 10m or 500ms")
		return def
	}
	return d
}

// Int returns the variable as an integer within [lo, hi].
func (r *Reader) Int(name string, def, lo, hi int64) int64 {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		r.fail(name, v, fmt.Sprintf("an integer from %d to %d", lo, hi))
		return def
	}
	return n
}

// Bool returns the variable as a boolean (1/0, true/false, yes/no).
func (r *Reader) Bool(name string, def bool) bool {
	v, ok := r.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	r.fail(name, v, "true or false")
	return def
}

// Parse hands the variable, when set, to parse; want describes a valid
// value for the error message.
func (r *Reader) Parse(name, want string, parse func(string) error) {
	if v, ok := r.get(name); ok {
		if err := parse(v); err != nil {
			r.fail(name, v, want)
		}
	}
}

// Names returns every variable read so far, in the order first read.
func (r *Reader) Names() []string { return slices.Clone(r.names) }

// Err reports every invalid variable read so far, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }
