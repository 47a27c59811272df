package platform

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// A Watch of a service the server does not know yet says SERVICE_UNKNOWN,
// stays open, and follows the service once it appears, over every protocol.
func TestWatchFollowsAServiceThatAppearsLater(t *testing.T) {
	t.Parallel()
	h := newHealth()
	ts := httptest.NewUnstartedServer(h.handler())
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetHTTP1(true)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	defer ts.Close()
	h2 := new(http.Protocols)
	h2.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: h2}}
	defer h2c.CloseIdleConnections()
	h1 := ts.Client()

	for _, p := range []struct {
		name   string
		client *http.Client
		opts   []connect.ClientOption
	}{
		{"connect", h1, []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc", h2c, []connect.ClientOption{connect.WithGRPC()}},
		{"grpcweb", h1, []connect.ClientOption{connect.WithGRPCWeb()}},
	} {
		service := "minizon.later.v1." + p.name
		watch := connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](p.client, ts.URL+healthWatchPath, p.opts...)
		stream, err := watch.CallServerStream(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: service}))
		if err != nil {
			t.Fatal(err)
		}
		next := func(want healthpb.HealthCheckResponse_ServingStatus) {
			t.Helper()
			if !stream.Receive() || stream.Msg().GetStatus() != want {
				t.Fatalf("%s: got %v (stream error %v), want %v", p.name, stream.Msg().GetStatus(), stream.Err(), want)
			}
		}
		next(healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
		// Another service's change wakes the watcher, which sends nothing:
		// its own status did not change. The next message is this one's.
		h.set("minizon.other.v1."+p.name, true)
		h.set(service, true)
		next(healthpb.HealthCheckResponse_SERVING)
		h.set(service, false)
		next(healthpb.HealthCheckResponse_NOT_SERVING)
		stream.Close()
	}
}
