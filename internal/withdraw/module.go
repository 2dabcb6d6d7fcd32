package withdraw

import (
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/provider"
)

// ProvideService builds the service.
func ProvideService(p movement.Params) (*Service, error) {
	m, err := newMetrics(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	return NewService(p.DB, p.Keys, p.Ledger, p.Users, p.Money, p.Kafka.TopicWithdraw, provider.Name(p.Provider.Name), m), nil
}

// Module is the withdrawal fx module.
var Module = fx.Module("withdraw",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
		ledger.AsHoldOwner(func() Store { return Store{} }),
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicWithdraw} }),
	),
)
