package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	connectcors "connectrpc.com/cors"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"

	"github.com/minizon/minizon/internal/telemetry"
)

// reflectionMethod is the one method of both reflection services.
const reflectionMethod = "ServerReflectionInfo"

// compressMinBytes keeps small messages uncompressed: gzip costs more than
// it saves below about a kilobyte, and Go clients ask for it by default.
const compressMinBytes = 1024

// Server is one http.Handler tree on one port for one or more Connect
// services. Mount the services, then Serve.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mux    *http.ServeMux
	names  []string
	health *health
	// known are the procedures served, for gRPC's answer to any other.
	known *procedures
	// draining is cancelled when shutdown begins; it ends long-lived
	// streams (health Watch, reflection) that would otherwise hold the
	// drain open until its timeout.
	draining    context.Context
	stopStreams context.CancelFunc
	// tel is what RPCs are traced and counted with; interceptors are made
	// once, as their metrics register once.
	tel          *telemetry.Telemetry
	interceptors []connect.Interceptor
	// auth guards the RPCs that change state; nil when off.
	auth *bearerAuth
}

// NewServer returns a server with nothing mounted yet. Zero limits in cfg
// take their defaults (net/http would read a zero timeout as none at all).
// RPCs are traced through tel and counted on its registry, which /metrics
// serves; it must be a registry no other server uses.
func NewServer(cfg Config, log *slog.Logger, tel *telemetry.Telemetry) (*Server, error) {
	cfg.MaxBodyBytes = positiveOr(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.ShutdownTimeout = positiveOr(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.RequestTimeout = positiveOr(cfg.RequestTimeout, DefaultRequestTimeout)
	cfg.ReadHeaderTimeout = positiveOr(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.ReadTimeout = positiveOr(cfg.ReadTimeout, DefaultReadTimeout)
	cfg.WriteTimeout = positiveOr(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.IdleTimeout = positiveOr(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.MaxHeaderBytes = positiveOr(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	cfg.MaxConcurrentStreams = positiveOr(cfg.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	interceptors, err := tel.ServerInterceptors()
	if err != nil {
		return nil, err
	}
	draining, stop := context.WithCancel(context.Background())
	srv := &Server{
		cfg: cfg, log: log, mux: http.NewServeMux(), health: newHealth(), known: newProcedures(),
		draining: draining, stopStreams: stop, tel: tel,
		interceptors: append(interceptors, newLogInterceptor(log), newDeadlineInterceptor(cfg.RequestTimeout)),
	}
	srv.auth = newBearerAuth(cfg.AuthTokens, log)
	srv.known.addService(healthService)
	srv.known.add("/"+grpcreflect.ReflectV1ServiceName+"/"+reflectionMethod,
		"/"+grpcreflect.ReflectV1AlphaServiceName+"/"+reflectionMethod)
	return srv, nil
}

// positiveOr returns v, or def when v is unset (not positive).
func positiveOr[T time.Duration | int | int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// HandlerOptions are the options every service handler must be built with:
// metrics, tracing, the per-RPC log line, a deadline for callers that set
// none, the message size limit and response compression.
func (s *Server) HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithInterceptors(s.interceptors...),
		// After the interceptors, so innermost: a panicking handler becomes
		// an Internal error that the log line and the metrics see like any
		// other. The panic's value and stack are logged, never sent.
		connect.WithRecover(s.recoverPanic),
		connect.WithReadMaxBytes(int(s.cfg.MaxBodyBytes)),
		connect.WithCompressMinBytes(compressMinBytes),
	}
}

// recoverPanic logs a handler's panic and answers Internal: a panic is a bug
// here, and Unavailable (what a dropped connection looks like) would invite
// the caller to retry a call that may have half run.
func (s *Server) recoverPanic(ctx context.Context, spec connect.Spec, _ http.Header, r any) error {
	s.log.ErrorContext(ctx, "handler panic", "procedure", spec.Procedure, "panic", fmt.Sprint(r),
		"stack", string(debug.Stack()))
	return connect.NewError(connect.CodeInternal, errors.New(internalMessage))
}

// Mount registers a generated service handler (as returned by
// New<Service>Handler) under its fully qualified service name, for routing,
// health checks and reflection. streams are the procedures (paths such as
// "/pkg.Service/Watch") whose server streams live as long as their client
// wants: they are exempt from the read and write timeouts and are ended
// when shutdown begins, their context cancelled with ErrShuttingDown as
// its cause.
func (s *Server) Mount(serviceName, path string, h http.Handler, streams ...string) {
	if s.auth != nil {
		h = s.auth.guard(serviceName, h)
	}
	s.mux.Handle(path, h)
	for _, p := range streams {
		s.mux.Handle(s.endOnDrain(p, h))
	}
	s.names = append(s.names, serviceName)
	s.known.addService(serviceName)
	s.health.set(serviceName, true)
}

// HandleRest serves every path no mounted service or built-in route claims,
// such as the storefront page at "/".
func (s *Server) HandleRest(h http.Handler) {
	s.mux.Handle("/", h)
}

// Handler returns the complete handler tree: the mounted services, health,
// reflection, CORS, the body limit, gRPC's answers to unknown procedures
// and gRPC-Web's text mode. Call it after every Mount.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", s.mux)
	health := s.health.handler(connect.WithCompressMinBytes(compressMinBytes))
	mux.Handle(healthPath, health)
	// Watch streams would hold the drain open; Check and List are unary.
	mux.Handle(s.endOnDrain(healthWatchPath, health))
	// Health is listed too, so grpcurl and buf curl can call it without
	// .proto files.
	reflector := grpcreflect.NewStaticReflector(append(slices.Clone(s.names), healthService)...)
	// A reflection handler serves its one procedure at any path under its
	// service: route that procedure only, so that other paths are unknown
	// as they are for every service.
	for _, newHandler := range []func(*grpcreflect.Reflector, ...connect.HandlerOption) (string, http.Handler){
		grpcreflect.NewHandlerV1, grpcreflect.NewHandlerV1Alpha,
	} {
		path, h := newHandler(reflector)
		mux.Handle(s.endOnDrain(path+reflectionMethod, h))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.tel.Metrics, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// A failed collector (the database is down) leaves its metrics out
		// but serves the rest.
		ErrorHandling: promhttp.ContinueOnError,
	}))

	var h http.Handler = http.MaxBytesHandler(grpcFront(s.known, mux), s.cfg.MaxBodyBytes)
	// Outside the body limit, which then counts decoded bytes, as it does
	// for every other protocol.
	h = newGRPCWebText(h)
	if len(s.cfg.AllowedOrigins) > 0 {
		h = cors.New(cors.Options{
			AllowedOrigins: s.cfg.AllowedOrigins,
			AllowedMethods: connectcors.AllowedMethods(),
			AllowedHeaders: s.allowedHeaders(),
			ExposedHeaders: connectcors.ExposedHeaders(),
			MaxAge:         7200,
		}).Handler(h)
	}
	return h
}

// allowedHeaders are the request headers a browser may send cross-origin:
// Connect's, and Authorization when RPCs ask for a bearer token.
func (s *Server) allowedHeaders() []string {
	h := connectcors.AllowedHeaders()
	if len(s.cfg.AuthTokens) > 0 {
		h = append(h, "Authorization")
	}
	return h
}

// ErrShuttingDown is the cause of a long-lived stream's cancellation when
// the server shuts down: a handler that sees it can end its stream with
// unavailable, telling the client to reconnect, likely to another replica.
var ErrShuttingDown = errors.New("the server is shutting down")

// endOnDrain cancels the requests of a streaming handler (reflection,
// health Watch) when shutdown begins. Such streams live as long as their
// client wants, so the read and write timeouts, meant for one request and
// its answer, are lifted for them: the drain is what ends them.
func (s *Server) endOnDrain(path string, h http.Handler) (string, http.Handler) {
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		stop := context.AfterFunc(s.draining, func() { cancel(ErrShuttingDown) })
		defer stop()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Listen opens the configured address.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx is done, then reports NOT_SERVING to health
// checks, keeps answering for the shutdown delay, ends health and
// reflection streams, and drains in-flight RPCs for at most the shutdown
// timeout; what is still running then is cut off.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:   s.Handler(),
		Protocols: protocols,
		// Slow, idle or greedy clients must not hold connections, handlers
		// or memory forever; Config says why each limit is what it is.
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: s.cfg.MaxConcurrentStreams,
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down: draining in-flight requests", "delay", s.cfg.ShutdownDelay.String(),
		"timeout", s.cfg.ShutdownTimeout.String())
	s.health.setAll(false)
	if s.cfg.ShutdownDelay > 0 {
		time.Sleep(s.cfg.ShutdownDelay)
	}
	s.stopStreams()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Do not leave handlers running under resources the caller is
		// about to close.
		srv.Close()
		return fmt.Errorf("drain in-flight requests: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("server stopped")
	return nil
}

// Run serves on ln until ctx is done, with workers (relays, sweepers,
// consumers) running beside the server. On shutdown the server drains its
// in-flight RPCs first, then the workers are cancelled and awaited, so that
// work accepted before the signal is finished. A failing worker stops
// everything.
func (s *Server) Run(ctx context.Context, ln net.Listener, workers ...func(context.Context) error) error {
	if s.cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(s.cfg.DebugAddr, s.log)
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	srvCtx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	workCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWorkers()
	errs := make(chan error, len(workers))
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			if err := w(workCtx); err != nil {
				errs <- err
				stopServer()
			}
		})
	}
	err := s.Serve(srvCtx, ln)
	stopWorkers()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}
