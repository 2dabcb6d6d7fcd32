package httpserver

import (
	"net/http"

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
