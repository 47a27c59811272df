package platform

import (
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// procedures are the RPCs the server serves, by path (/pkg.Service/Method).
type procedures struct {
	methods map[string]bool
	// services are the served services' names; wholesale holds those whose
	// descriptor is not registered, whose handler judges every path.
	services  map[string]bool
	wholesale map[string]bool
}

func newProcedures() *procedures {
	return &procedures{methods: map[string]bool{}, services: map[string]bool{}, wholesale: map[string]bool{}}
}

// addService adds every method the service's descriptor lists.
func (p *procedures) addService(name string) {
	p.services[name] = true
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		p.wholesale[name] = true
		return
	}
	for i := range sd.Methods().Len() {
		p.methods["/"+name+"/"+string(sd.Methods().Get(i).Name())] = true
	}
}

// add adds procedures given by path, of a service without a registered
// descriptor of its own.
func (p *procedures) add(paths ...string) {
	for _, path := range paths {
		p.methods[path] = true
		service, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		p.services[service] = true
	}
}

// check returns unimplemented, with gRPC's wording, for a path no service
// serves.
func (p *procedures) check(path string) error {
	if p.methods[path] {
		return nil
	}
	service, method, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch {
	case p.wholesale[service]:
		return nil
	case p.services[service]:
		return connect.NewError(connect.CodeUnimplemented, fmt.Errorf("unknown method %s for service %s", method, service))
	}
	return connect.NewError(connect.CodeUnimplemented, fmt.Errorf("unknown service %s", service))
}

// grpcFront answers gRPC and gRPC-Web calls the way gRPC clients expect
// where net/http or connect-go would not:
//   - a procedure no service serves gets HTTP 200 with grpc-status 12
//     (unimplemented) and a grpc-message, rather than net/http's 404
//     text/plain, which gRPC clients report as a protocol error
//     ("unexpected content-type"). Connect calls keep the 404 their
//     protocol defines.
//   - a request compressed in an encoding the handlers lack is refused by
//     connect-go with unimplemented and grpc-accept-encoding, but also with
//     an empty grpc-encoding header, which C-core logs as invalid
//     metadata: the empty header is dropped.
func grpcFront(known *procedures, next http.Handler) http.Handler {
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !isGRPC(r.Header.Get("Content-Type")) {
			next.ServeHTTP(w, r)
			return
		}
		if err := known.check(r.URL.Path); err != nil {
			_ = errs.Write(w, r, err)
			return
		}
		if enc := r.Header.Get("Grpc-Encoding"); enc != "" && enc != "identity" {
			sw := &encodingScrubber{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			sw.scrub() // headers not yet sent go out after the handler
			return
		}
		next.ServeHTTP(w, r)
	})
}

// isGRPC tells whether a request's content type is gRPC's or gRPC-Web's
// (binary; the text mode is translated before this).
func isGRPC(contentType string) bool {
	mt := mediaType(contentType)
	for _, base := range []string{"application/grpc", "application/grpc-web"} {
		if mt == base || strings.HasPrefix(mt, base+"+") {
			return true
		}
	}
	return false
}

// mediaType is a content type without its parameters, in lower case. It
// runs on every request: it allocates only for upper-case input.
func mediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}

// encodingScrubber drops an empty Grpc-Encoding response header before
// the headers are sent.
type encodingScrubber struct {
	http.ResponseWriter
}

func (w *encodingScrubber) scrub() {
	h := w.Header()
	if v, ok := h["Grpc-Encoding"]; ok && (len(v) == 0 || v[0] == "") {
		delete(h, "Grpc-Encoding")
	}
}

func (w *encodingScrubber) WriteHeader(code int) {
	w.scrub()
	w.ResponseWriter.WriteHeader(code)
}

func (w *encodingScrubber) Write(b []byte) (int, error) {
	w.scrub()
	return w.ResponseWriter.Write(b)
}

// Flush sends the headers too, so it scrubs first; connect-go needs a
// Flusher to serve server streams.
func (w *encodingScrubber) Flush() {
	w.scrub()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's deadlines.
func (w *encodingScrubber) Unwrap() http.ResponseWriter { return w.ResponseWriter }
