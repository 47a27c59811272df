package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"connectrpc.com/grpchealth"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
)

// healthcheckTimeout bounds one `minizon healthcheck`. It stays below the
// timeout of the health checks in compose.yaml, so that a hung server is
// reported by this command's error rather than by Docker killing it.
const healthcheckTimeout = 3 * time.Second

// runHealthcheck runs `minizon healthcheck [ADDR]`: it asks the server at
// ADDR (default: MINIZON_ADDR, the address this container's service listens
// on) for the health of the whole server over grpc.health.v1.Health/Check,
// prints SERVING and returns nil only if that is the answer. It exists
// because the distroless image has no shell or curl to probe with.
func runHealthcheck(ctx context.Context, env *envconf.Reader, args []string, out io.Writer) error {
	if len(args) > 1 {
		return errors.New("usage: minizon healthcheck [ADDR]")
	}
	addr := env.String("MINIZON_ADDR", platform.DefaultAddr)
	if len(args) == 1 {
		addr = args[0]
	}
	base, err := healthcheckURL(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	if err := checkHealth(ctx, base, healthcheckTimeout); err != nil {
		return err
	}
	fmt.Fprintln(out, "SERVING")
	return nil
}

// healthcheckURL is the base URL to probe for a listen address (host:port or
// a URL). A wildcard host (0.0.0.0, ::, none) is where a server listens, not
// where a client can connect: such an address is probed on 127.0.0.1, which
// is how a health check inside the server's container reaches it.
func healthcheckURL(addr string) (string, error) {
	base, err := rpcclient.BaseURL(addr)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("bad address %q: %w", addr, err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		// No port, as in https://loms.example: the client dials the
		// scheme's port, and the host cannot be a listen address.
		return base, nil
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		u.Host = net.JoinHostPort("127.0.0.1", port)
	}
	return u.String(), nil
}

// checkHealth calls Check for the whole server (empty service name) at base
// and fails unless the status is SERVING. It speaks the Connect protocol
// over HTTP/1.1, which every miniZON server answers, on a connection of its
// own: no proxy, no keep-alive.
func checkHealth(ctx context.Context, base string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	transport := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer transport.CloseIdleConnections()
	client := grpchealth.NewClient(&http.Client{Transport: transport}, base)
	res, err := client.Check(ctx, &grpchealth.CheckRequest{})
	if err != nil {
		return fmt.Errorf("health check of %s: %w", base, err)
	}
	if res.Status != grpchealth.StatusServing {
		return fmt.Errorf("health check of %s: status %s, want SERVING", base, statusName(res.Status))
	}
	return nil
}

// statusName spells a status as grpc.health.v1 does (NOT_SERVING), which is
// what people search logs and documentation for.
func statusName(s grpchealth.Status) string {
	switch s {
	case grpchealth.StatusServing:
		return "SERVING"
	case grpchealth.StatusNotServing:
		return "NOT_SERVING"
	case grpchealth.StatusUnknown:
		return "UNKNOWN"
	}
	return fmt.Sprintf("%d (not a known status)", s)
}
