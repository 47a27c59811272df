package platform

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// bearerAuth asks for a bearer token on every RPC that changes state: those
// not marked NO_SIDE_EFFECTS in their .proto. Reads stay open, as health
// checks, reflection and /metrics do, so a storefront can browse and a
// probe can probe without a secret. It runs in front of the Connect
// handler, so a caller without a token costs no body read or decode, and
// learns nothing from how its request would have been judged.
type bearerAuth struct {
	// digests are the accepted tokens' SHA-256: comparing digests of equal
	// length in constant time tells a caller nothing about a token's
	// length or its first differing byte.
	digests [][sha256.Size]byte
	log     *slog.Logger
	errors  *connect.ErrorWriter
}

// newBearerAuth returns nil when no token is configured: no check at all.
func newBearerAuth(tokens []string, log *slog.Logger) *bearerAuth {
	if len(tokens) == 0 {
		return nil
	}
	a := &bearerAuth{log: log, errors: connect.NewErrorWriter()}
	for _, t := range tokens {
		a.digests = append(a.digests, sha256.Sum256([]byte(t)))
	}
	return a
}

// guard wraps the handler of one service. Only the RPCs its descriptor
// marks NO_SIDE_EFFECTS pass without a token: an unknown path, or a service
// whose descriptor is not registered, is guarded (closed when in doubt).
func (a *bearerAuth) guard(service string, h http.Handler) http.Handler {
	reads := readProcedures(service)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reads[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		if err := a.check(r.Header); err != nil {
			a.log.InfoContext(r.Context(), "rpc refused", "procedure", r.URL.Path, "code", connect.CodeOf(err).String(),
				"error", err.Error())
			_ = a.errors.Write(w, r, challenge(r, err))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readProcedures are the paths (/package.Service/Method) of the service's
// RPCs marked NO_SIDE_EFFECTS.
func readProcedures(service string) map[string]bool {
	reads := map[string]bool{}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if err != nil || !ok {
		return reads
	}
	for i := range sd.Methods().Len() {
		m := sd.Methods().Get(i)
		opts, _ := m.Options().(*descriptorpb.MethodOptions)
		if opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
			reads["/"+service+"/"+string(m.Name())] = true
		}
	}
	return reads
}

// check never says which part of a token was wrong, and never repeats it.
func (a *bearerAuth) check(h http.Header) error {
	v := h.Get("Authorization")
	scheme, token, _ := strings.Cut(v, " ")
	switch {
	case v == "":
		return unauthenticated("this RPC changes state: send Authorization: Bearer <token>")
	case !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "":
		return unauthenticated("the Authorization header must be Bearer <token>")
	case !a.valid(strings.TrimSpace(token)):
		return unauthenticated("invalid bearer token")
	}
	return nil
}

// valid compares against every accepted token, whatever matched first.
func (a *bearerAuth) valid(token string) bool {
	d := sha256.Sum256([]byte(token))
	ok := 0
	for _, want := range a.digests {
		ok |= subtle.ConstantTimeCompare(d[:], want[:])
	}
	return ok == 1
}

func unauthenticated(msg string) error {
	return connect.NewError(connect.CodeUnauthenticated, errors.New(msg))
}

// challenge adds HTTP's WWW-Authenticate to a refusal over the Connect
// protocol, where error metadata are response headers; gRPC and gRPC-Web
// send them as trailers, in which net/http refuses this header.
func challenge(r *http.Request, err error) error {
	var ce *connect.Error
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") && errors.As(err, &ce) {
		ce.Meta().Set("WWW-Authenticate", `Bearer realm="minizon"`)
	}
	return err
}
