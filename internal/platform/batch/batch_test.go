package batch_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/paygate/paygate/internal/platform/batch"
)

// recorder is a Process that records the batches it is given and blocks
// each one until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	started chan struct{}
	release chan struct{}
}

func (r *recorder) process(_ context.Context, items []int) []batch.Result[int] {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	r.started <- struct{}{}
	<-r.release
	out := make([]batch.Result[int], len(items))
	for i, it := range items {
		out[i].Value = it * 10
	}
	return out
}

// TestABatchTakesWhatQueuedWhileTheWorkersWereBusy: with its one worker
// busy, items that arrive one by one wait together, and when the worker
// frees up they go as one batch, not as the first alone and the rest
// after it. Every caller gets its own result.
func TestABatchTakesWhatQueuedWhileTheWorkersWereBusy(t *testing.T) {
	r := &recorder{started: make(chan struct{}, 10), release: make(chan struct{})}
	c, err := batch.New("test", r.process, batch.Options{Workers: 1, MaxSize: 16}, noop.NewMeterProvider())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	results := make([]int, 6)
	var wg sync.WaitGroup
	submit := func(i int) {
		wg.Go(func() {
			v, err := c.Do(context.Background(), i)
			if err != nil {
				t.Errorf("item %d: %v", i, err)
			}
			results[i] = v
		})
	}
	submit(0)
	<-r.started // the worker is busy with item 0
	for i := 1; i < 6; i++ {
		submit(i)
		time.Sleep(20 * time.Millisecond) // each arrives alone
	}
	close(r.release)
	<-r.started
	wg.Wait()
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) != 2 || len(r.batches[0]) != 1 || len(r.batches[1]) != 5 {
		t.Fatalf("batches %v, want [0] and then the five that queued behind it", r.batches)
	}
	for i, v := range results {
		if v != i*10 {
			t.Fatalf("item %d answered %d, want %d", i, v, i*10)
		}
	}
}
