// Package platform is the server every miniZON service runs on: one listener
// serving Connect, gRPC and gRPC-Web over HTTP/1.1 and cleartext HTTP/2, with
// health checks, reflection, CORS, limits, logging and graceful shutdown.
package platform

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/minizon/minizon/internal/envconf"
)

// Config is what the platform reads from the environment.
type Config struct {
	// Addr is the listen address (MINIZON_ADDR).
	Addr string
	// AllowedOrigins are the browser origins allowed cross-origin
	// (MINIZON_CORS_ORIGINS, comma-separated; "*" allows any origin, without
	// credentials). Empty: same-origin only.
	AllowedOrigins []string
	// MaxBodyBytes caps a request body and a decompressed message
	// (MINIZON_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// ShutdownDelay is how long the server keeps answering, while health
	// checks already say NOT_SERVING, before it stops accepting connections,
	// so that load balancers move traffic away first
	// (MINIZON_SHUTDOWN_DELAY).
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the drain of in-flight RPCs on SIGINT/SIGTERM
	// (MINIZON_SHUTDOWN_TIMEOUT).
	ShutdownTimeout time.Duration
	// RequestTimeout is the deadline of an RPC whose caller set none
	// (MINIZON_REQUEST_TIMEOUT), so that no request waits forever on a
	// wedged database or dependency.
	RequestTimeout time.Duration
	// LogLevel is debug, info, warn or error (MINIZON_LOG_LEVEL).
	LogLevel slog.Level
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) on a port
	// of its own (MINIZON_DEBUG_ADDR), never on the service's port: the
	// profiles show internals and cost CPU, so only an operator who asks
	// for them gets them, on an address they choose.
	DebugAddr string
}

// Defaults used when a variable is unset.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultShutdownTimeout = 15 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
)

// ReadConfig reads the platform's variables; errors are collected in env.
func ReadConfig(env *envconf.Reader) Config {
	cfg := Config{
		Addr:            env.String("MINIZON_ADDR", DefaultAddr),
		AllowedOrigins:  env.List("MINIZON_CORS_ORIGINS", nil),
		MaxBodyBytes:    env.Int("MINIZON_MAX_BODY_BYTES", DefaultMaxBodyBytes, 1024, 64<<20),
		ShutdownDelay:   env.Duration("MINIZON_SHUTDOWN_DELAY", 0),
		ShutdownTimeout: env.Duration("MINIZON_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout),
		RequestTimeout:  env.Duration("MINIZON_REQUEST_TIMEOUT", DefaultRequestTimeout),
		DebugAddr:       env.String("MINIZON_DEBUG_ADDR", ""),
	}
	env.Parse("MINIZON_LOG_LEVEL", "debug, info, warn or error", func(v string) error {
		return cfg.LogLevel.UnmarshalText([]byte(v))
	})
	return cfg
}

// NewLogger returns a JSON logger writing to w (the process's stderr).
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// Validate checks values that depend on one another.
func (c Config) Validate() error {
	if c.RequestTimeout < 0 {
		return errors.New("MINIZON_REQUEST_TIMEOUT must not be negative")
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("MINIZON_CORS_ORIGINS: %q is not an origin such as https://shop.example", o)
		}
	}
	return nil
}
