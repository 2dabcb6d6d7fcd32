package kafka

import (
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
// runs after theirs.
func ProvideProducer(p ProducerParams) *Producer {
	prod := NewProducer(p.Config, p.Topics, p.Log.Named("kafka"))
	p.Lifecycle.Append(fx.StopHook(prod.Close))
	return prod
}

// AsTopic annotates a constructor returning a TopicSpec for the
// "kafka_topics" group.
func AsTopic(f any) any {
	return fx.Annotate(f, fx.ResultTags(`group:"kafka_topics"`))
}

// Module is the kafka fx module.
var Module = fx.Module("kafka", fx.Provide(ProvideProducer))
