package periodic

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends, and reports whether ctx is still
// alive. A d of zero or less does not wait. It is the one wait of the
// retry and backoff loops (consumers, the provider client, the sandbox's
// deliveries), so that each stops at once when its context ends.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
