// Package apidocs serves the API contract: GET /openapi.yaml (the embedded
// api/openapi.yaml) and GET /docs, the document rendered by Redoc. The Redoc
// bundle is embedded from api/redoc/ by the build (make docs) and served
// from this origin at /docs/redoc.standalone.js: nothing is loaded from a
// CDN, and the page's Content-Security-Policy allows this origin only.
// A binary built before `make docs` answers /docs with 503 DOCS_NOT_BUILT.
package apidocs

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/api"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

// Paths of the documentation routes.
const (
	SpecPath   = "/openapi.yaml"
	DocsPath   = "/docs"
	BundlePath = "/docs/redoc.standalone.js"
)

// ContentSecurityPolicy is the policy of the docs page: Redoc's script and
// the spec from this origin only; inline styles, which Redoc injects at run
// time (Redoc's nonce option does not cover all of them: with a nonce
// instead of 'unsafe-inline' the page stays blank); data: images (Redoc's
// icons); a blob: worker, in which Redoc runs its search index (without it
// the worker is blocked). No eval, no inline script, no framing, no forms,
// nothing from another origin: Redoc 2.x's sidebar credit points an <img>
// at Redocly's CDN, which this policy blocks (the image then hides
// itself). Checked in Chromium by TestDocsRenderInChromium.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// ErrDocsNotBuilt answers /docs when the binary carries no Redoc bundle.
var ErrDocsNotBuilt = apperr.New(apperr.KindUnavailable, "DOCS_NOT_BUILT", "docs bundle not built: run make docs")

// page is the docs page. Paths are relative to /docs, so the page also
// works behind a proxy that mounts the gateway under a prefix. The
// standalone bundle initialises the <redoc> element by itself: the page
// needs no inline script.
const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>paygate API reference</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="openapi.yaml" expand-responses="201,200" required-props-first="true" path-in-middle-panel="true"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
`

// Handler serves the documentation routes.
type Handler struct {
	log        *zap.Logger
	spec       []byte
	specETag   string
	bundle     []byte
	bundleETag string
}

// NewHandler returns the handler for the embedded spec and bundle.
func NewHandler(log *zap.Logger) *Handler {
	return newHandler(log, api.OpenAPI, api.RedocBundle())
}

func newHandler(log *zap.Logger, spec, bundle []byte) *Handler {
	return &Handler{log: log, spec: spec, specETag: etag(spec), bundle: bundle, bundleETag: etag(bundle)}
}

func etag(b []byte) string {
	if b == nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// RegisterRoutes adds GET /openapi.yaml, /docs and /docs/redoc.standalone.js.
// They are public, like the probes.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	r.HandleFunc(SpecPath, h.serveSpec).Methods(http.MethodGet)
	r.HandleFunc(DocsPath, h.serveDocs).Methods(http.MethodGet)
	r.HandleFunc(BundlePath, h.serveBundle).Methods(http.MethodGet)
}

func (h *Handler) serveSpec(w http.ResponseWriter, r *http.Request) {
	serveBytes(w, r, "application/yaml; charset=utf-8", h.spec, h.specETag)
}

func (h *Handler) serveDocs(w http.ResponseWriter, r *http.Request) {
	if h.bundle == nil {
		httpserver.WriteError(w, r, h.log, ErrDocsNotBuilt)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(page))
}

func (h *Handler) serveBundle(w http.ResponseWriter, r *http.Request) {
	if h.bundle == nil {
		httpserver.WriteError(w, r, h.log, ErrDocsNotBuilt)
		return
	}
	serveBytes(w, r, "text/javascript; charset=utf-8", h.bundle, h.bundleETag)
}

// serveBytes answers with b, or 304 when the client holds this version.
// Clients revalidate every time (no-cache): the document changes with each
// release, and the ETag makes revalidation cheap.
func serveBytes(w http.ResponseWriter, r *http.Request, contentType string, b []byte, tag string) {
	hdr := w.Header()
	hdr.Set("ETag", tag)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if inm := r.Header.Get("If-None-Match"); inm != "" && matchesETag(inm, tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func matchesETag(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == tag || t == "*" {
			return true
		}
	}
	return false
}

// Module registers the documentation routes. Add it to the application in
// internal/app/app.go.
var Module = fx.Module("apidocs",
	fx.Provide(NewHandler, httpserver.AsRoutes(func(h *Handler) *Handler { return h })),
)
