package idempotency

import (
	"context"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/periodic"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Provide builds the store and runs its hourly cleanup while the
// application runs.
func Provide(lc fx.Lifecycle, db *postgres.DB, cfg config.Money, log *zap.Logger) *Store {
	s := NewStore(db, cfg.IdempotencyRetention, log.Named("idempotency"))
	lc.Append(periodic.Hook(time.Hour, func(ctx context.Context) {
		if n, err := s.Cleanup(ctx); err != nil {
			s.log.Warn("idempotency cleanup failed", zap.Error(err))
		} else if n > 0 {
			s.log.Info("idempotency keys expired", zap.Int64("deleted", n))
		}
	}))
	return s
}

// Module is the idempotency fx module.
var Module = fx.Module("idempotency", fx.Provide(Provide))
