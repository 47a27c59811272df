package platform

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// bearerAuth asks for a bearer token on every RPC that changes state: those
// not marked NO_SIDE_EFFECTS in their .proto. Reads stay open, as health
// checks, reflection and /metrics do, so a storefront can browse and a
// probe can probe without a secret.
type bearerAuth struct {
	// digests are the accepted tokens' SHA-256: comparing digests of equal
	// length in constant time tells a caller nothing about a token's
	// length or its first differing byte.
	digests [][sha256.Size]byte
}

// newBearerAuth returns nil when no token is configured: no check at all.
func newBearerAuth(tokens []string) *bearerAuth {
	if len(tokens) == 0 {
		return nil
	}
	a := &bearerAuth{}
	for _, t := range tokens {
		a.digests = append(a.digests, sha256.Sum256([]byte(t)))
	}
	return a
}

// check never says which part of a token was wrong, and never repeats it.
func (a *bearerAuth) check(spec connect.Spec, h http.Header) error {
	if spec.IdempotencyLevel == connect.IdempotencyNoSideEffects {
		return nil
	}
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
// protocol, where error metadata are response headers; gRPC sends them as
// trailers, in which net/http refuses this header.
func challenge(protocol string, err error) error {
	var ce *connect.Error
	if protocol == connect.ProtocolConnect && errors.As(err, &ce) {
		ce.Meta().Set("WWW-Authenticate", `Bearer realm="minizon"`)
	}
	return err
}

// WrapUnary implements connect.Interceptor.
func (a *bearerAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := a.check(req.Spec(), req.Header()); err != nil {
			return nil, challenge(req.Peer().Protocol, err)
		}
		return next(ctx, req)
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (a *bearerAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (a *bearerAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := a.check(conn.Spec(), conn.RequestHeader()); err != nil {
			return challenge(conn.Peer().Protocol, err)
		}
		return next(ctx, conn)
	}
}
