package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// The status page: /ui on the admin listener, plain HTML, CSS and JavaScript
// embedded in the binary, so it works offline and with no build step. The
// page holds no data: its script reads /api/v1/pools and /api/v1/stats every
// second and posts the operator's drain, undrain, disable and enable to
// /api/v1/backends, all through the API's bearer token, which it asks for
// when the API answers 401 and keeps in sessionStorage. So the page itself
// is served without the token.

//go:embed ui
var uiFiles embed.FS

// uiCSP keeps the page to its own files and the API: no inline script or
// style, no other origin, and no framing, so that another site cannot
// overlay the page and trick an operator into clicking drain.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiRoutes registers GET /ui (a redirect) and GET /ui/... (the page's files)
// on mux.
func uiRoutes(mux *http.ServeMux) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed pattern names ui, so it is there
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// Embedded files have no modification time: without this a browser
		// would keep an old page across an upgrade.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}
