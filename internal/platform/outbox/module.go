package outbox

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
)

// Params are the dependencies of the relay.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Pool      *pgxpool.Pool
	Producer  *kafka.Producer
	Config    config.Outbox
	Log       *zap.Logger
	Tracer    trace.TracerProvider
	Meter     metric.MeterProvider
}

// ProvideRelay builds the relay, ties it to the application lifecycle and
// exports the backlog gauges. The module provides and invokes it: the
// relay runs whenever the module is part of the application, and domains
// that enqueue without a NOTIFY wake it (see QueueMany).
func ProvideRelay(p Params) (*Relay, error) {
	r := NewRelay(p.Pool, p.Producer, p.Config, p.Log.Named("outbox"), p.Tracer)
	if err := RegisterMetrics(p.Meter, p.Pool); err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: r.Start, OnStop: r.Stop})
	return r, nil
}

// Module is the outbox fx module: the relay, run for as long as the
// application.
var Module = fx.Module("outbox", fx.Provide(ProvideRelay), fx.Invoke(func(*Relay) {}))
