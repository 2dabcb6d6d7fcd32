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

// Handle adapts fn to http.Handler for the given domain: it tags the
// request's span with the domain and writes any returned error through
// WriteError.
func Handle(log *zap.Logger, domain string, fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.String(DomainAttribute, domain))
		if err := fn(w, r); err != nil {
			WriteError(w, r, log, err)
		}
	})
}
