package platform_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/rpctest"
)

// healthClients call grpc.health.v1.Health's three procedures.
type healthClients struct {
	check *connect.Client[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse]
	list  *connect.Client[healthpb.HealthListRequest, healthpb.HealthListResponse]
	watch *connect.Client[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse]
}

func newHealthClients(p rpctest.Protocol, base string) healthClients {
	return healthClients{
		check: connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](p.HTTP, base+healthpb.Health_Check_FullMethodName, p.Options...),
		list:  connect.NewClient[healthpb.HealthListRequest, healthpb.HealthListResponse](p.HTTP, base+healthpb.Health_List_FullMethodName, p.Options...),
		watch: connect.NewClient[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse](p.HTTP, base+healthpb.Health_Watch_FullMethodName, p.Options...),
	}
}

// Check, List and Watch per gRPC's health protocol, over every protocol.
func TestHealthCheckListAndWatch(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	for _, p := range rpctest.Protocols(t) {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			c := newHealthClients(p, h.base)
			for _, svc := range []string{lomsv1connect.LomsServiceName, ""} {
				res, err := c.check.CallUnary(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: svc}))
				if err != nil || res.Msg.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("check %q: %v %v, want SERVING", svc, res, err)
				}
			}
			_, err := c.check.CallUnary(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: "minizon.nope.v1.Nope"}))
			wantCode(t, err, connect.CodeNotFound)

			list, err := c.list.CallUnary(t.Context(), connect.NewRequest(&healthpb.HealthListRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			got := list.Msg.GetStatuses()
			if len(got) != 2 || got[""].GetStatus() != healthpb.HealthCheckResponse_SERVING ||
				got[lomsv1connect.LomsServiceName].GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("list: %v, want the server and LomsService SERVING", got)
			}

			// Watching a service the server does not know is not an error:
			// SERVICE_UNKNOWN, and the stream stays open for it to appear.
			stream, err := c.watch.CallServerStream(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{Service: "minizon.later.v1.Later"}))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.Close()
			if !stream.Receive() || stream.Msg().GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
				t.Fatalf("watch of an unknown service: %v %v, want SERVICE_UNKNOWN", stream.Msg(), stream.Err())
			}
			// A second round trip after the first message: the stream has
			// not ended meanwhile (it used to end at once with not_found).
			if _, err := c.check.CallUnary(t.Context(), connect.NewRequest(&healthpb.HealthCheckRequest{})); err != nil {
				t.Fatal(err)
			}
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				for stream.Receive() {
				}
			}()
			select {
			case <-ended:
				t.Fatalf("the watch of an unknown service ended: %v", stream.Err())
			default:
			}
			stream.Close()
			<-ended
		})
	}
}

// The JSON of Check and Watch names the statuses as the descriptor that
// reflection serves does, so a client that reads the schema by reflection
// (grpcurl, buf curl, a dynamic client) parses it.
func TestHealthJSONMatchesTheReflectedSchema(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	stream := grpcreflect.NewClient(h2c(t), h.base, connect.WithGRPC()).NewStream(t.Context())
	defer stream.Close()
	files, err := stream.FileContainingSymbol(protoreflect.FullName(healthpb.Health_ServiceDesc.ServiceName))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.FindDescriptorByName("grpc.health.v1.HealthCheckResponse")
	if err != nil {
		t.Fatal(err)
	}
	reflected := d.(protoreflect.MessageDescriptor)

	a := callWire(t, http1(t), h.base+healthpb.Health_Check_FullMethodName, "application/json", []byte(`{}`), nil)
	var plain map[string]string
	if err := json.Unmarshal(a.body, &plain); a.status != http.StatusOK || err != nil || plain["status"] != "SERVING" {
		t.Fatalf("Connect JSON check: HTTP %d %s, want {\"status\": \"SERVING\"}", a.status, a.body)
	}
	msg := dynamicpb.NewMessage(reflected)
	if err := protojson.Unmarshal(a.messages[0], msg); err != nil {
		t.Fatalf("the answer %s does not parse with the reflected schema: %v", a.messages[0], err)
	}
	status := reflected.Fields().ByName("status")
	if name := status.Enum().Values().ByNumber(msg.Get(status).Enum()).Name(); name != "SERVING" {
		t.Fatalf("status %s, want SERVING", name)
	}
	if name := status.Enum().Values().ByNumber(3).Name(); name != "SERVICE_UNKNOWN" {
		t.Fatalf("the reflected enum's value 3 is %s, want the standard SERVICE_UNKNOWN", name)
	}
}

// A Watch whose deadline passes ends deadline_exceeded, not OK, even when
// only the server knows the deadline (here a Connect client that sends
// Connect-Timeout-Ms and sets no deadline of its own): OK is the drain's
// end alone.
func TestHealthWatchEndsAtItsDeadlineWithDeadlineExceeded(t *testing.T) {
	t.Parallel()
	h := startServer(t, baseConfig(), newImpl())
	body := []byte(`{"service": "minizon.later.v1.Later"}`)
	frame := append([]byte{0, 0, 0, 0, byte(len(body))}, body...)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.base+healthpb.Health_Watch_FullMethodName, bytes.NewReader(frame))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Timeout-Ms", "200")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var frames []string
	var end string
	for len(raw) >= 5 {
		n := int(binary.BigEndian.Uint32(raw[1:5]))
		if len(raw) < 5+n {
			t.Fatalf("a cut frame: %q", raw)
		}
		if raw[0]&2 != 0 {
			end = string(raw[5 : 5+n])
		} else {
			frames = append(frames, string(raw[5:5+n]))
		}
		raw = raw[5+n:]
	}
	if len(frames) != 1 || !strings.Contains(frames[0], "SERVICE_UNKNOWN") {
		t.Fatalf("messages %q, want one SERVICE_UNKNOWN", frames)
	}
	if !strings.Contains(end, `"deadline_exceeded"`) {
		t.Fatalf("the stream ended with %s, want deadline_exceeded", end)
	}
}
