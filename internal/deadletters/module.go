package deadletters

import (
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Params are the dependencies of the service.
type Params struct {
	fx.In

	Queues        []kafka.DeadLetterQueue `group:"dead_letter_queues"`
	Kafka         config.Kafka
	Producer      *kafka.Producer
	DB            *postgres.DB
	MeterProvider metric.MeterProvider
}

// ProvideService builds the service over every registered dead-letter
// queue.
func ProvideService(p Params) (*Service, error) {
	return NewService(p.Queues, kafka.NewTopicReader(p.Kafka), p.Producer, p.DB, p.MeterProvider)
}

// Module is the dead-letters fx module.
var Module = fx.Module("deadletters",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
	),
)
