package periodic_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"
)

func TestHookRunsUntilStopAndStopCancelsARun(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	started := make(chan struct{}, 16)
	cancelled := make(chan struct{})
	h := periodic.Hook(5*time.Millisecond, func(ctx context.Context) {
		if runs.Add(1) == 3 {
			// The third run blocks until the stop cancels it.
			started <- struct{}{}
			<-ctx.Done()
			close(cancelled)
		}
	})
	if err := h.OnStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d runs after 5s, want 3", runs.Load())
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.OnStop(stopCtx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("OnStop returned before the run in progress saw its context cancelled")
	}
	n := runs.Load()
	time.Sleep(30 * time.Millisecond)
	if runs.Load() != n {
		t.Fatalf("runs went on after stop: %d then %d", n, runs.Load())
	}
}

func TestHookRunsAtStart(t *testing.T) {
	t.Parallel()
	ran := make(chan struct{}, 1)
	h := periodic.Hook(time.Hour, func(context.Context) {
		select {
		case ran <- struct{}{}:
		default:
		}
	})
	if err := h.OnStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.OnStop(context.Background()) }()
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("no run at start with an hourly interval")
	}
}

func TestSleepWaitsOrStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	if !periodic.Sleep(ctx, 20*time.Millisecond) || time.Since(start) < 20*time.Millisecond {
		t.Fatal("Sleep did not wait its duration on a live context")
	}
	if !periodic.Sleep(ctx, 0) {
		t.Fatal("Sleep(0) on a live context reported it ended")
	}
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	start = time.Now()
	if periodic.Sleep(ctx, time.Minute) {
		t.Fatal("Sleep reported a cancelled context alive")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Sleep returned %v after its context ended", took)
	}
	if periodic.Sleep(ctx, 0) {
		t.Fatal("Sleep(0) on an ended context reported it alive")
	}
}
