package callbacks

import (
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/withdraw"
)

// Params are the dependencies of the inbox.
type Params struct {
	fx.In

	DB            *postgres.DB
	TopUps        *topup.Service
	Withdrawals   *withdraw.Service
	MeterProvider metric.MeterProvider
	Log           *zap.Logger
}

// ProvideInbox builds the inbox.
func ProvideInbox(p Params) (*Inbox, error) {
	return NewInbox(p.DB, p.TopUps, p.Withdrawals, p.MeterProvider, p.Log.Named("callbacks"))
}

// Module is the callbacks fx module.
var Module = fx.Module("callbacks",
	fx.Provide(
		ProvideInbox,
		httpserver.AsRoutes(func(cfg config.Provider, v provider.CallbackVerifier, in *Inbox, db *postgres.DB,
			auth authn.Authenticator, log *zap.Logger) *Handler {
			return NewHandler(provider.Name(cfg.Name), v, in, db.Pool, auth, log)
		}),
	),
)
