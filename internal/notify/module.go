package notify

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/periodic"
)

// Params are the dependencies of the consumer in the fx graph.
type Params struct {
	fx.In

	Lifecycle      fx.Lifecycle
	Notify         config.Notify
	SMTP           config.SMTP
	Kafka          config.Kafka
	Pool           *pgxpool.Pool
	Producer       *kafka.Producer
	Sender         Sender
	Log            *zap.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Lag            *kafka.LagMonitor
}

// ClaimLease is how long a delivery claim keeps other consumers off a mail:
// ten SMTP timeouts, more than the longest conversation (go-mail applies
// the timeout to connecting and to each command).
func ClaimLease(cfg config.SMTP) time.Duration { return 10 * cfg.Timeout }

// ProvideSender returns the SMTP sender as the consumer's Sender; a test
// may replace it with fx.Decorate.
func ProvideSender(cfg config.SMTP) (Sender, error) {
	return NewSMTPSender(cfg)
}

// ProvideConsumer builds the consumer and, when enabled, ties it to the
// lifecycle and to the lag monitor. It is
// constructed after the producer, so on stop it finishes and commits the
// record in hand before the producer closes.
func ProvideConsumer(p Params) (*Consumer, error) {
	store := NewStore(p.Pool, ClaimLease(p.SMTP))
	c, err := NewConsumer(Deps{
		Config: p.Notify, Kafka: p.Kafka, Store: store, Sender: p.Sender,
		Publisher: p.Producer, TracerProvider: p.TracerProvider, MeterProvider: p.MeterProvider,
		Propagator: p.Propagator, Log: p.Log.Named("notify"),
	})
	if err != nil {
		return nil, err
	}
	if p.Notify.Enabled {
		p.Lifecycle.Append(fx.Hook{OnStart: c.Start, OnStop: c.Stop})
		p.Lag.Watch(p.Notify.Group, c.Topics())
		p.Lifecycle.Append(periodic.Hook(time.Hour, func(ctx context.Context) {
			n, err := store.Prune(ctx, time.Now().Add(-p.Notify.DeliveryRetention))
			if err != nil {
				p.Log.Warn("pruning delivery records failed", zap.Error(err))
			} else if n > 0 {
				p.Log.Info("delivery records pruned", zap.Int64("deleted", n))
			}
		}))
	}
	return c, nil
}

// Module is the email consumer's fx module: the SMTP sender, the consumer
// (running whenever the module is in the graph) and its retry and
// dead-letter topics, created with the others when topic creation is on.
var Module = fx.Module("notify",
	fx.Provide(
		ProvideSender,
		ProvideConsumer,
		kafka.AsTopic(func(n config.Notify) kafka.TopicSpec { return kafka.TopicSpec{Name: n.RetryTopic} }),
		kafka.AsTopic(func(n config.Notify) kafka.TopicSpec { return kafka.TopicSpec{Name: n.DLQTopic} }),
	),
	fx.Invoke(func(*Consumer) {}),
)
