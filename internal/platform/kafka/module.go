package kafka

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
)

// ProducerParams are the dependencies of the producer. Domains contribute
// the topics they publish to through the "kafka_topics" group.
type ProducerParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Config    config.Kafka
	Log       *zap.Logger
	Topics    []TopicSpec `group:"kafka_topics"`
}

// ProvideProducer builds the producer and closes it on stop. Because the
// producer is constructed before the relay and the consumers, its stop hook
// runs after theirs. A client configuration that cannot be built (an
// unreadable CA file, a key that does not match its certificate) fails the
// start here rather than in every reconnection later; the files are read
// again on each connection, so rotated certificates are picked up.
func ProvideProducer(p ProducerParams) (*Producer, error) {
	if _, err := NewSaramaConfig(p.Config); err != nil {
		return nil, err
	}
	prod := NewProducer(p.Config, p.Topics, p.Log.Named("kafka"))
	p.Lifecycle.Append(fx.Hook{
		// Connecting at start creates the topics (when allowed) before the
		// consumers ask for them. It runs in the background: brokers that
		// are away must not stop the process, the relay reconnects later.
		OnStart: func(context.Context) error {
			go func() {
				if _, err := prod.connect(); err != nil {
					p.Log.Warn("kafka unreachable at start; will retry on first publish", zap.Error(err))
				}
			}()
			return nil
		},
		OnStop: func(context.Context) error { return prod.Close() },
	})
	return prod, nil
}

// AsTopic annotates a constructor returning a TopicSpec for the
// "kafka_topics" group.
func AsTopic(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"kafka_topics"`))
}

// ProvideLagMonitor builds the consumer lag monitor; consumers Watch their
// group on it. It polls every 15 seconds while the application runs.
func ProvideLagMonitor(lc fx.Lifecycle, cfg config.Kafka, mp metric.MeterProvider, log *zap.Logger) (*LagMonitor, error) {
	m, err := NewLagMonitor(cfg, mp, 15*time.Second, log.Named("kafka"))
	if err != nil {
		return nil, err
	}
	lc.Append(fx.Hook{OnStart: m.Start, OnStop: m.Stop})
	return m, nil
}

// Module is the kafka fx module.
var Module = fx.Module("kafka", fx.Provide(ProvideProducer, ProvideLagMonitor))
