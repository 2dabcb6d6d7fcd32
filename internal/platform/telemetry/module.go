package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Params are the dependencies of the telemetry module.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Log       *zap.Logger
}

// Result exposes the providers through their API interfaces.
type Result struct {
	fx.Out

	Telemetry      *Telemetry
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// Provide builds the telemetry and flushes it when the application stops.
// Its stop hook runs after every other module's, because it is constructed
// before them.
func Provide(p Params) (Result, error) {
	t, err := New(context.Background())
	if err != nil {
		return Result{}, err
	}
	t.installGlobals(p.Log)
	p.Lifecycle.Append(fx.StopHook(t.Shutdown))
	return Result{Telemetry: t, MeterProvider: t.MeterProvider, TracerProvider: t.TracerProvider, Propagator: t.Propagator}, nil
}

// Module is the telemetry fx module.
var Module = fx.Module("telemetry", fx.Provide(Provide))
