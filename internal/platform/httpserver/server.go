// Package httpserver is paygate's HTTP front: a gorilla/mux router with the
// shared middleware (request id, tracing, panic recovery, access log and
// metrics, body limits), RFC 9457 problem responses, the /healthz, /readyz
// and /metrics probes, and a graceful shutdown that drains before it stops.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/config"
)

// MetricRequestDuration is the HTTP server request duration histogram,
// exported to Prometheus as http_server_request_duration_seconds.
const MetricRequestDuration = "http.server.request.duration"

// Registrar adds a domain's routes, with their full paths under /v1, to
// the router.
type Registrar interface {
	RegisterRoutes(r *mux.Router)
}

// RegistrarFunc adapts a function to Registrar.
type RegistrarFunc func(r *mux.Router)

// RegisterRoutes calls f.
func (f RegistrarFunc) RegisterRoutes(r *mux.Router) { f(r) }

// Check is one readiness check: /readyz fails while any check fails.
type Check struct {
	Name  string
	Probe func(ctx context.Context) error
}

// Server serves the API and the probes.
type Server struct {
	cfg      config.HTTP
	log      *zap.Logger
	root     *mux.Router
	handler  http.Handler
	checks   []Check
	draining atomic.Bool

	mu  sync.Mutex
	srv *http.Server
	ln  net.Listener
}

// Options are the collaborators of a Server.
type Options struct {
	Config         config.HTTP
	Log            *zap.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	Metrics        http.Handler
	Checks         []Check
	Registrars     []Registrar
}

// New builds the server and its router. It does not listen yet.
func New(o Options) (*Server, error) {
	duration, err := o.MeterProvider.Meter("paygate/http").Float64Histogram(MetricRequestDuration,
		metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP requests by route template, method and status class."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	if err != nil {
		return nil, fmt.Errorf("request duration histogram: %w", err)
	}
	s := &Server{cfg: o.Config, log: o.Log, checks: o.Checks}

	root := mux.NewRouter()
	root.Use(nameRoute)
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, o.Log, apperr.ErrNotFound.With("No route matches this path."))
	})
	notAllowed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, o.Log, apperr.ErrMethodNotAllowed)
	})
	root.NotFoundHandler, root.MethodNotAllowedHandler = notFound, notAllowed
	root.Handle("/healthz", http.HandlerFunc(s.healthz)).Methods(http.MethodGet, http.MethodHead)
	root.Handle("/readyz", http.HandlerFunc(s.readyz)).Methods(http.MethodGet, http.MethodHead)
	if o.Metrics != nil {
		root.Handle("/metrics", o.Metrics).Methods(http.MethodGet)
	}
	// Domains register full paths ("/v1/...") on the root router rather
	// than on a PathPrefix subrouter: gorilla/mux loses the 405 of a
	// subrouter route once a sibling route is tried after it.
	for _, reg := range o.Registrars {
		reg.RegisterRoutes(root)
	}
	s.root = root

	var h http.Handler = root
	h = limitBody(o.Config.MaxBodyBytes, o.Log)(h)
	h = observe(o.Log, duration)(h)
	h = recoverer(o.Log)(h)
	h = requestID(h)
	h = otelhttp.NewHandler(h, "http.server",
		otelhttp.WithTracerProvider(o.TracerProvider),
		otelhttp.WithPropagators(o.Propagator),
		// Request metrics are recorded by observe with the route template;
		// otelhttp's own would duplicate them without it.
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool {
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics"
		}),
	)
	s.handler = h
	return s, nil
}

// Handler returns the full handler chain, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Router returns the root router, for tests that inspect the routes.
func (s *Server) Router() *mux.Router { return s.root }

// Start listens on the configured address and serves in the background.
// Listening happens here, not in the goroutine, so a port already in use
// fails the start instead of being logged later.
func (s *Server) Start(context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.mu.Unlock()
	s.log.Info("http server listening", zap.String("addr", ln.Addr().String()))
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", zap.Error(err))
		}
	}()
	return nil
}

// Addr returns the address the server listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop drains the server: /readyz answers 503 at once so that load
// balancers take this instance out of rotation, then after the drain delay
// the listener closes and in-flight requests get the shutdown timeout to
// finish. Consumers and the producer stop after this hook returns, because
// the server is the last component started.
func (s *Server) Stop(ctx context.Context) error {
	s.draining.Store(true)
	s.log.Info("draining http server", zap.Duration("drain_delay", s.cfg.DrainDelay))
	select {
	case <-time.After(s.cfg.DrainDelay):
	case <-ctx.Done():
	}
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("http shutdown: %w", err)
	}
	s.log.Info("http server stopped")
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readinessReport is the body of /readyz.
type readinessReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rep := readinessReport{Status: "ok", Checks: map[string]string{}}
	if s.draining.Load() {
		rep.Status = "unavailable"
		rep.Checks["draining"] = "shutting down"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.checks {
		wg.Go(func() {
			res := "ok"
			if err := c.Probe(ctx); err != nil {
				res = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Checks[c.Name] = res
			if res != "ok" {
				rep.Status = "unavailable"
			}
		})
	}
	wg.Wait()
	status := http.StatusOK
	if rep.Status != "ok" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}
