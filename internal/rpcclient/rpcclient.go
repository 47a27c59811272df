// Package rpcclient connects a service to another one it depends on: the
// HTTP transport and Connect options for the configured protocol, a deadline
// cap for every call, and errors that name the dependency.
package rpcclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/telemetry"
)

// Protocols a dependency can be spoken to in.
const (
	ProtocolConnect = "connect"
	ProtocolGRPC    = "grpc"
	ProtocolGRPCWeb = "grpcweb"
)

// Config says where a dependency is and how to talk to it.
type Config struct {
	// Addr is a base URL (http://host:port, https://host) or host:port,
	// which means http://host:port.
	Addr string
	// Protocol is connect, grpc or grpcweb.
	Protocol string
	// Timeout caps every call; the caller's own deadline applies if sooner.
	Timeout time.Duration
	// IdleConns is how many idle connections are kept for reuse; 0 means
	// 64. An HTTP/1.1 caller needs one per call in flight, or it redials.
	IdleConns int
	// AuthToken, when set, is sent as a bearer token on every call, for a
	// dependency whose mutating RPCs ask for one.
	AuthToken string
}

// ReadConfig reads <prefix>_ADDR, <prefix>_PROTOCOL and <prefix>_TIMEOUT.
func ReadConfig(env *envconf.Reader, prefix string, def Config) Config {
	cfg := Config{
		Addr:    env.String(prefix+"_ADDR", def.Addr),
		Timeout: env.Duration(prefix+"_TIMEOUT", def.Timeout),
	}
	cfg.Protocol = def.Protocol
	env.Parse(prefix+"_PROTOCOL", "connect, grpc or grpcweb", func(v string) error {
		p, err := parseProtocol(v)
		cfg.Protocol = p
		return err
	})
	return cfg
}

func parseProtocol(v string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case ProtocolConnect:
		return ProtocolConnect, nil
	case ProtocolGRPC:
		return ProtocolGRPC, nil
	case ProtocolGRPCWeb, "grpc-web":
		return ProtocolGRPCWeb, nil
	}
	return "", fmt.Errorf("unknown protocol %q", v)
}

// Validate reports a setting that cannot work; prefix names the variables.
func (c Config) Validate(prefix string) error {
	var errs []error
	if _, err := BaseURL(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("%s_ADDR: %w", prefix, err))
	}
	if _, err := parseProtocol(c.Protocol); err != nil {
		errs = append(errs, fmt.Errorf("%s_PROTOCOL: %w", prefix, err))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s_TIMEOUT must be positive", prefix))
	}
	return errors.Join(errs...)
}

// BaseURL turns an address into the base URL of the service's RPCs.
func BaseURL(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", errors.New("is required")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("bad address %q: %w", addr, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("bad address %q: scheme must be http or https", addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("bad address %q: no host", addr)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// compressMinBytes is the smallest request body worth compressing.
const compressMinBytes = 1024

// Dependency is one remote service as its caller sees it.
type Dependency struct {
	// Name is the service's name in messages and logs ("LOMS").
	Name string
	// BaseURL is the base URL to pass to a generated client's constructor.
	BaseURL string
	// HTTP is the client to pass to a generated client's constructor.
	HTTP *http.Client
	// Options select the protocol; pass them to the constructor.
	Options []connect.ClientOption

	timeout time.Duration
	log     *slog.Logger
}

// New prepares the transport for a dependency. gRPC to a plain http://
// address goes over cleartext HTTP/2 with prior knowledge, as gRPC needs
// HTTP/2; Connect and gRPC-Web go over HTTP/1.1 there, which any proxy
// passes. https:// addresses get HTTP/2 or HTTP/1.1 by ALPN.
// Calls carry the caller's trace context, and are traced through tel.
func New(name string, cfg Config, log *slog.Logger, tel *telemetry.Telemetry) (*Dependency, error) {
	base, err := BaseURL(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s address: %w", name, err)
	}
	protocol, err := parseProtocol(cfg.Protocol)
	if err != nil {
		return nil, fmt.Errorf("%s protocol: %w", name, err)
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("%s timeout must be positive", name)
	}
	var protocols http.Protocols
	switch {
	case strings.HasPrefix(base, "https://"):
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	case protocol == ProtocolGRPC:
		protocols.SetUnencryptedHTTP2(true)
	default:
		protocols.SetHTTP1(true)
	}
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:           &protocols,
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: cmp.Or(cfg.IdleConns, 64),
		IdleConnTimeout:     90 * time.Second,
	}
	// Small messages are not worth gzip's CPU on either side; Go's HTTP
	// client would otherwise ask for compressed answers of any size.
	interceptors, err := tel.ClientInterceptors()
	if err != nil {
		return nil, err
	}
	if cfg.AuthToken != "" {
		interceptors = append(interceptors, BearerToken(cfg.AuthToken))
	}
	opts := []connect.ClientOption{connect.WithCompressMinBytes(compressMinBytes), connect.WithInterceptors(interceptors...)}
	switch protocol {
	case ProtocolGRPC:
		opts = append(opts, connect.WithGRPC())
	case ProtocolGRPCWeb:
		opts = append(opts, connect.WithGRPCWeb())
	}
	return &Dependency{
		Name:    name,
		BaseURL: base,
		HTTP:    &http.Client{Transport: transport},
		Options: opts,
		timeout: cfg.Timeout,
		log:     log,
	}, nil
}

// Context returns ctx with its deadline capped by the dependency's timeout;
// generated clients send the deadline along, so the server stops when the
// caller gives up.
func (d *Dependency) Context(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// Error turns a failed call into an error for the caller's caller: a fresh
// Connect error whose code says what happened to the dependency and whose
// message names it. The dependency's own code is not passed through: its
// internal error is not the caller's, and its invalid_argument is a bug here.
// ctx is the caller's context, to tell its deadline from the cap.
func (d *Dependency) Error(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil || DeadlineDue(ctx, err) {
		// The caller's own deadline passed or it went away.
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return connect.NewError(connect.CodeDeadlineExceeded,
				fmt.Errorf("deadline exceeded waiting for %s", d.Name))
		}
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	}
	switch code := connect.CodeOf(err); code {
	case connect.CodeDeadlineExceeded:
		return connect.NewError(connect.CodeDeadlineExceeded,
			fmt.Errorf("%s did not answer within %s", d.Name, d.timeout))
	case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeAborted, connect.CodeCanceled:
		// Canceled here is the dependency's doing (it shut down mid-call),
		// as the caller is still waiting.
		d.log.WarnContext(ctx, "dependency unavailable", "dependency", d.Name, "code", code.String(), "error", err.Error())
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s is unavailable; retry later", d.Name))
	default:
		d.log.ErrorContext(ctx, "dependency failed", "dependency", d.Name, "code", code.String(), "error", err.Error())
		return connect.NewError(connect.CodeInternal, fmt.Errorf("%s failed (%s)", d.Name, code))
	}
}

// timeoutRounding is how much sooner than the caller a server may see a
// deadline run out: Connect sends the timeout in whole milliseconds, cut
// down, and the server counts it from the call's arrival.
const timeoutRounding = 2 * time.Millisecond

// DeadlineDue tells whether err is explained by ctx's own deadline although
// ctx does not say so yet: its timer fires a moment after the deadline.
// Once the deadline has passed by the clock, whatever the dependency
// answered (a server that saw the deadline run out before its handler may
// answer anything, even internal) is the caller's deadline. A moment before
// it, the dependency's deadline_exceeded is too: the server's copy of a
// deadline may run out first, by the rounding.
func DeadlineDue(ctx context.Context, err error) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return false
	}
	left := time.Until(dl)
	return left <= 0 || (connect.CodeOf(err) == connect.CodeDeadlineExceeded && left < timeoutRounding)
}

// Log is where the dependency's failures are logged.
func (d *Dependency) Log() *slog.Logger { return d.log }

// Close releases idle connections.
func (d *Dependency) Close() { d.HTTP.CloseIdleConnections() }

// BearerToken is a client interceptor sending token as a bearer token on
// every unary call.
func BearerToken(token string) connect.Interceptor {
	header := "Bearer " + token
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if req.Spec().IsClient {
				req.Header().Set("Authorization", header)
			}
			return next(ctx, req)
		}
	})
}
