package payout

import (
	"context"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/periodic"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/withdraw"
)

// Params are the dependencies of the payout processor and poller.
type Params struct {
	fx.In

	Lifecycle      fx.Lifecycle
	Kafka          config.Kafka
	Config         config.Payout
	ProviderConfig config.Provider
	Provider       provider.Client
	Withdrawals    *withdraw.Service
	Pool           *pgxpool.Pool
	TracerProvider trace.TracerProvider
	Propagator     propagation.TextMapPropagator
	MeterProvider  metric.MeterProvider
	Log            *zap.Logger
	Lag            *kafka.LagMonitor
	Producer       *kafka.Producer
}

// pollLockKey names the advisory lock that lets one replica at a time
// poll the provider about pending payouts.
const pollLockKey = "paygate.payout.poll"

// pollBatch bounds the payouts one poll asks about.
const pollBatch = 100

// run builds the processor and, when enabled, runs its consumer group with
// the application (on stop the payout in hand is finished and committed)
// and the poller that asks the provider about payouts whose callback has
// not come.
func run(p Params) error {
	log := p.Log.Named("payout")
	proc, err := NewProcessor(p.Provider, p.Withdrawals, p.TracerProvider, p.Propagator, p.MeterProvider, log)
	if err != nil {
		return err
	}
	if !p.Config.Enabled {
		return nil
	}
	runner, err := kafka.NewGroupRunner(p.Kafka, p.Config.Group, []string{p.Kafka.TopicWithdraw}, proc.Handle, log,
		kafka.WithRetry(kafka.RetryPolicy{RetryTopic: p.Config.RetryTopic, DLQTopic: p.Config.DLQTopic,
			MaxAttempts: p.Config.MaxAttempts, Backoff: p.Config.RetryBackoff, MaxBackoff: config.MaxPayoutRetryBackoff,
			Publisher: p.Producer, Propagator: p.Propagator}, p.MeterProvider))
	if err != nil {
		return err
	}
	p.Lifecycle.Append(fx.Hook{OnStart: runner.Start, OnStop: runner.Stop})
	p.Lag.Watch(p.Config.Group, runner.Topics())
	if group, topics := runner.RetryGroup(); group != "" {
		p.Lag.Watch(group, topics)
	}
	p.Lifecycle.Append(periodic.Hook(p.ProviderConfig.PollInterval, func(ctx context.Context) {
		_, err := postgres.WithSessionLock(ctx, p.Pool, pollLockKey, func(ctx context.Context) error {
			n, err := p.Withdrawals.PollPayouts(ctx, p.Provider, p.ProviderConfig.PollAfter, pollBatch)
			if n > 0 {
				log.Info("poller settled payouts whose callback had not come", zap.Int("settled", n))
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("payout poll failed", zap.Error(err))
		}
	}))
	return nil
}

// Module is the payout fx module: the processor and poller, and the
// processor's retry and dead-letter topics.
var Module = fx.Module("payout",
	fx.Provide(
		kafka.AsTopic(func(c config.Payout) kafka.TopicSpec { return kafka.TopicSpec{Name: c.RetryTopic} }),
		kafka.AsTopic(func(c config.Payout) kafka.TopicSpec { return kafka.TopicSpec{Name: c.DLQTopic} }),
		kafka.AsDeadLetterQueue(func(c config.Payout) kafka.DeadLetterQueue {
			return kafka.DeadLetterQueue{Consumer: "payouts", Group: c.Group, Topic: c.DLQTopic, RetryTopic: c.RetryTopic}
		}),
	),
	fx.Invoke(run))
