// Package batch is group commit for the money path: a Committer collects
// the items that callers submit concurrently for a short window (or until
// a size cap) and hands them to a processor as one batch, which books them
// all in one database transaction: one commit, one WAL flush, and a few
// set-based statements instead of a dozen round trips per item.
//
// The processor decides each item's fate on its own (a refused item
// refuses only itself); the Committer only collects, dispatches and
// measures: how many items a batch held, how long an item waited for its
// batch, how long the batch took, and how many items it held back.
//
// Batches booked at once must not queue on one another's row locks: a
// batch waiting inside the database for another's wallets holds its own
// meanwhile, and the batches behind it wait for those in turn, so that
// two workers book one after the other while each holds a connection and
// locks. Given Options.Keys, a Committer starts a batch only with items
// whose keys no batch in flight holds, and keeps the others, in order, for
// a later batch (see dispatch).
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
	MetricHeld      = "paygate.batch.held"
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

// Options tune a Committer of items I.
type Options[I any] struct {
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
	// Keys names what an item touches (the money path: its wallets). A
	// batch does not take an item that shares a key with a batch in
	// flight; the item waits for a later batch instead (see dispatch).
	// Nil: items never conflict. Keys only schedules: it need not be
	// complete, since the processor still locks what it touches.
	Keys func(I) []string
}

// Committer collects items into batches. Its zero value is not usable;
// build it with New.
type Committer[I, R any] struct {
	name    string
	process Process[I, R]
	opts    Options[I]
	in      chan *call[I, R]
	attrs   metric.MeasurementOption
	size    metric.Int64Histogram
	wait    metric.Float64Histogram
	dur     metric.Float64Histogram
	held    metric.Int64Counter

	mu      sync.Mutex
	stopped bool
	done    chan struct{}
	wg      sync.WaitGroup
}

type call[I, R any] struct {
	ctx   context.Context
	item  I
	keys  []string
	at    time.Time
	reply chan Result[R]
	// held is set once a batch has passed the item over (counted once).
	held bool
}

// New returns a committer named name (its metrics' label) that books
// batches with process; Start runs it.
func New[I, R any](name string, process Process[I, R], opts Options[I], mp metric.MeterProvider) (*Committer[I, R], error) {
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
	held, err := m.Int64Counter(MetricHeld,
		metric.WithDescription("Items a batch passed over because a batch in flight touched the same keys (they wait for a later one)."))
	if err != nil {
		return nil, err
	}
	attrs := metric.WithAttributes(attribute.String("committer", name))
	held.Add(context.Background(), 0, attrs)
	return &Committer[I, R]{name: name, process: process, opts: opts, in: make(chan *call[I, R], opts.MaxSize*opts.Workers*4),
		attrs: attrs, size: size, wait: wait, dur: dur, held: held}, nil
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
	if c.opts.Keys != nil {
		cl.keys = c.opts.Keys(item)
	}
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
//
// Items wait in pending, in arrival order, until a worker is free. A batch
// then takes them in that order, up to MaxSize, but never one that shares
// a key with a batch in flight: that item would only wait in the database
// for the other batch's locks while holding its own, and batches behind it
// would queue on those. Once an item is held back, its keys are held back
// too for the rest of the pass, so that an item never overtakes an earlier
// one that shares a key with it, and an item with many keys cannot starve
// behind later ones with fewer: for each key, items start in the order
// they arrived.
func (c *Committer[I, R]) dispatch() {
	defer c.wg.Done()
	var (
		pending []*call[I, R]
		busy    = map[string]int{}                    // keys of the batches in flight
		done    = make(chan []string, c.opts.Workers) // a finished batch's keys
		free    = c.opts.Workers
		in      = c.in
		// opened is when a worker was free and an item could start, the
		// start of the window (zero: no batch open).
		opened time.Time
		timer  *time.Timer
		timeC  <-chan time.Time
	)
	limit := cap(c.in) // pending holds at most this many: beyond, Do blocks
	receive := func(cl *call[I, R], ok bool) {
		if !ok {
			in = nil
			return
		}
		pending = append(pending, cl)
	}
	for {
		// Everything already queued joins pending before a batch is formed.
	drain:
		for in != nil && len(pending) < limit {
			select {
			case cl, ok := <-in:
				receive(cl, ok)
			default:
				break drain
			}
		}
		for free > 0 && len(pending) > 0 {
			calls, rest, keys := c.pick(pending, busy)
			if len(calls) == 0 {
				break
			}
			if c.opts.Window > 0 && in != nil && len(calls) < c.opts.MaxSize {
				now := time.Now()
				if opened.IsZero() {
					opened = now
				}
				if left := c.opts.Window - now.Sub(opened); left > 0 {
					if timer == nil {
						timer = time.NewTimer(left)
					} else {
						timer.Reset(left)
					}
					timeC = timer.C
					break
				}
			}
			opened, timeC = time.Time{}, nil
			pending = rest
			for _, k := range keys {
				busy[k]++
			}
			free--
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.run(calls)
				done <- keys // never blocks: one slot per worker
			}()
		}
		if in == nil && len(pending) == 0 {
			return // Stop waits for the batches in flight
		}
		recv := in
		if len(pending) >= limit {
			recv = nil
		}
		select {
		case cl, ok := <-recv:
			receive(cl, ok)
		case keys := <-done:
			free++
			for _, k := range keys {
				if busy[k]--; busy[k] == 0 {
					delete(busy, k)
				}
			}
		case <-timeC:
			timeC = nil
		}
	}
}

// pick takes the items of the next batch out of pending, in order: up to
// MaxSize, none that shares a key with a batch in flight (busy) or with an
// earlier item held back. It returns the batch, the items left, and the
// batch's keys, each once.
func (c *Committer[I, R]) pick(pending []*call[I, R], busy map[string]int) (calls, rest []*call[I, R], keys []string) {
	if c.opts.Keys == nil {
		n := min(len(pending), c.opts.MaxSize)
		return pending[:n:n], pending[n:], nil
	}
	held := map[string]bool{}
	taken := map[string]bool{}
	rest = make([]*call[I, R], 0, len(pending))
	for i, cl := range pending {
		if len(calls) == c.opts.MaxSize {
			rest = append(rest, pending[i:]...)
			break
		}
		blocked := false
		for _, k := range cl.keys {
			if busy[k] > 0 || held[k] {
				blocked = true
				break
			}
		}
		if blocked {
			for _, k := range cl.keys {
				held[k] = true
			}
			if !cl.held {
				cl.held = true
				c.held.Add(cl.ctx, 1, c.attrs)
			}
			rest = append(rest, cl)
			continue
		}
		calls = append(calls, cl)
		for _, k := range cl.keys {
			if !taken[k] {
				taken[k] = true
				keys = append(keys, k)
			}
		}
	}
	return calls, rest, keys
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
