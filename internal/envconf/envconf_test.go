package envconf_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minizon/minizon/internal/envconf"
)

// env returns a reader with X set to v, or with nothing set when v is nil.
func env(v *string) *envconf.Reader {
	if v == nil {
		return envconf.FromMap(nil)
	}
	return envconf.FromMap(map[string]string{"X": *v})
}

func set(v string) *string { return &v }

// checkErr fails unless r reported exactly an error naming X (wantErr) or
// no error at all.
func checkErr(t *testing.T, r *envconf.Reader, wantErr bool) {
	t.Helper()
	err := r.Err()
	switch {
	case wantErr && err == nil:
		t.Fatal("Err() = nil, want an error for X")
	case wantErr && !strings.HasPrefix(err.Error(), "X="):
		t.Fatalf("Err() = %q, want it to name X", err)
	case !wantErr && err != nil:
		t.Fatalf("Err() = %v, want nil", err)
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		v    *string
		want string
	}{
		{"unset", nil, "def"},
		{"empty", set(""), "def"},
		{"blank", set("  \t"), "def"},
		{"set", set("127.0.0.1:9000"), "127.0.0.1:9000"},
		{"trimmed", set("  a b  "), "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			if got := r.String("X", "def"); got != tc.want {
				t.Fatalf("String = %q, want %q", got, tc.want)
			}
			checkErr(t, r, false)
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	def := []string{"http://default.example"}
	for _, tc := range []struct {
		name string
		v    *string
		want []string
	}{
		{"unset", nil, def},
		{"empty", set(""), def},
		{"one", set("https://shop.example"), []string{"https://shop.example"}},
		{"several, spaces and empty elements dropped", set(" a, b ,,c, "), []string{"a", "b", "c"}},
		// A set variable of separators only is an explicit empty list.
		{"separators only", set(" , ,"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			if got := r.List("X", def); !slices.Equal(got, tc.want) {
				t.Fatalf("List = %q, want %q", got, tc.want)
			}
			checkErr(t, r, false)
		})
	}
}

func TestDuration(t *testing.T) {
	t.Parallel()
	const def = 15 * time.Second
	for _, tc := range []struct {
		name    string
		v       *string
		want    time.Duration
		wantErr bool
	}{
		{"unset", nil, def, false},
		{"empty", set(""), def, false},
		{"minutes", set("10m"), 10 * time.Minute, false},
		{"fraction", set("1.5s"), 1500 * time.Millisecond, false},
		{"zero", set("0"), 0, false},
		{"trimmed", set(" 500ms "), 500 * time.Millisecond, false},
		{"negative", set("-1s"), def, true},
		{"no unit", set("10"), def, true},
		{"garbage", set("soon"), def, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			if got := r.Duration("X", def); got != tc.want {
				t.Fatalf("Duration = %v, want %v", got, tc.want)
			}
			checkErr(t, r, tc.wantErr)
		})
	}
}

func TestInt(t *testing.T) {
	t.Parallel()
	const def, lo, hi = 100, 10, 1000
	for _, tc := range []struct {
		name    string
		v       *string
		want    int64
		wantErr bool
	}{
		{"unset", nil, def, false},
		{"empty", set(""), def, false},
		{"in range", set("500"), 500, false},
		{"lower bound", set("10"), 10, false},
		{"upper bound", set("1000"), 1000, false},
		{"trimmed", set(" 42 "), 42, false},
		{"below range", set("9"), def, true},
		{"above range", set("1001"), def, true},
		{"negative", set("-5"), def, true},
		{"not a number", set("lots"), def, true},
		{"float", set("12.5"), def, true},
		{"exponent", set("1e3"), def, true},
		{"overflow", set("99999999999999999999"), def, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			if got := r.Int("X", def, lo, hi); got != tc.want {
				t.Fatalf("Int = %d, want %d", got, tc.want)
			}
			checkErr(t, r, tc.wantErr)
			if tc.wantErr && !strings.Contains(r.Err().Error(), "from 10 to 1000") {
				t.Fatalf("Err() = %q, want it to state the range", r.Err())
			}
		})
	}
}

func TestBool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v       *string
		def     bool
		want    bool
		wantErr bool
	}{
		{nil, true, true, false},
		{nil, false, false, false},
		{set(""), true, true, false},
		{set("1"), false, true, false},
		{set("true"), false, true, false},
		{set("TRUE"), false, true, false},
		{set("Yes"), false, true, false},
		{set("on"), false, true, false},
		{set("0"), true, false, false},
		{set("false"), true, false, false},
		{set("no"), true, false, false},
		{set("OFF"), true, false, false},
		{set("maybe"), true, true, true},
		{set("2"), false, false, true},
	} {
		name := "unset"
		if tc.v != nil {
			name = "=" + *tc.v
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			if got := r.Bool("X", tc.def); got != tc.want {
				t.Fatalf("Bool(def %v) = %v, want %v", tc.def, got, tc.want)
			}
			checkErr(t, r, tc.wantErr)
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	errBad := errors.New("bad")
	for _, tc := range []struct {
		name     string
		v        *string
		parseErr error
		wantArg  []string // what parse was called with
		wantErr  bool
	}{
		{"unset: not called", nil, nil, nil, false},
		{"empty: not called", set(""), nil, nil, false},
		{"set: called with the trimmed value", set(" warn "), nil, []string{"warn"}, false},
		{"parse fails", set("loud"), errBad, []string{"loud"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := env(tc.v)
			var args []string
			r.Parse("X", "debug, info, warn or error", func(v string) error {
				args = append(args, v)
				return tc.parseErr
			})
			if !slices.Equal(args, tc.wantArg) {
				t.Fatalf("parse called with %q, want %q", args, tc.wantArg)
			}
			checkErr(t, r, tc.wantErr)
			if tc.wantErr {
				if got, want := r.Err().Error(), `X="loud": want debug, info, warn or error`; got != want {
					t.Fatalf("Err() = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestErrReportsEveryBadVariable(t *testing.T) {
	t.Parallel()
	r := envconf.FromMap(map[string]string{
		"GOOD_ADDR":    ":8080",
		"BAD_DURATION": "forever",
		"GOOD_INT":     "5",
		"BAD_INT":      "five",
		"BAD_BOOL":     "perhaps",
		"BAD_LEVEL":    "shouty",
	})
	r.String("GOOD_ADDR", "")
	r.Duration("BAD_DURATION", time.Second)
	r.Int("GOOD_INT", 0, 0, 10)
	r.Int("BAD_INT", 0, 0, 10)
	r.Bool("BAD_BOOL", false)
	r.Parse("BAD_LEVEL", "a level", func(string) error { return errors.New("no") })
	r.Duration("UNSET", time.Second)

	err := r.Err()
	if err == nil {
		t.Fatal("Err() = nil, want four errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`BAD_DURATION="forever": want a non-negative Go duration such as 10m or 500ms`,
		`BAD_INT="five": want an integer from 0 to 10`,
		`BAD_BOOL="perhaps": want true or false`,
		`BAD_LEVEL="shouty": want a level`,
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("Err() lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != len(want) {
		t.Fatalf("Err() = %T, want %d joined errors", err, len(want))
	}
}

func TestErrNilWhenAllValid(t *testing.T) {
	t.Parallel()
	r := envconf.FromMap(map[string]string{"A": "1s", "B": "3", "C": "yes"})
	r.Duration("A", 0)
	r.Int("B", 0, 0, 5)
	r.Bool("C", false)
	r.List("D", nil)
	if err := r.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
}

func TestNewReadsProcessEnvironment(t *testing.T) {
	// t.Setenv forbids t.Parallel.
	t.Setenv("MINIZON_ENVCONF_TEST_INT", "7")
	t.Setenv("MINIZON_ENVCONF_TEST_BAD", "x")
	r := envconf.New()
	if got := r.Int("MINIZON_ENVCONF_TEST_INT", 0, 0, 10); got != 7 {
		t.Fatalf("Int = %d, want 7", got)
	}
	if got := r.String("MINIZON_ENVCONF_TEST_UNSET", "def"); got != "def" {
		t.Fatalf("String = %q, want def", got)
	}
	r.Bool("MINIZON_ENVCONF_TEST_BAD", false)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "MINIZON_ENVCONF_TEST_BAD") {
		t.Fatalf("Err() = %v, want it to name MINIZON_ENVCONF_TEST_BAD", err)
	}
}

func TestForeignDropsOwnVariables(t *testing.T) {
	got := envconf.Foreign([]string{"PATH=/bin", "MINIZON_ADDR=:1", "DATABASE_URL=postgres://x", "LOMS_PAYMENT_TIMEOUT=1s",
		"KAFKA_BROKERS=b:9092", "GOGC=200", "PRODUCT_TOKEN=t", "DATABASE_URLS=kept", "OTEL_SERVICE_NAME=x"})
	want := []string{"PATH=/bin", "GOGC=200", "DATABASE_URLS=kept"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Foreign = %q, want %q", got, want)
	}
}
