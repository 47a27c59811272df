// Package platform is the server every miniZON service runs on: one listener
// serving Connect, gRPC and gRPC-Web over HTTP/1.1 and cleartext HTTP/2, with
// health checks, reflection, CORS, limits, logging and graceful shutdown.
package platform

import (
	"cmp"
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
	// AuthTokens, when set, are the bearer tokens accepted on the RPCs
	// that change state, those not marked NO_SIDE_EFFECTS
	// (MINIZON_AUTH_TOKENS, comma-separated: several, to rotate one
	// without downtime). Empty: no authentication, as in `minizon dev`.
	AuthTokens []string
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

	// The connection limits below protect the port from slow, idle and
	// greedy clients. Each holds a goroutine, a socket and buffers for as
	// long as the server lets it, so none of them may be unbounded.

	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers, from the first byte (MINIZON_READ_HEADER_TIMEOUT). It is what
	// stops a slowloris client, which opens many connections and sends a
	// header byte now and then, from using up the server's connections.
	ReadHeaderTimeout time.Duration
	// ReadTimeout is how long a client may take to send a whole request,
	// headers and body (MINIZON_READ_TIMEOUT); over HTTP/2 it applies to
	// each stream. It stops a client that sends its headers and then
	// dribbles the body. It must be at least ReadHeaderTimeout, as the
	// headers are part of the request.
	ReadTimeout time.Duration
	// WriteTimeout is how long the server may take to answer a request, from
	// the end of its headers to the last byte of the response
	// (MINIZON_WRITE_TIMEOUT); over HTTP/2 it applies to each stream. It
	// stops a client that does not read its answer from holding the handler
	// and its buffers. It also cuts off the handler itself, so it must
	// exceed RequestTimeout: an RPC that runs into its default deadline still
	// has time to send its deadline_exceeded. Health Watch and reflection
	// streams, which live as long as their client wants, are exempt: the
	// shutdown drain ends them.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection (HTTP/1.1) or an
	// HTTP/2 connection without streams stays open waiting for the next
	// request (MINIZON_IDLE_TIMEOUT). Clients keep connections for reuse;
	// this bounds how many idle ones the server holds.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's headers, request line included
	// (MINIZON_MAX_HEADER_BYTES); larger headers get 431 Request Header
	// Fields Too Large. Over HTTP/2 it is also announced to clients as
	// SETTINGS_MAX_HEADER_LIST_SIZE. Go's own default of 1 MiB is far more
	// than any caller of these APIs sends.
	MaxHeaderBytes int
	// MaxConcurrentStreams is how many RPCs one HTTP/2 connection may have
	// in flight at once (MINIZON_MAX_STREAMS), announced to clients as
	// SETTINGS_MAX_CONCURRENT_STREAMS: a gRPC client multiplexes all its
	// calls on one connection, so without a cap one client could start
	// any number of handlers. Clients queue their calls beyond the cap
	// until earlier ones finish; the server resets the streams of a client
	// that opens more anyway.
	MaxConcurrentStreams int
}

// Defaults used when a variable is unset.
const (
	DefaultAddr            = "127.0.0.1:8080"
	DefaultMaxBodyBytes    = 1 << 20
	DefaultShutdownTimeout = 15 * time.Second
	DefaultRequestTimeout  = 30 * time.Second
	// MinAuthTokenLen keeps guessable tokens out: 16 random characters.
	MinAuthTokenLen = 16

	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultWriteTimeout is twice DefaultRequestTimeout, leaving an RPC
	// that takes its whole default deadline ample time to be answered.
	DefaultWriteTimeout         = 60 * time.Second
	DefaultIdleTimeout          = 2 * time.Minute
	DefaultMaxHeaderBytes       = 64 << 10
	DefaultMaxConcurrentStreams = 250
)

// ReadConfig reads the platform's variables; errors are collected in env.
func ReadConfig(env *envconf.Reader) Config {
	cfg := Config{
		Addr:            env.String("MINIZON_ADDR", DefaultAddr),
		AllowedOrigins:  env.List("MINIZON_CORS_ORIGINS", nil),
		AuthTokens:      env.List("MINIZON_AUTH_TOKENS", nil),
		MaxBodyBytes:    env.Int("MINIZON_MAX_BODY_BYTES", DefaultMaxBodyBytes, 1024, 64<<20),
		ShutdownDelay:   env.Duration("MINIZON_SHUTDOWN_DELAY", 0),
		ShutdownTimeout: env.Duration("MINIZON_SHUTDOWN_TIMEOUT", DefaultShutdownTimeout),
		RequestTimeout:  env.Duration("MINIZON_REQUEST_TIMEOUT", DefaultRequestTimeout),
		DebugAddr:       env.String("MINIZON_DEBUG_ADDR", ""),

		ReadHeaderTimeout:    env.Duration("MINIZON_READ_HEADER_TIMEOUT", DefaultReadHeaderTimeout),
		ReadTimeout:          env.Duration("MINIZON_READ_TIMEOUT", DefaultReadTimeout),
		WriteTimeout:         env.Duration("MINIZON_WRITE_TIMEOUT", DefaultWriteTimeout),
		IdleTimeout:          env.Duration("MINIZON_IDLE_TIMEOUT", DefaultIdleTimeout),
		MaxHeaderBytes:       int(env.Int("MINIZON_MAX_HEADER_BYTES", DefaultMaxHeaderBytes, 4<<10, 1<<20)),
		MaxConcurrentStreams: int(env.Int("MINIZON_MAX_STREAMS", DefaultMaxConcurrentStreams, 1, 10000)),
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

// Validate checks values that depend on one another, as ReadConfig
// returns them.
func (c Config) Validate() error {
	if c.RequestTimeout < 0 {
		return errors.New("MINIZON_REQUEST_TIMEOUT must not be negative")
	}
	for _, o := range c.AllowedOrigins {
		if o != "*" && !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			return fmt.Errorf("MINIZON_CORS_ORIGINS: %q is not an origin such as https://shop.example", o)
		}
		// rs/cors reads a * inside an entry as a wildcard: https://*shop.example
		// would let https://evilshop.example in.
		if o != "*" && strings.Contains(o, "*") {
			return fmt.Errorf("MINIZON_CORS_ORIGINS: %q: list origins exactly; * is allowed only alone", o)
		}
	}
	for i, t := range c.AuthTokens {
		// Not quoted: it is a secret.
		if len(t) < MinAuthTokenLen || strings.ContainsAny(t, " \t\r\n") {
			return fmt.Errorf("MINIZON_AUTH_TOKENS: token %d must be at least %d characters, without spaces", i+1, MinAuthTokenLen)
		}
	}
	// Zero would mean no limit at all to net/http (or, for the header and
	// idle timeouts, silently the read timeout), so it is refused rather
	// than passed on.
	for _, d := range []struct {
		name string
		d    time.Duration
	}{
		{"MINIZON_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout},
		{"MINIZON_READ_TIMEOUT", c.ReadTimeout},
		{"MINIZON_WRITE_TIMEOUT", c.WriteTimeout},
		{"MINIZON_IDLE_TIMEOUT", c.IdleTimeout},
	} {
		if d.d <= 0 {
			return fmt.Errorf("%s must be positive, got %v", d.name, d.d)
		}
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		return fmt.Errorf("MINIZON_READ_HEADER_TIMEOUT (%v) must not exceed MINIZON_READ_TIMEOUT (%v): the headers are part of the request",
			c.ReadHeaderTimeout, c.ReadTimeout)
	}
	// The write timeout ends the handler's answer, so an RPC given the
	// default deadline must be able to reach it and still answer.
	requestTimeout := cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	if c.WriteTimeout <= requestTimeout {
		return fmt.Errorf("MINIZON_WRITE_TIMEOUT (%v) must exceed MINIZON_REQUEST_TIMEOUT (%v), or RPCs are cut off before their deadline",
			c.WriteTimeout, requestTimeout)
	}
	if c.MaxHeaderBytes <= 0 {
		return fmt.Errorf("MINIZON_MAX_HEADER_BYTES must be positive, got %d", c.MaxHeaderBytes)
	}
	if c.MaxConcurrentStreams <= 0 {
		return fmt.Errorf("MINIZON_MAX_STREAMS must be positive, got %d", c.MaxConcurrentStreams)
	}
	return nil
}
