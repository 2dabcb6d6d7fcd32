package httpserver

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/telemetry"
)

// Params are the dependencies of the HTTP server. Domains contribute routes
// to the "routes" group and readiness checks to the "readiness" group.
type Params struct {
	fx.In

	Config         config.HTTP
	Log            *zap.Logger
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	Telemetry      *telemetry.Telemetry
	Checks         []Check     `group:"readiness"`
	Registrars     []Registrar `group:"routes"`
}

// NewFromParams builds the server from injected dependencies.
func NewFromParams(p Params) (*Server, error) {
	return New(Options{
		Config:         p.Config,
		Log:            p.Log,
		MeterProvider:  p.MeterProvider,
		TracerProvider: p.TracerProvider,
		Propagator:     p.Propagator,
		Metrics:        p.Telemetry.MetricsHandler(),
		Checks:         p.Checks,
		Registrars:     p.Registrars,
	})
}

// AsRoutes annotates a constructor whose result registers routes.
func AsRoutes(f any) any {
	return fx.Annotate(f, fx.As(new(Registrar)), fx.ResultTags(`group:"routes"`))
}

// AsCheck annotates a constructor returning a readiness Check.
func AsCheck(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"readiness"`))
}

// Module provides the server. Register its lifecycle with Run, as the last
// invoke of the application, so that it starts last and stops first.
var Module = fx.Module("httpserver", fx.Provide(NewFromParams))

// Run starts and stops the server with the application.
var Run = fx.Invoke(func(lc fx.Lifecycle, s *Server) {
	lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
})
