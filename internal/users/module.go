package users

import (
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// ServiceParams are the dependencies of the service. MoneyHolder is
// optional so the users domain works before and without a ledger.
type ServiceParams struct {
	fx.In

	DB      *postgres.DB
	Store   *Store
	Revoker SessionRevoker
	Money   MoneyHolder `optional:"true"`
}

// ProvideService builds the service from injected dependencies.
func ProvideService(p ServiceParams) *Service {
	return NewService(p.DB, p.Store, p.Revoker, p.Money)
}

// Module is the users fx module.
var Module = fx.Module("users",
	fx.Provide(NewStore, ProvideService, httpserver.AsRoutes(NewHandler)),
)
