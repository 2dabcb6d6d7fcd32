// Package periodic runs housekeeping work (expiring idempotency keys,
// pruning delivery records) on a ticker for as long as the application
// runs.
package periodic

import (
	"context"
	"time"

	"go.uber.org/fx"
)

// Hook returns lifecycle hooks that call run once right after start and
// then every interval until stop: a process restarted more often than the
// interval still does its housekeeping. run gets a context that is cancelled on stop, so a long run does
// not hold the shutdown up; OnStop waits for it to return, or for the stop
// deadline.
func Hook(interval time.Duration, run func(context.Context)) fx.Hook {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	return fx.Hook{
		OnStart: func(context.Context) error {
			go func() {
				defer close(done)
				t := time.NewTicker(interval)
				defer t.Stop()
				run(ctx)
				for {
					select {
					case <-ctx.Done():
						return
					case <-t.C:
						run(ctx)
					}
				}
			}()
			return nil
		},
		OnStop: func(stopCtx context.Context) error {
			cancel()
			select {
			case <-done:
			case <-stopCtx.Done():
			}
			return nil
		},
	}
}
