// Package web holds the browser storefront's built assets (dist/, made by
// `npm run build` from src/ and committed), so that a plain `go build`
// serves the page without Node.
package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed dist
var dist embed.FS

// Storefront serves the built page: index.html for "/", the hashed assets
// under /assets/. Asset names change with their content, so they may be
// cached for good; index.html is revalidated on every load, so a new build
// is picked up at once. It sits at "/" beside the RPC routes, so anything
// but GET and HEAD gets 404 as before: an RPC to an unknown service must
// still be Unimplemented, not the page.
func Storefront() (http.Handler, error) {
	root, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, fmt.Errorf("storefront assets: %w", err)
	}
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Nor are folders listed: only "/" names one, and means index.html.
		if r.Method != http.MethodGet && r.Method != http.MethodHead ||
			r.URL.Path != "/" && strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		if strings.HasPrefix(r.URL.Path, "/assets/") {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		// The page runs only its own script and style. It may call any
		// origin, since its Connection settings can point at services
		// elsewhere; those decide with CORS whom they answer.
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src *; img-src 'self' data:; "+
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	}), nil
}
