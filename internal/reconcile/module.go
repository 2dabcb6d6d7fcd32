package reconcile

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/periodic"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/withdraw"
)

// Build returns the reconciler of the provider client against the top-up
// and withdrawal books in pool: the whole of what reconciliation reads,
// for the application and for `paygate reconcile` alike.
func Build(client provider.Client, pool *pgxpool.Pool) *Reconciler {
	return New(client.Name(), client, topup.Store{}, withdraw.Store{}, pool)
}

// ScheduleParams are the dependencies of the scheduled reconciliation.
type ScheduleParams struct {
	fx.In

	Reconciler    *Reconciler
	Pool          *pgxpool.Pool
	Config        config.Provider
	MeterProvider metric.MeterProvider
	Log           *zap.Logger
}

// ProvideSchedule builds the schedule over PAYGATE_RECONCILE_WINDOW. Its
// window ends a poll delay plus a poll interval ago: by then paygate has
// booked whatever the provider settled, from its callback or, the
// callback lost, from the poller.
func ProvideSchedule(p ScheduleParams) (*Schedule, error) {
	return NewSchedule(p.Reconciler, p.Pool, p.Config.ReconcileWindow, p.Config.PollAfter+p.Config.PollInterval,
		p.MeterProvider, p.Log.Named("reconcile"))
}

// schedule runs the reconciliation right after start, so that the gauges
// have a value as soon as the process is up, and then every
// PAYGATE_RECONCILE_INTERVAL.
func schedule(lc fx.Lifecycle, s *Schedule, cfg config.Provider) {
	lc.Append(periodic.Hook(cfg.ReconcileInterval, func(ctx context.Context) {
		if _, err := s.RunScheduled(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled reconciliation failed to run", zap.Error(err))
		}
	}))
}

// Module is the reconciliation fx module: the reconciler, its schedule
// and the admin endpoint.
var Module = fx.Module("reconcile",
	fx.Provide(
		Build,
		ProvideSchedule,
		httpserver.AsRoutes(func(r *Reconciler, auth authn.Authenticator, log *zap.Logger) *Handler {
			return NewHandler(r, auth, log)
		}),
	),
	fx.Invoke(schedule),
)
