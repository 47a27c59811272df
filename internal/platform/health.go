package platform

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// health serves grpc.health.v1.Health as gRPC's health-checking protocol
// describes it: Check, List and Watch. Its messages are the standard
// descriptor's, the one reflection advertises, so a client reading the
// schema through reflection parses the JSON names SERVING, NOT_SERVING and
// SERVICE_UNKNOWN (connectrpc.com/grpchealth renames them, and serves
// neither List nor Watch's SERVICE_UNKNOWN).
type health struct {
	mu       sync.Mutex
	statuses map[string]healthpb.HealthCheckResponse_ServingStatus
	// changed is closed and replaced on every change of a status: a
	// watcher waits on the one it read with the status.
	changed chan struct{}
}

// newHealth reports the whole server ("") as serving; services are added
// as they are mounted.
func newHealth() *health {
	return &health{
		statuses: map[string]healthpb.HealthCheckResponse_ServingStatus{"": healthpb.HealthCheckResponse_SERVING},
		changed:  make(chan struct{}),
	}
}

// set records service's status and wakes the watchers if it changed.
func (h *health) set(service string, serving bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setLocked(service, servingStatus(serving))
}

// setAll sets the server and every service it knows to the same status.
func (h *health) setAll(serving bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name := range h.statuses {
		h.setLocked(name, servingStatus(serving))
	}
}

func (h *health) setLocked(service string, st healthpb.HealthCheckResponse_ServingStatus) {
	if cur, ok := h.statuses[service]; ok && cur == st {
		return
	}
	h.statuses[service] = st
	close(h.changed)
	h.changed = make(chan struct{})
}

func servingStatus(serving bool) healthpb.HealthCheckResponse_ServingStatus {
	if serving {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// status returns service's status, whether it is known, and a channel
// closed at the next change.
func (h *health) status(service string) (healthpb.HealthCheckResponse_ServingStatus, bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.statuses[service]
	return st, ok, h.changed
}

func (h *health) check(_ context.Context, req *connect.Request[healthpb.HealthCheckRequest]) (*connect.Response[healthpb.HealthCheckResponse], error) {
	st, ok, _ := h.status(req.Msg.GetService())
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Msg.GetService()))
	}
	return connect.NewResponse(&healthpb.HealthCheckResponse{Status: st}), nil
}

func (h *health) list(context.Context, *connect.Request[healthpb.HealthListRequest]) (*connect.Response[healthpb.HealthListResponse], error) {
	h.mu.Lock()
	statuses := maps.Clone(h.statuses)
	h.mu.Unlock()
	res := &healthpb.HealthListResponse{Statuses: make(map[string]*healthpb.HealthCheckResponse, len(statuses))}
	for name, st := range statuses {
		res.Statuses[name] = &healthpb.HealthCheckResponse{Status: st}
	}
	return connect.NewResponse(res), nil
}

// watch sends the current status at once, then each change, until the
// client leaves, its deadline passes (deadline_exceeded) or the drain ends
// the stream (with OK, as the protocol asks clients to reconnect after any
// end). An unknown service is
// SERVICE_UNKNOWN, and the stream stays open: the service may appear.
func (h *health) watch(ctx context.Context, req *connect.Request[healthpb.HealthCheckRequest], stream *connect.ServerStream[healthpb.HealthCheckResponse]) error {
	sent := false
	var last healthpb.HealthCheckResponse_ServingStatus
	for {
		st, ok, changed := h.status(req.Msg.GetService())
		if !ok {
			st = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
		}
		if !sent || st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("send health status: %w", err)
			}
			sent, last = true, st
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrShuttingDown) {
				return nil
			}
			// The caller's deadline or its leaving: say which, even if the
			// server's copy of the deadline ran out before the caller's.
			return ctx.Err()
		case <-changed:
		}
	}
}

// Paths of the health service's procedures.
var (
	healthService   = healthpb.Health_ServiceDesc.ServiceName
	healthPath      = "/" + healthService + "/"
	healthWatchPath = healthpb.Health_Watch_FullMethodName
)

// handler returns the service's handler, to be mounted at healthPath.
func (h *health) handler(opts ...connect.HandlerOption) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(healthpb.Health_Check_FullMethodName, connect.NewUnaryHandler(healthpb.Health_Check_FullMethodName, h.check, opts...))
	mux.Handle(healthpb.Health_List_FullMethodName, connect.NewUnaryHandler(healthpb.Health_List_FullMethodName, h.list, opts...))
	mux.Handle(healthWatchPath, connect.NewServerStreamHandler(healthWatchPath, h.watch, opts...))
	return mux
}
