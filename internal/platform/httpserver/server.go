// Package httpserver is paygate's HTTP front: a gorilla/mux router with the
// shared middleware (request id, tracing, panic recovery, access log and
// metrics, body limits), RFC 9457 problem responses, the /healthz and
// /readyz probes, and a graceful shutdown that drains before it stops.
//
// A second, operations listener (PAYGATE_METRICS_ADDR) serves /metrics, a
// /readyz that names the failing checks and, with PAYGATE_PPROF_ENABLED,
// the pprof profiles under /debug/pprof/; the public port serves none of
// them, so scraping and diagnostics never face the internet.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
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

// Server serves the API and the probes on the public listener, and the
// metrics and detailed readiness on the operations listener.
type Server struct {
	cfg      config.HTTP
	log      *zap.Logger
	root     *mux.Router
	handler  http.Handler
	ops      http.Handler
	checks   []Check
	draining atomic.Bool

	mu     sync.Mutex
	srv    *http.Server
	ln     net.Listener
	opsSrv *http.Server
	opsLn  net.Listener
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
	root.Handle("/readyz", s.readyz(false)).Methods(http.MethodGet, http.MethodHead)
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
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz"
		}),
	)
	s.handler = h

	ops := http.NewServeMux()
	ops.Handle("GET /healthz", http.HandlerFunc(s.healthz))
	ops.Handle("GET /readyz", s.readyz(true))
	if o.Metrics != nil {
		ops.Handle("GET /metrics", o.Metrics)
	}
	if o.Config.PprofEnabled {
		mountPprof(ops)
	}
	s.ops = recoverer(o.Log)(ops)
	return s, nil
}

// mountPprof serves net/http/pprof under /debug/pprof/ (the index and
// every named profile: heap, goroutine, allocs, block, mutex...; plus the
// CPU profile, the execution trace, cmdline and symbol). It is called for
// the operations listener only, and only with PAYGATE_PPROF_ENABLED: the
// package's side effect registers the same handlers on
// http.DefaultServeMux, which paygate never serves.
func mountPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// Handler returns the full handler chain, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// OpsHandler returns the operations listener's handler (/metrics, /readyz
// with details, /healthz, /debug/pprof/ when enabled), for tests that
// serve it themselves.
func (s *Server) OpsHandler() http.Handler { return s.ops }

// Router returns the root router, for tests that inspect the routes.
func (s *Server) Router() *mux.Router { return s.root }

// Start listens on the configured addresses, the operations listener
// first, and serves both in the background. Listening happens here, not in
// the goroutines, so a port already in use fails the start instead of
// being logged later.
func (s *Server) Start(context.Context) error {
	opsLn, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (PAYGATE_METRICS_ADDR): %w", s.cfg.MetricsAddr, err)
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		_ = opsLn.Close()
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	srv, opsSrv := s.newHTTPServer(s.handler, "http"), s.newHTTPServer(s.ops, "ops")
	s.mu.Lock()
	s.srv, s.ln, s.opsSrv, s.opsLn = srv, ln, opsSrv, opsLn
	s.mu.Unlock()
	s.serve(opsSrv, opsLn, "operations listener")
	s.serve(srv, ln, "http server")
	return nil
}

func (s *Server) newHTTPServer(h http.Handler, name string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          zap.NewStdLog(s.log.Named(name)),
	}
}

func (s *Server) serve(srv *http.Server, ln net.Listener, what string) {
	s.log.Info(what+" listening", zap.String("addr", ln.Addr().String()))
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error(what+" stopped", zap.Error(err))
		}
	}()
}

// Addr returns the address the public listener listens on, once started.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// MetricsAddr returns the address the operations listener listens on,
// once started.
func (s *Server) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opsLn == nil {
		return ""
	}
	return s.opsLn.Addr().String()
}

// Stop drains the server: /readyz answers 503 at once so that load
// balancers take this instance out of rotation, then after the drain delay
// the listener closes and in-flight requests get the shutdown timeout to
// finish. Consumers and the producer stop after this hook returns, because
// the server is the last component started. The operations listener
// closes last, so metrics are scraped while the public one drains.
func (s *Server) Stop(ctx context.Context) error {
	err := s.stopPublic(ctx)
	s.mu.Lock()
	opsSrv := s.opsSrv
	s.mu.Unlock()
	if opsSrv != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if oerr := opsSrv.Shutdown(sctx); oerr != nil {
			_ = opsSrv.Close()
		}
	}
	return err
}

func (s *Server) stopPublic(ctx context.Context) error {
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

// readinessReport is the body of /readyz. Checks, which names what
// failed, is only sent on the operations listener: an error text can carry
// host names and versions an attacker should not learn.
type readinessReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}

// readyz answers 200 when every check passes and 503 otherwise; with
// details, the body names each check's result.
func (s *Server) readyz(details bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := s.readiness(r.Context())
		status := http.StatusOK
		if rep.Status != "ok" {
			status = http.StatusServiceUnavailable
		}
		if !details {
			rep.Checks = nil
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(rep)
	})
}

func (s *Server) readiness(ctx context.Context) readinessReport {
	rep := readinessReport{Status: "ok", Checks: map[string]string{}}
	if s.draining.Load() {
		rep.Status = "unavailable"
		rep.Checks["draining"] = "shutting down"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
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
	return rep
}
