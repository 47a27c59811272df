package platform

import (
	"context"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/telemetry"
)

// Deps are what every service's Open gets from the process that runs it.
type Deps struct {
	Log *slog.Logger
	// Tel traces RPCs and calls and holds the registry /metrics serves.
	Tel *telemetry.Telemetry
}

// Handler is one RPC service's handler, as a Server mounts it.
type Handler struct {
	// Service is the fully qualified service name, for routing, health
	// checks and reflection.
	Service string
	// Path and HTTP are what the generated New<Service>Handler returns.
	Path string
	HTTP http.Handler
	// Streams are the procedures whose server streams live as long as their
	// client wants (see Server.Mount).
	Streams []string
}

// App is an opened service; every service has this shape:
//
//	Open(ctx, cfg, Deps) (*App, error)
//
// then Handlers to serve, Workers to run beside them and Close at the end.
type App interface {
	// Handlers are the service's RPC handlers, built with opts (the
	// server's HandlerOptions); none for a service without an API.
	Handlers(opts []connect.HandlerOption) []Handler
	// Workers are the loops to run beside the server (relays, sweepers,
	// consumers), until their context is done.
	Workers() []func(context.Context) error
	// Close releases what Open took; call it after the workers stopped.
	Close(ctx context.Context)
}

// MountApp mounts every handler of app.
func (s *Server) MountApp(app App) {
	for _, h := range app.Handlers(s.HandlerOptions()) {
		s.Mount(h.Service, h.Path, h.HTTP, h.Streams...)
	}
}

// RunApp runs one service alone, as `minizon <service>` does: a server with
// app's handlers, listening on the configured address until ctx is done,
// with app's workers beside it; then app is closed.
func RunApp(ctx context.Context, cfg Config, deps Deps, name string, app App) error {
	defer app.Close(context.WithoutCancel(ctx))
	srv, err := NewServer(cfg, deps.Log, deps.Tel)
	if err != nil {
		return err
	}
	srv.MountApp(app)
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	deps.Log.Info(name+" listening", "addr", ln.Addr().String())
	return srv.Run(ctx, ln, app.Workers()...)
}
