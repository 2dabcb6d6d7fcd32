package outbox

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
)

// Params are the dependencies of the relay.
type Params struct {
	fx.In

	Lifecycle fx.Lifecycle
	Pool      *pgxpool.Pool
	Producer  *kafka.Producer
	Config    config.Outbox
	Log       *zap.Logger
}

// ProvideRelay builds the relay and ties it to the application lifecycle.
func ProvideRelay(p Params) *Relay {
	r := NewRelay(p.Pool, p.Producer, p.Config, p.Log.Named("outbox"))
	p.Lifecycle.Append(fx.Hook{OnStart: r.Start, OnStop: r.Stop})
	return r
}

// Module is the outbox fx module. The relay runs whenever the module is
// part of the application.
var Module = fx.Module("outbox",
	fx.Provide(ProvideRelay),
	fx.Invoke(func(*Relay) {}),
)
