package idempotency

import (
	"context"
	"time"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Provide builds the store and runs its hourly cleanup while the
// application runs.
func Provide(lc fx.Lifecycle, db *postgres.DB, cfg config.Money, log *zap.Logger) *Store {
	s := NewStore(db, cfg.IdempotencyRetention, log.Named("idempotency"))
	stop := make(chan struct{})
	done := make(chan struct{})
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				t := time.NewTicker(time.Hour)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if n, err := s.Cleanup(context.Background()); err != nil {
							s.log.Warn("idempotency cleanup failed", zap.Error(err))
						} else if n > 0 {
							s.log.Info("idempotency keys expired", zap.Int64("deleted", n))
						}
					}
				}
			}()
			return nil
		},
		OnStop: func(ctx context.Context) error {
			close(stop)
			select {
			case <-done:
			case <-ctx.Done():
			}
			return nil
		},
	})
	return s
}

// Module is the idempotency fx module.
var Module = fx.Module("idempotency", fx.Provide(Provide))
