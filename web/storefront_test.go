package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestStorefrontServesTheBuiltPage(t *testing.T) {
	h, err := Storefront()
	if err != nil {
		t.Fatal(err)
	}
	res, html := get(t, h, http.MethodGet, "/")
	if res.StatusCode != http.StatusOK || !strings.Contains(html, `<div id="app">`) {
		t.Fatalf("GET / = %d %.200q, want the page", res.StatusCode, html)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("index.html Cache-Control = %q, want no-cache so that a new build shows at once", cc)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'self'", csp)
	}

	// Every asset the page names is embedded, and cacheable for good since
	// its name changes with its content.
	assets := regexp.MustCompile(`(?:src|href)="\./(assets/[^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(assets) < 2 {
		t.Fatalf("page names %d assets, want its script and stylesheet: %s", len(assets), html)
	}
	for _, a := range assets {
		res, body := get(t, h, http.MethodGet, "/"+a[1])
		if res.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET /%s = %d, %d bytes", a[1], res.StatusCode, len(body))
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET /%s Cache-Control = %q, want immutable", a[1], cc)
		}
	}

	for _, path := range []string{"/nope.js", "/assets/"} {
		if res, _ := get(t, h, http.MethodGet, path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
		}
	}
	// It sits at "/" beside the RPC routes: an RPC to a service no one
	// serves must still be a 404 (Unimplemented), not the page.
	if res, _ := get(t, h, http.MethodPost, "/acme.v1.Nope/Call"); res.StatusCode != http.StatusNotFound {
		t.Errorf("POST /acme.v1.Nope/Call = %d, want 404", res.StatusCode)
	}
}
