package topup

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
	return NewService(p.DB, p.Keys, p.Ledger, p.Users, p.Money, p.Kafka.TopicTopup, m), nil
}

// prepareFunding creates the funding accounts at start, after migrations.
func prepareFunding(lc fx.Lifecycle, s *Service) {
	lc.Append(fx.StartHook(s.PrepareFundingAccounts))
}

// Module is the top-up fx module.
var Module = fx.Module("topup",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicTopup} }),
	),
	fx.Invoke(prepareFunding),
)
