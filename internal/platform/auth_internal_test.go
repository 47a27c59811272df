package platform

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/minizon/minizon/internal/envconf"
)

func TestBearerAuthChecksOnlyStateChangingRPCs(t *testing.T) {
	a := newBearerAuth([]string{"old-secret", "new-secret"})
	write := connect.Spec{Procedure: "/minizon.loms.v1.LomsService/CreateOrder", IdempotencyLevel: connect.IdempotencyUnknown}
	idempotent := connect.Spec{Procedure: "/x.v1.S/Put", IdempotencyLevel: connect.IdempotencyIdempotent}
	read := connect.Spec{Procedure: "/minizon.loms.v1.LomsService/Stocks", IdempotencyLevel: connect.IdempotencyNoSideEffects}
	cases := []struct {
		name   string
		spec   connect.Spec
		header string
		ok     bool
	}{
		{"read without token", read, "", true},
		{"read with a wrong token", read, "Bearer nope", true},
		{"write with the new token", write, "Bearer new-secret", true},
		{"write with the old token, during a rotation", write, "Bearer old-secret", true},
		{"scheme in any case", write, "bearer new-secret", true},
		{"idempotent but not read-only", idempotent, "", false},
		{"write without token", write, "", false},
		{"write with a wrong token", write, "Bearer new-secreT", false},
		{"a token's prefix", write, "Bearer new-secre", false},
		{"a token with more", write, "Bearer new-secret2", false},
		{"empty token", write, "Bearer ", false},
		{"basic auth", write, "Basic bmV3LXNlY3JldA==", false},
		{"token alone", write, "new-secret", false},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Authorization", tc.header)
		}
		err := a.check(tc.spec, h)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("%s: code %v, want unauthenticated", tc.name, connect.CodeOf(err))
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "bmV3") {
			t.Errorf("%s: the error %q repeats what was sent", tc.name, err)
		}
		var ce *connect.Error
		if !errors.As(challenge(connect.ProtocolConnect, err), &ce) || ce.Meta().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate challenge", tc.name)
		}
	}
}

func TestNoTokensNoCheck(t *testing.T) {
	if newBearerAuth(nil) != nil {
		t.Fatal("auth without tokens must be off")
	}
}

func TestAuthTokensMustBeHardToGuess(t *testing.T) {
	for _, tokens := range []string{"shortZq9", "a-long-enough-token,with Zq9 space in it", "a-long-enough-token,tinyZq9"} {
		env := envconf.FromMap(map[string]string{"MINIZON_AUTH_TOKENS": tokens})
		err := ReadConfig(env).Validate()
		if err == nil || !strings.Contains(err.Error(), "MINIZON_AUTH_TOKENS") {
			t.Errorf("%q: %v, want refused", tokens, err)
			continue
		}
		if strings.Contains(err.Error(), "Zq9") {
			t.Errorf("the error quotes a token: %v", err)
		}
	}
	env := envconf.FromMap(map[string]string{"MINIZON_AUTH_TOKENS": "old-token-0123456789,new-token-0123456789"})
	if cfg := ReadConfig(env); cfg.Validate() != nil || len(cfg.AuthTokens) != 2 {
		t.Errorf("two good tokens: %v %v", cfg.AuthTokens, cfg.Validate())
	}
}
