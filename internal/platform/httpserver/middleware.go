package httpserver

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/logging"
)

// RequestIDHeader carries the request id in requests and responses.
const RequestIDHeader = "X-Request-Id"

type ctxKey int

const (
	requestIDKey ctxKey = iota
	routeKey
)

// validRequestID bounds what an incoming X-Request-Id may hold, so a client
// cannot inject arbitrary text into our logs.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// RequestIDFrom returns the id of the request being served, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// routeInfo is filled in by the router once a route matched, and read by the
// outer middleware after the handler returned.
type routeInfo struct {
	template string
	domain   string
}

// RouteTemplate returns the matched route template of the request in ctx,
// e.g. "/v1/users/{id}", or "" before matching.
func RouteTemplate(ctx context.Context) string {
	if ri, ok := ctx.Value(routeKey).(*routeInfo); ok {
		return ri.template
	}
	return ""
}

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
		}
		w.Header().Set(RequestIDHeader, id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		ctx = context.WithValue(ctx, routeKey, &routeInfo{})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// recoverer turns a panic into a 500 problem without internals, and logs the
// stack. http.ErrAbortHandler keeps its meaning of aborting the response.
func recoverer(log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logging.WithTrace(r.Context(), log).Error("panic serving request",
					zap.String("request_id", RequestIDFrom(r.Context())),
					zap.String("panic", fmt.Sprint(v)),
					zap.ByteString("stack", debug.Stack()))
				if rec.status == 0 {
					WriteError(rec, r, nil, apperr.ErrInternal)
				}
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// observe writes the access-log line and records the request duration
// metric once the response is done. Only the route template, never the raw
// path, is used as a label, so label values stay bounded.
func observe(log *zap.Logger, duration metric.Float64Histogram) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			elapsed := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			route, domain := RouteTemplate(r.Context()), "platform"
			if ri, ok := r.Context().Value(routeKey).(*routeInfo); ok && ri.domain != "" {
				domain = ri.domain
			}
			if route == "" {
				route, domain = "unmatched", "none"
			}
			duration.Record(r.Context(), elapsed.Seconds(), metric.WithAttributes(
				attribute.String("http.route", route),
				attribute.String(DomainAttribute, domain),
				attribute.String("http.request.method", normalizeMethod(r.Method)),
				attribute.String("http.response.status_class", fmt.Sprintf("%dxx", status/100)),
			))
			logging.WithTrace(r.Context(), log).Info("http request",
				zap.String("method", r.Method),
				zap.String("route", route),
				zap.String("domain", domain),
				zap.Int("status", status),
				zap.Duration("duration", elapsed),
				zap.Int64("bytes", rec.bytes),
				zap.String("request_id", RequestIDFrom(r.Context())),
			)
		})
	}
}

// normalizeMethod keeps the method label bounded: unknown verbs become
// "_OTHER", as OpenTelemetry's semantic conventions advise.
func normalizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	default:
		return "_OTHER"
	}
}

// limitBody enforces the request body limit (413) and, for requests that
// carry a body, the JSON content type (415).
func limitBody(maxBytes int64, log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > maxBytes {
				WriteError(w, r, log, apperr.ErrTooLarge)
				return
			}
			if hasBody(r) {
				mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
				if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
					WriteError(w, r, log, apperr.ErrUnsupportedType)
					return
				}
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
			next.ServeHTTP(w, r)
		})
	}
}

func hasBody(r *http.Request) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
	}
	return false
}

// nameRoute is a mux middleware: it records the matched route template for
// the outer middleware and names the server span after it.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if route := mux.CurrentRoute(r); route != nil {
			if tpl, err := route.GetPathTemplate(); err == nil {
				if ri, ok := r.Context().Value(routeKey).(*routeInfo); ok {
					ri.template = tpl
				}
				span := trace.SpanFromContext(r.Context())
				span.SetName(r.Method + " " + tpl)
				span.SetAttributes(attribute.String("http.route", tpl))
			}
		}
		next.ServeHTTP(w, r)
	})
}
