package batch_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

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
	c, err := batch.New("test", r.process, batch.Options[int]{Workers: 1, MaxSize: 16}, noop.NewMeterProvider())
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

// gated is a Process over items that name their keys: each batch reports
// itself on started and then waits until its first item's gate closes.
type gated struct {
	started chan []string
	mu      sync.Mutex
	gates   map[string]chan struct{}
	// over opens every gate, those of batches yet to start too.
	over bool
}

func newGated() *gated {
	return &gated{started: make(chan []string, 10), gates: map[string]chan struct{}{}}
}

func (g *gated) gate(item string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[item] == nil {
		g.gates[item] = make(chan struct{})
		if g.over {
			close(g.gates[item])
		}
	}
	return g.gates[item]
}

func (g *gated) process(_ context.Context, items []string) []batch.Result[string] {
	g.started <- slices.Clone(items)
	<-g.gate(items[0])
	out := make([]batch.Result[string], len(items))
	for i, it := range items {
		out[i].Value = it + " booked"
	}
	return out
}

// next is the next batch started, or nil after a while.
func (g *gated) next(wait time.Duration) []string {
	select {
	case b := <-g.started:
		return b
	case <-time.After(wait):
		return nil
	}
}

// expect fails t unless the next batch started is want; what names it
// and why in the message.
func (g *gated) expect(t *testing.T, what, why string, want ...string) {
	t.Helper()
	if b := g.next(5 * time.Second); !slices.Equal(b, want) {
		t.Fatalf("%s %v, want %s", what, b, why)
	}
}

// withAInFlight starts a committer with two workers whose item "B:x,y"
// has the keys x and y, and has it book a batch of "A:x" that stays in
// flight until its gate closes.
func withAInFlight(t *testing.T, mp metric.MeterProvider) (*gated, *batch.Committer[string, string], func(string)) {
	t.Helper()
	g := newGated()
	c, submit := keyedWith(t, g, 2, mp)
	submit("A:x")
	g.expect(t, "first batch", "[A:x]", "A:x")
	return g, c, submit
}

// keyedWith starts a committer whose item "A:x,y" has the keys x and y.
func keyedWith(t *testing.T, g *gated, workers int, mp metric.MeterProvider) (*batch.Committer[string, string], func(string)) {
	t.Helper()
	keys := func(it string) []string {
		_, ks, _ := strings.Cut(it, ":")
		return strings.Split(ks, ",")
	}
	c, err := batch.New("test", g.process, batch.Options[string]{Workers: workers, Keys: keys}, mp)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		g.mu.Lock()
		g.over = true
		for _, ch := range g.gates {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		g.mu.Unlock()
		wg.Wait()
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	submit := func(it string) {
		wg.Go(func() {
			v, err := c.Do(context.Background(), it)
			if err != nil || v != it+" booked" {
				t.Errorf("item %s answered %q, %v", it, v, err)
			}
		})
	}
	return c, submit
}

// TestAnItemWaitsForTheBatchInFlightThatSharesItsKey: a free worker does
// not start an item whose wallet a batch in flight holds (it would only
// wait for that batch's locks in the database, holding its own), but
// starts the items behind it that touch other wallets; the held item
// starts as soon as the batch holding its key ends.
func TestAnItemWaitsForTheBatchInFlightThatSharesItsKey(t *testing.T) {
	g, _, submit := withAInFlight(t, noop.NewMeterProvider())
	submit("B:x,y")
	time.Sleep(20 * time.Millisecond) // B is queued first
	submit("C:z")
	g.expect(t, "second batch", "[C:z]: B shares x with the batch in flight", "C:z")
	close(g.gate("C:z"))
	if b := g.next(100 * time.Millisecond); b != nil {
		t.Fatalf("batch %v started while A:x still holds x", b)
	}
	close(g.gate("A:x"))
	g.expect(t, "third batch", "[B:x,y] once A:x ended", "B:x,y")
}

// TestAHeldItemIsNotOvertakenOnAnyOfItsKeys: an item held back for one of
// its keys holds its other keys too, so a later item on those keys does
// not start before it (per key, items start in arrival order, and an item
// with two busy-ish keys cannot starve); once free, both go together.
func TestAHeldItemIsNotOvertakenOnAnyOfItsKeys(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	g, _, submit := withAInFlight(t, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	submit("B:x,y")
	time.Sleep(20 * time.Millisecond)
	submit("D:y")
	if b := g.next(100 * time.Millisecond); b != nil {
		t.Fatalf("batch %v started: D:y overtook B:x,y, held for x", b)
	}
	close(g.gate("A:x"))
	g.expect(t, "second batch", "[B:x,y D:y]", "B:x,y", "D:y")
	// Each held item counts once, though passed over at every arrival.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var held int64 = -1
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == batch.MetricHeld && len(s.DataPoints) == 1 {
				held = s.DataPoints[0].Value
			}
		}
	}
	if held != 2 {
		t.Fatalf("%s = %d, want 2 (B and D, once each)", batch.MetricHeld, held)
	}
}

// TestStopBooksTheItemsHeldBack: items held back when Stop is called are
// still booked, each after the batch that held its key.
func TestStopBooksTheItemsHeldBack(t *testing.T) {
	g, c, submit := withAInFlight(t, noop.NewMeterProvider())
	submit("B:x")
	time.Sleep(20 * time.Millisecond)
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(context.Background()) }()
	close(g.gate("B:x"))
	close(g.gate("A:x"))
	g.expect(t, "batch after stop", "[B:x]", "B:x")
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
