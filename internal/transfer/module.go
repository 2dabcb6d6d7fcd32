package transfer

import (
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
)

// ProvideService builds the service.
func ProvideService(p movement.Params) (*Service, error) {
	m, err := newMetrics(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	return NewService(p.DB, p.Keys, p.Ledger, p.Users, p.Money, p.Kafka.TopicTransfer, m), nil
}

// Module is the transfer fx module.
var Module = fx.Module("transfer",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicTransfer} }),
	),
)
