package payout

import (
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/withdraw"
)

// Params are the dependencies of the payout processor.
type Params struct {
	fx.In

	Lifecycle      fx.Lifecycle
	Kafka          config.Kafka
	Config         config.Payout
	Withdrawals    *withdraw.Service
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	MeterProvider  metric.MeterProvider
	Log            *zap.Logger
	Lag            *kafka.LagMonitor
}

// run builds the processor and, when enabled, runs its consumer group with
// the application: on stop the payout in hand is finished and committed.
func run(p Params) error {
	bank := BankSimulator{Latency: p.Config.SimLatency, FailureRate: p.Config.SimFailureRate}
	log := p.Log.Named("payout")
	proc, err := NewProcessor(bank, p.Withdrawals, p.TracerProvider, p.Propagator, p.MeterProvider, log)
	if err != nil {
		return err
	}
	if p.Config.Enabled {
		runner := kafka.NewGroupRunner(p.Kafka, p.Config.Group, []string{p.Kafka.TopicWithdraw}, proc.Handle, log)
		p.Lifecycle.Append(fx.Hook{OnStart: runner.Start, OnStop: runner.Stop})
		p.Lag.Watch(p.Config.Group, []string{p.Kafka.TopicWithdraw})
	}
	return nil
}

// Module is the payout fx module.
var Module = fx.Module("payout", fx.Invoke(run))
