// Package batch is group commit for the money path: a Committer collects
// the items that callers submit concurrently for a short window (or until
// a size cap) and hands them to a processor as one batch, which books them
// all in one database transaction: one commit, one WAL flush, and a few
// set-based statements instead of a dozen round trips per item.
//
// The processor decides each item's fate on its own (a refused item
// refuses only itself); the Committer only collects, dispatches and
// measures: how many items a batch held, how long an item waited for its
// batch, and how long the batch took.
package batch

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Metric names of a Committer (the committer's name is the "committer"
// label).
const (
	MetricSize      = "paygate.batch.size"
	MetricQueueWait = "paygate.batch.queue_wait"
	MetricDuration  = "paygate.batch.duration"
)

// ErrStopped is the answer to an item submitted after Stop.
var ErrStopped = errors.New("batch: committer stopped")

// Result is what the processor decided for one item.
type Result[R any] struct {
	Value R
	Err   error
}

// Process books a batch and returns one result per item, in item order.
// It is called with at most Options.MaxSize items, never concurrently
// with more than Options.Workers others.
type Process[I, R any] func(ctx context.Context, items []I) []Result[R]

// Options tune a Committer.
type Options struct {
	// Window is how long a batch stays open after its first item; 0
	// closes it as soon as no more items are queued (items that arrive
	// while the workers are busy still pile up into the next batch).
	Window time.Duration
	// MaxSize closes a batch early; 64 when zero.
	MaxSize int
	// Workers is how many batches may be booked at once; 2 when zero.
	Workers int
	// Tracer traces each batch: a span in the trace of its first item,
	// linked to every item's span; none when nil.
	Tracer trace.Tracer
}

// Committer collects items into batches. Its zero value is not usable;
// build it with New.
type Committer[I, R any] struct {
	name    string
	process Process[I, R]
	opts    Options
	in      chan *call[I, R]
	attrs   metric.MeasurementOption
	size    metric.Int64Histogram
	wait    metric.Float64Histogram
	dur     metric.Float64Histogram

	mu      sync.Mutex
	stopped bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type call[I, R any] struct {
	ctx   context.Context
	item  I
	at    time.Time
	reply chan Result[R]
}

// New returns a committer named name (its metrics' label) that books
// batches with process; Start runs it.
func New[I, R any](name string, process Process[I, R], opts Options, mp metric.MeterProvider) (*Committer[I, R], error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = 64
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	m := mp.Meter("paygate/batch")
	size, err := m.Int64Histogram(MetricSize, metric.WithDescription("Items booked per batch (one transaction, one commit)."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256))
	if err != nil {
		return nil, err
	}
	wait, err := m.Float64Histogram(MetricQueueWait, metric.WithUnit("s"),
		metric.WithDescription("How long an item waited for its batch to start."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25))
	if err != nil {
		return nil, err
	}
	dur, err := m.Float64Histogram(MetricDuration, metric.WithUnit("s"),
		metric.WithDescription("How long a batch took to book and commit."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
	if err != nil {
		return nil, err
	}
	return &Committer[I, R]{name: name, process: process, opts: opts, in: make(chan *call[I, R], opts.MaxSize*opts.Workers*4),
		attrs: metric.WithAttributes(attribute.String("committer", name)), size: size, wait: wait, dur: dur}, nil
}

// Start runs the dispatcher until Stop.
func (c *Committer[I, R]) Start(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return nil
	}
	c.done = make(chan struct{})
	c.wg.Add(1)
	go c.dispatch()
	return nil
}

// Stop refuses new items, books the ones already submitted, and waits for
// the batches in flight, or until ctx ends.
func (c *Committer[I, R]) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped || c.done == nil {
		c.stopped = true
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	close(c.in)
	c.mu.Unlock()
	finished := make(chan struct{})
	go func() { c.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Do submits item and waits for its result. When ctx ends first, Do
// returns ctx.Err(), but the item may still be booked: callers whose items
// must not be booked twice make them idempotent (the money path submits
// items under their Idempotency-Key).
func (c *Committer[I, R]) Do(ctx context.Context, item I) (R, error) {
	cl := &call[I, R]{ctx: ctx, item: item, at: time.Now(), reply: make(chan Result[R], 1)}
	c.mu.Lock()
	if c.stopped || c.done == nil {
		c.mu.Unlock()
		var zero R
		return zero, ErrStopped
	}
	c.in <- cl // the channel is closed only under mu, after stopped is set
	c.mu.Unlock()
	select {
	case r := <-cl.reply:
		return r.Value, r.Err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// dispatch collects batches and runs them on up to Workers goroutines.
func (c *Committer[I, R]) dispatch() {
	defer c.wg.Done()
	slots := make(chan struct{}, c.opts.Workers)
	for {
		first, ok := <-c.in
		if !ok {
			return
		}
		// A worker first, then the batch: while every worker is busy the
		// queue grows, and the batch takes all of it when one frees up.
		// (Filled first, it would hold what was queued when the last one
		// started and leave the rest to wait for yet another batch.)
		slots <- struct{}{}
		calls, open := c.fill([]*call[I, R]{first})
		c.wg.Add(1)
		go func() {
			defer func() { <-slots; c.wg.Done() }()
			c.run(calls)
		}()
		if !open {
			return
		}
	}
}

// fill adds queued items to a batch until it is full, the window closes,
// or (without a window) the queue is empty. It reports whether the input
// is still open.
func (c *Committer[I, R]) fill(calls []*call[I, R]) ([]*call[I, R], bool) {
	if c.opts.Window <= 0 {
		for len(calls) < c.opts.MaxSize {
			select {
			case cl, ok := <-c.in:
				if !ok {
					return calls, false
				}
				calls = append(calls, cl)
			default:
				return calls, true
			}
		}
		return calls, true
	}
	t := time.NewTimer(c.opts.Window)
	defer t.Stop()
	for len(calls) < c.opts.MaxSize {
		select {
		case cl, ok := <-c.in:
			if !ok {
				return calls, false
			}
			calls = append(calls, cl)
		case <-t.C:
			return calls, true
		}
	}
	return calls, true
}

// run books one batch and answers its callers.
func (c *Committer[I, R]) run(calls []*call[I, R]) {
	start := time.Now()
	items := make([]I, len(calls))
	for i, cl := range calls {
		items[i] = cl.item
		c.wait.Record(cl.ctx, start.Sub(cl.at).Seconds(), c.attrs)
	}
	// The batch runs to its end whatever its callers do: its items share
	// one transaction, and one caller going away must not cancel the
	// others' booking.
	pctx := context.WithoutCancel(calls[0].ctx)
	if c.opts.Tracer != nil {
		links := make([]trace.Link, 0, len(calls))
		for _, cl := range calls {
			if sc := trace.SpanContextFromContext(cl.ctx); sc.IsValid() {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
		var span trace.Span
		pctx, span = c.opts.Tracer.Start(pctx, "batch "+c.name, trace.WithLinks(links...),
			trace.WithAttributes(attribute.Int("paygate.batch.size", len(calls))))
		defer span.End()
	}
	results := c.process(pctx, items)
	ctx := context.Background()
	c.dur.Record(ctx, time.Since(start).Seconds(), c.attrs)
	c.size.Record(ctx, int64(len(items)), c.attrs)
	for i, cl := range calls {
		r := Result[R]{Err: errors.New("batch: the processor returned no result for the item")}
		if i < len(results) {
			r = results[i]
		}
		cl.reply <- r
	}
}
