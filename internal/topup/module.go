package topup

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/periodic"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// Params are what the top-up service is built from: a movement
// service's, and the payment provider.
type Params struct {
	fx.In
	movement.Params

	Payments provider.Client
}

// ProvideService builds the service.
func ProvideService(p Params) (*Service, error) {
	m, err := newMetrics(p.MeterProvider)
	if err != nil {
		return nil, err
	}
	return NewService(p.DB, p.Keys, p.Ledger, p.Users, p.Payments, p.Money, p.Provider.TopupExpiry, p.Kafka.TopicTopup, m), nil
}

// JobParams are the dependencies of the top-up's background jobs.
type JobParams struct {
	fx.In

	Lifecycle fx.Lifecycle
	Service   *Service
	Pool      *pgxpool.Pool
	Provider  config.Provider
	Money     config.Money
	Log       *zap.Logger
}

// pollLockKey names the advisory lock that lets one replica at a time
// poll the provider about pending top-ups.
const pollLockKey = "paygate.topup.poll"

// pollBatch bounds the top-ups one poll asks about.
const pollBatch = 100

// runJobs polls the provider about top-ups whose callback has not come
// (one replica at a time), and forgets idempotency intents an hour before
// the keys they belong to: once the key is gone a retry is a new request,
// and while the key is there a retry is a replay that needs no intent.
func runJobs(p JobParams) {
	log := p.Log.Named("topup")
	p.Lifecycle.Append(periodic.Hook(p.Provider.PollInterval, func(ctx context.Context) {
		_, err := postgres.WithSessionLock(ctx, p.Pool, pollLockKey, func(ctx context.Context) error {
			n, err := p.Service.PollPayments(ctx, p.Provider.PollAfter, p.Provider.ExpiryGrace, pollBatch)
			if n > 0 {
				log.Info("poller ended top-ups whose callback had not come", zap.Int("ended", n))
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			log.Warn("top-up poll failed", zap.Error(err))
		}
	}))
	p.Lifecycle.Append(periodic.Hook(time.Hour, func(ctx context.Context) {
		cutoff := time.Now().Add(-max(p.Money.IdempotencyRetention-time.Hour, time.Hour))
		if _, err := p.Service.store.DeleteIntents(ctx, p.Pool, cutoff); err != nil && ctx.Err() == nil {
			log.Warn("top-up intent cleanup failed", zap.Error(err))
		}
	}))
}

// Module is the top-up fx module.
var Module = fx.Module("topup",
	fx.Provide(
		ProvideService,
		httpserver.AsRoutes(NewHandler),
		kafka.AsTopic(func(k config.Kafka) kafka.TopicSpec { return kafka.TopicSpec{Name: k.TopicTopup} }),
	),
	fx.Invoke(runJobs),
)
