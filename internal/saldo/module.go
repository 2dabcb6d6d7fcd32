package saldo

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/users"
)

// HandlerParams are the dependencies of the saldo handler.
type HandlerParams struct {
	fx.In

	Ledger       *ledger.Store
	Users        *users.Store
	Verification *ledger.Verification
	Pool         *pgxpool.Pool
	Auth         authn.Authenticator
	Log          *zap.Logger
}

// ProvideHandler builds the saldo handler.
func ProvideHandler(p HandlerParams) *Handler {
	return NewHandler(p.Ledger, p.Users, p.Verification, p.Pool, p.Auth, p.Log)
}

// Module is the saldo fx module: the saldo routes, and the wallet hooks
// that the auth and users domains call.
var Module = fx.Module("saldo",
	fx.Provide(
		httpserver.AsRoutes(ProvideHandler),
		func(l *ledger.Store, cfg config.Money) *Wallets { return NewWallets(l, cfg.Currency) },
		auth.AsAccountHook(func(w *Wallets) *Wallets { return w }),
		func(w *Wallets) users.MoneyHolder { return w },
	),
)
