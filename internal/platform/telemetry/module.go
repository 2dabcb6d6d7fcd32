package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"
)

// Result exposes the providers through their API interfaces.
type Result struct {
	fx.Out

	Telemetry      *Telemetry
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
}

// Provide builds the telemetry.
func Provide() (Result, error) {
	t, err := New(context.Background())
	if err != nil {
		return Result{}, err
	}
	return Result{Telemetry: t, MeterProvider: t.MeterProvider, TracerProvider: t.TracerProvider, Propagator: t.Propagator}, nil
}

// install makes the providers the process's globals and flushes them when
// the application stops. The module invokes it first of all, so its stop
// hook runs after every other module's.
func install(lc fx.Lifecycle, t *Telemetry, log *zap.Logger) {
	t.installGlobals(log)
	lc.Append(fx.StopHook(t.Shutdown))
}

// Module is the telemetry fx module.
var Module = fx.Module("telemetry", fx.Provide(Provide), fx.Invoke(install))
