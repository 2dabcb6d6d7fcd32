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

	Notify         config.Notify
	Kafka          config.Kafka
	Store          *Store
	Producer       *kafka.Producer
	Sender         Sender
	Log            *zap.Logger
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
}

// ClaimLease is how long a delivery claim keeps other consumers off a mail:
// the longest conversation SMTPSender can have (MaxConversation), then one
// more SMTP timeout to record that the mail went out. It is also how long
// the mail of a consumer that died mid-conversation waits before another
// sends it: 50 s with the default timeout, so that consumer lag is back
// to 0 within a minute of a killed gateway's restart.
func ClaimLease(cfg config.SMTP) time.Duration { return MaxConversation(cfg) + cfg.Timeout }

// SenderParams are what the SMTP sender needs in the fx graph.
type SenderParams struct {
	fx.In

	Lifecycle     fx.Lifecycle
	SMTP          config.SMTP
	MeterProvider metric.MeterProvider
}

// ProvideSender returns the SMTP sender as the consumer's Sender; a test
// may replace it with fx.Decorate. Its idle connections are closed on
// stop, after the consumer has stopped (its hook was appended first).
func ProvideSender(p SenderParams) (Sender, error) {
	s, err := NewSMTPSender(p.SMTP, p.MeterProvider)
	if err != nil {
		return nil, err
	}
	p.Lifecycle.Append(fx.StopHook(s.Close))
	return s, nil
}

// ProvideStore returns the delivery store.
func ProvideStore(pool *pgxpool.Pool, cfg config.SMTP) *Store { return NewStore(pool, ClaimLease(cfg)) }

// ProvideConsumer builds the consumer.
func ProvideConsumer(p Params) (*Consumer, error) {
	return NewConsumer(ConsumerParams{
		Config: p.Notify, Kafka: p.Kafka, Store: p.Store, Sender: p.Sender,
		Publisher: p.Producer, TracerProvider: p.TracerProvider, MeterProvider: p.MeterProvider,
		Propagator: p.Propagator, Log: p.Log.Named("notify"),
	})
}

// RunParams are what running the consumer needs.
type RunParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Consumer  *Consumer
	Store     *Store
	Notify    config.Notify
	Lag       *kafka.LagMonitor
	Log       *zap.Logger
}

// run, when the consumer is enabled, runs it with the application, watches
// its lag and prunes old delivery records hourly. The consumer is
// constructed after the producer, so on stop it finishes and commits the
// record in hand before the producer closes.
func run(p RunParams) {
	if !p.Notify.Enabled {
		return
	}
	p.Lifecycle.Append(fx.Hook{OnStart: p.Consumer.Start, OnStop: p.Consumer.Stop})
	p.Lag.Watch(p.Notify.Group, p.Consumer.Topics())
	p.Lifecycle.Append(periodic.Hook(time.Hour, func(ctx context.Context) {
		n, err := p.Store.Prune(ctx, time.Now().Add(-p.Notify.DeliveryRetention))
		if err != nil {
			p.Log.Warn("pruning delivery records failed", zap.Error(err))
		} else if n > 0 {
			p.Log.Info("delivery records pruned", zap.Int64("deleted", n))
		}
	}))
}

// Module is the email consumer's fx module: the SMTP sender, the consumer
// (running whenever the module is in the graph and it is enabled) and its
// retry and dead-letter topics, created with the others when topic
// creation is on.
var Module = fx.Module("notify",
	fx.Provide(
		ProvideSender,
		ProvideStore,
		ProvideConsumer,
		kafka.AsTopic(func(n config.Notify) kafka.TopicSpec { return kafka.TopicSpec{Name: n.RetryTopic} }),
		kafka.AsTopic(func(n config.Notify) kafka.TopicSpec { return kafka.TopicSpec{Name: n.DLQTopic} }),
		kafka.AsDeadLetterQueue(func(n config.Notify) kafka.DeadLetterQueue {
			return kafka.DeadLetterQueue{Consumer: "email", Group: n.Group, Topic: n.DLQTopic, RetryTopic: n.RetryTopic}
		}),
	),
	fx.Invoke(run),
)
