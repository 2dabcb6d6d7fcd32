// Package app assembles paygate's fx application from the platform and
// domain modules. It is the only place that knows the whole graph.
package app

import (
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/paygate/paygate/internal/apidocs"
	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/callbacks"
	"github.com/paygate/paygate/internal/deadletters"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/payout"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/platform/telemetry"
	"github.com/paygate/paygate/internal/provider/xendit"
	"github.com/paygate/paygate/internal/reconcile"
	"github.com/paygate/paygate/internal/saldo"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/transfer"
	"github.com/paygate/paygate/internal/users"
	"github.com/paygate/paygate/internal/withdraw"
)

// Options returns the application's fx options. extra options (tests add
// routes or replace parts) go before the HTTP server's start hook.
//
// Start order, and so the reverse stop order, is deliberate: telemetry
// first (its flush runs last), then Postgres and migrations, the Kafka
// producer, the outbox relay and consumers, and the HTTP server last, so
// that on SIGTERM the server drains first, then consumers and the relay
// finish their work in hand, then the producer and pool close.
func Options(cfg config.Config, log *zap.Logger, extra ...fx.Option) fx.Option {
	return fx.Options(
		fx.WithLogger(func() fxevent.Logger {
			l := &fxevent.ZapLogger{Logger: log.Named("fx")}
			l.UseLogLevel(zapcore.DebugLevel)
			return l
		}),
		fx.Supply(log),
		config.Module(cfg),
		telemetry.Module,
		postgres.Module,
		kafka.Module,
		outbox.Module,
		httpserver.Module,
		idempotency.Module,
		users.Module,
		auth.Module,
		ledger.Module,
		saldo.Module,
		topup.Module,
		transfer.Module,
		withdraw.Module,
		xendit.Module,
		payout.Module,
		callbacks.Module,
		deadletters.Module,
		reconcile.Module,
		notify.Module,
		apidocs.Module,
		fx.Options(extra...),
		fx.StartTimeout(60*time.Second),
		fx.StopTimeout(cfg.HTTP.DrainDelay+cfg.HTTP.ShutdownTimeout+30*time.Second),
		httpserver.Run,
	)
}
