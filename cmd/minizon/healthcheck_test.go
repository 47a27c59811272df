package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/telemetry"
)

// startPlatformServer serves a platform server with nothing mounted on a
// free port of 127.0.0.1 and returns its address and a function that starts
// its shutdown. The server is stopped when the test ends.
func startPlatformServer(t *testing.T, cfg platform.Config) (addr string, shutdown func()) {
	t.Helper()
	srv, err := platform.NewServer(cfg, slog.New(slog.DiscardHandler), telemetry.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), cancel
}

// closedAddr is an address of 127.0.0.1 where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHealthcheckServing(t *testing.T) {
	t.Parallel()
	addr, _ := startPlatformServer(t, platform.Config{})
	_, port, _ := net.SplitHostPort(addr)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"MINIZON_ADDR as the service listens in a container", map[string]string{"MINIZON_ADDR": "0.0.0.0:" + port}, nil},
		{"MINIZON_ADDR without a host", map[string]string{"MINIZON_ADDR": ":" + port}, nil},
		{"IPv6 wildcard", map[string]string{"MINIZON_ADDR": "[::]:" + port}, nil},
		{"address argument over MINIZON_ADDR", map[string]string{"MINIZON_ADDR": closedAddr(t)}, []string{addr}},
		{"URL argument", nil, []string{"http://" + addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			if err := runHealthcheck(t.Context(), envconf.FromMap(tc.env), tc.args, &out); err != nil {
				t.Fatalf("healthcheck of a serving server: %v", err)
			}
			if got := out.String(); got != "SERVING\n" {
				t.Fatalf("output %q, want %q", got, "SERVING\n")
			}
		})
	}
}

// TestHealthcheckFailsWhileDraining: once shutdown begins the server answers
// NOT_SERVING, and the health check must fail so that Docker and load
// balancers stop sending traffic before the port closes.
func TestHealthcheckFailsWhileDraining(t *testing.T) {
	t.Parallel()
	// Long enough for the checks below to fit in it on a busy machine.
	const delay = 10 * time.Second
	addr, shutdown := startPlatformServer(t, platform.Config{ShutdownDelay: delay})
	env := envconf.FromMap(map[string]string{"MINIZON_ADDR": addr})
	if err := runHealthcheck(t.Context(), env, nil, &strings.Builder{}); err != nil {
		t.Fatalf("before shutdown: %v", err)
	}
	shutdown()
	// The status flips right after shutdown begins; the port stays open for
	// the shutdown delay.
	deadline := time.Now().Add(delay)
	for {
		var out strings.Builder
		err := runHealthcheck(t.Context(), env, nil, &out)
		if err != nil {
			if !strings.Contains(err.Error(), "NOT_SERVING") {
				t.Fatalf("error %q, want it to report NOT_SERVING", err)
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q although the check failed", out.String())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still SERVING %v after shutdown began", delay)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthcheckFailsWithoutAServer(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	var out strings.Builder
	err := runHealthcheck(t.Context(), envconf.FromMap(map[string]string{"MINIZON_ADDR": addr}), nil, &out)
	if err == nil {
		t.Fatal("healthcheck of a closed port succeeded")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q although the check failed", out.String())
	}
}

// TestHealthcheckTimesOut: a server that accepts the connection and never
// answers fails the check by its timeout instead of hanging it. The server
// never answers, so the check can only end by the timeout; the test asserts
// that it did (the code), not how soon.
func TestHealthcheckTimesOut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		// Hold every connection open, unanswered, until the listener is
		// closed at the end of the test.
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	err = checkHealth(t.Context(), "http://"+ln.Addr().String(), 200*time.Millisecond)
	if err == nil {
		t.Fatal("health check of a mute server succeeded")
	}
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("error %v, want deadline_exceeded naming the server", err)
	}
}

func TestHealthcheckRejectsBadArguments(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"a:1", "b:2"}, {"ftp://127.0.0.1:21"}, {"http://"}} {
		if err := runHealthcheck(t.Context(), envconf.FromMap(nil), args, &strings.Builder{}); err == nil {
			t.Errorf("healthcheck %q: no error", args)
		}
	}
}

func TestHealthcheckURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{platform.DefaultAddr, "http://" + platform.DefaultAddr},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{":8080", "http://127.0.0.1:8080"},
		{"[::]:8080", "http://127.0.0.1:8080"},
		{"loms:8080", "http://loms:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"http://0.0.0.0:9000", "http://127.0.0.1:9000"},
		{"https://loms.example", "https://loms.example"},
	} {
		got, err := healthcheckURL(tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("healthcheckURL(%q) = %q, %v; want %q", tc.addr, got, err, tc.want)
		}
	}
}
