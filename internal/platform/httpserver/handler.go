package httpserver

import (
	"net/http"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// DomainAttribute is the span attribute naming the business domain of a
// request (auth, user, saldo, topup, transfer, withdraw, email).
const DomainAttribute = "paygate.domain"

// HandlerFunc is an HTTP handler that returns its error instead of writing
// it; Handle writes the error as problem details.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Handle adapts fn to http.Handler: any returned error is written through
// WriteError.
func Handle(log *zap.Logger, fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}

// WithDomain tags every request reaching h with the business domain, for
// the span, the access log and the request metric. It wraps a domain's
// routes outermost, so that requests refused by authentication are
// counted in their domain too.
func WithDomain(domain string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String(DomainAttribute, domain))
		if ri, ok := r.Context().Value(routeKey).(*routeInfo); ok {
			ri.domain = domain
		}
		h.ServeHTTP(w, r)
	})
}

// Middleware wraps a handler, e.g. an authenticator's Require.
type Middleware func(http.Handler) http.Handler

// Router registers one domain's routes: every handler is tagged with the
// domain (outermost), passed through the middleware (authentication), and
// its errors written as problem details.
type Router struct {
	r      *mux.Router
	domain string
	log    *zap.Logger
	mw     []Middleware
}

// NewRouter returns a Router for domain on r.
func NewRouter(r *mux.Router, domain string, log *zap.Logger, mw ...Middleware) Router {
	return Router{r: r, domain: domain, log: log, mw: mw}
}

// Handle registers fn for method and path.
func (rt Router) Handle(method, path string, fn HandlerFunc) {
	h := Handle(rt.log, fn)
	for i := len(rt.mw) - 1; i >= 0; i-- {
		h = rt.mw[i](h)
	}
	rt.r.Handle(path, WithDomain(rt.domain, h)).Methods(method)
}
