package platform

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/envconf"
)

func TestBearerAuthGuardsOnlyStateChangingRPCs(t *testing.T) {
	var logs bytes.Buffer
	a := newBearerAuth([]string{"old-secret-0123456789", "new-secret-0123456789"}, slog.New(slog.NewJSONHandler(&logs, nil)))
	reached := 0
	h := a.guard(lomsv1connect.LomsServiceName, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
	}))
	const (
		write = "/minizon.loms.v1.LomsService/CreateOrder"
		read  = "/minizon.loms.v1.LomsService/Stocks"
	)
	cases := []struct {
		name, path, header, contentType string
		ok                              bool
	}{
		{"read without token", read, "", "application/json", true},
		{"read with a wrong token", read, "Bearer nope", "application/proto", true},
		{"write with the new token", write, "Bearer new-secret-0123456789", "application/json", true},
		{"write with the old token, during a rotation", write, "Bearer old-secret-0123456789", "application/grpc", true},
		{"scheme in any case", write, "bearer new-secret-0123456789", "application/json", true},
		{"write without token", write, "", "application/json", false},
		{"write without token over gRPC", write, "", "application/grpc", false},
		{"write without token over gRPC-Web", write, "", "application/grpc-web+proto", false},
		{"write with a wrong token", write, "Bearer new-secret-012345678X", "application/json", false},
		{"a token's prefix", write, "Bearer new-secret-012345678", "application/json", false},
		{"a token with more", write, "Bearer new-secret-01234567890", "application/json", false},
		{"empty token", write, "Bearer ", "application/json", false},
		{"basic auth", write, "Basic bmV3LXNlY3JldA==", "application/json", false},
		{"token alone", write, "new-secret-0123456789", "application/json", false},
		{"a method the descriptor does not have", "/minizon.loms.v1.LomsService/Nope", "", "application/json", false},
	}
	for _, tc := range cases {
		reached = 0
		logs.Reset()
		// A body no decoder would accept: a refusal must not depend on it.
		req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader("{not json"))
		req.Header.Set("Content-Type", tc.contentType)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if tc.ok != (reached == 1) {
			t.Errorf("%s: handler reached %d times, want ok=%v", tc.name, reached, tc.ok)
			continue
		}
		if tc.ok {
			continue
		}
		res := rec.Result()
		body, _ := io.ReadAll(res.Body)
		all := string(body) + res.Header.Get("Grpc-Message") + res.Trailer.Get("Grpc-Message") + logs.String()
		if !strings.Contains(all, "unauthenticated") && res.Header.Get("Grpc-Status") != "16" && res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, headers %v, body %q: want unauthenticated", tc.name, res.StatusCode, res.Header, body)
		}
		if strings.Contains(all, "secret") || strings.Contains(all, "bmV3") {
			t.Errorf("%s: the answer or the log repeats what was sent: %s", tc.name, all)
		}
		if !strings.Contains(logs.String(), "rpc refused") {
			t.Errorf("%s: the refusal was not logged", tc.name)
		}
		wantChallenge := !strings.HasPrefix(tc.contentType, "application/grpc")
		if got := res.Header.Get("WWW-Authenticate") != ""; got != wantChallenge {
			t.Errorf("%s: WWW-Authenticate present %v, want %v", tc.name, got, wantChallenge)
		}
	}
}

func TestNoTokensNoCheck(t *testing.T) {
	if newBearerAuth(nil, slog.New(slog.DiscardHandler)) != nil {
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
