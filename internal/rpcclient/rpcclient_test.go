package rpcclient_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/internal/telemetry"
)

func TestBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ addr, want, err string }{
		{"localhost:8082", "http://localhost:8082", ""},
		{"http://10.0.0.1:80/", "http://10.0.0.1:80", ""},
		{"https://products.example.com/api", "https://products.example.com/api", ""},
		{"", "", "required"},
		{"ftp://host", "", "scheme"},
		{"http://", "", "no host"},
	}
	for _, tt := range tests {
		got, err := rpcclient.BaseURL(tt.addr)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("BaseURL(%q): %v, want an error saying %q", tt.addr, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}

func TestReadConfig(t *testing.T) {
	t.Parallel()
	def := rpcclient.Config{Protocol: rpcclient.ProtocolGRPC, Timeout: time.Second}
	env := envconf.FromMap(map[string]string{"X_ADDR": "h:1", "X_PROTOCOL": "grpc-web", "X_TIMEOUT": "3s"})
	got := rpcclient.ReadConfig(env, "X", def)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	if want := (rpcclient.Config{Addr: "h:1", Protocol: rpcclient.ProtocolGRPCWeb, Timeout: 3 * time.Second}); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}
	if got := rpcclient.ReadConfig(envconf.FromMap(nil), "X", def); got.Protocol != rpcclient.ProtocolGRPC || got.Timeout != time.Second {
		t.Fatalf("defaults: %+v", got)
	}
	env = envconf.FromMap(map[string]string{"X_PROTOCOL": "soap"})
	rpcclient.ReadConfig(env, "X", def)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "X_PROTOCOL") {
		t.Fatalf("bad protocol: %v", err)
	}
	if err := (rpcclient.Config{Protocol: "grpc", Timeout: time.Second}).Validate("X"); err == nil || !strings.Contains(err.Error(), "X_ADDR") {
		t.Fatalf("missing address: %v", err)
	}
}

// A dependency's deadline_exceeded is the caller's deadline when that
// deadline is due: a server's copy of it runs out up to the timeout's
// rounding before the caller's timer. Otherwise it is the cap.
func TestErrorTellsWhoseDeadline(t *testing.T) {
	t.Parallel()
	dep, err := rpcclient.New("Upstream", rpcclient.Config{Addr: "h:1", Protocol: rpcclient.ProtocolConnect, Timeout: time.Minute}, slog.New(slog.DiscardHandler), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	answered := connect.NewError(connect.CodeDeadlineExceeded, errors.New("the server's deadline"))
	due := timerNotFired{t.Context(), time.Now().Add(time.Millisecond)}
	later, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"caller's deadline due, its timer not yet fired", due, "deadline exceeded waiting for Upstream"},
		{"caller's deadline far off", later, "Upstream did not answer within 1m0s"},
		{"no caller deadline", t.Context(), "Upstream did not answer within 1m0s"},
	}
	for _, tt := range tests {
		got := dep.Error(tt.ctx, answered)
		if connect.CodeOf(got) != connect.CodeDeadlineExceeded || !strings.Contains(got.Error(), tt.want) {
			t.Errorf("%s: %v, want deadline_exceeded saying %q", tt.name, got, tt.want)
		}
	}
}

// Once the caller's deadline has passed by the clock, a failed call is the
// caller's deadline whatever the dependency answered: a server that found
// the deadline gone before its handler ran may answer anything (older
// miniZON servers answered internal), and the caller's timer may not have
// fired yet.
func TestErrorAfterTheCallersDeadlineIsDeadlineExceeded(t *testing.T) {
	t.Parallel()
	dep, err := rpcclient.New("Upstream", rpcclient.Config{Addr: "h:1", Protocol: rpcclient.ProtocolGRPC, Timeout: time.Minute}, slog.New(slog.DiscardHandler), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	passed := timerNotFired{t.Context(), time.Now().Add(-time.Millisecond)}
	live, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	for _, code := range []connect.Code{connect.CodeInternal, connect.CodeUnknown, connect.CodeCanceled, connect.CodeUnavailable, connect.CodeDeadlineExceeded} {
		answered := connect.NewError(code, errors.New("the dependency's answer"))
		if got := dep.Error(passed, answered); connect.CodeOf(got) != connect.CodeDeadlineExceeded ||
			!strings.Contains(got.Error(), "deadline exceeded waiting for Upstream") {
			t.Errorf("%v after the caller's deadline: %v, want deadline_exceeded waiting for Upstream", code, got)
		}
		// With time left, the answer is the dependency's doing.
		if code != connect.CodeDeadlineExceeded {
			if got := dep.Error(live, answered); connect.CodeOf(got) == connect.CodeDeadlineExceeded {
				t.Errorf("%v with an hour left: %v, want it not blamed on the caller's deadline", code, got)
			}
		}
	}
}

// timerNotFired is a context whose deadline is set but whose timer has not
// fired yet, as a real one is for a moment.
type timerNotFired struct {
	context.Context
	deadline time.Time
}

func (c timerNotFired) Deadline() (time.Time, bool) { return c.deadline, true }
