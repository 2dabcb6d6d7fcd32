package kafka

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
)

// Handler processes one record. Returning nil marks the record consumed.
// Returning an error leaves it unmarked: the runner tries the same record
// again in place, after a bounded exponential backoff with jitter, for as
// long as the group session lasts; it does not leave and rejoin the group
// (which would make every member rebalance, in a loop). When the session
// ends (a rebalance, a stop), the record is delivered again from the last
// committed offset to whoever owns its partition. Handlers that must not
// block a partition (mail sending) route their own failures to retry
// topics and return nil.
type Handler func(ctx context.Context, msg *sarama.ConsumerMessage) error

// BatchHandler processes records of one partition in order: the record
// that arrived and those already waiting behind it, at most the runner's
// batch size. It returns how many of them, from the first, are done;
// those are marked consumed. With an error the others are tried again in
// place, as a Handler's failed record is. A batch lets a handler share one
// database round trip and commit among records that arrived together.
type BatchHandler func(ctx context.Context, msgs []*sarama.ConsumerMessage) (done int, err error)

// GroupRunner consumes topics as one consumer group until stopped.
type GroupRunner struct {
	cfg     config.Kafka
	group   string
	topics  []string
	handler Handler
	log     *zap.Logger
	retry   *RetryPolicy
	// retries consumes the policy's retry topic as a consumer group of its
	// own (the group's name with "-retry"), with the same handler and
	// policy.
	retries *GroupRunner
	// label is the group label of the retry metrics: the group's own name,
	// also for its retry group.
	label   string
	metrics *retryMetrics
	// batch, when set, is used instead of handler, with up to batchMax
	// records at a time.
	batch    BatchHandler
	batchMax int

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// RunnerOption configures a GroupRunner.
type RunnerOption func(*GroupRunner) error

// WithRetry gives the runner a retry policy: a record that keeps failing
// moves to the policy's retry topic (which the runner then reads too) and
// finally to its dead-letter topic, instead of holding its partition up.
// Its retries and dead letters are counted on mp.
func WithRetry(p RetryPolicy, mp metric.MeterProvider) RunnerOption {
	return func(g *GroupRunner) error {
		if p.RetryTopic == "" || p.DLQTopic == "" || p.Publisher == nil || p.MaxAttempts < 1 {
			return errors.New("kafka: a retry policy needs a retry topic, a dead-letter topic, a publisher and MaxAttempts")
		}
		if g.batch != nil {
			return errors.New("kafka: a runner with a batch handler routes its own failures")
		}
		if p.InPlace < 1 {
			p.InPlace = 3
		}
		m, err := newRetryMetrics(mp)
		if err != nil {
			return err
		}
		g.retry, g.metrics = &p, m
		// Every series exists from the start, at zero, so that a rate or an
		// increase over it is 0 rather than no data until the first retry.
		ctx := context.Background()
		m.retries.Add(ctx, 0, metric.WithAttributes(attribute.String("group", g.group)))
		for _, r := range DeadLetterReasons {
			m.dead.Add(ctx, 0, metric.WithAttributes(attribute.String("group", g.group), attribute.String("reason", r)))
		}
		// The retry topic is read by a group of its own, so that a backlog
		// of retries never delays the source topics' rebalances, and the
		// reverse.
		g.retries = &GroupRunner{cfg: g.cfg, group: g.group + "-retry", topics: []string{p.RetryTopic}, handler: g.handler,
			log: g.log.With(zap.String("retry_group", g.group+"-retry")), retry: &p, metrics: m, label: g.group}
		return nil
	}
}

// WithBatches makes the runner hand records to h, up to max at a time,
// instead of one by one to the Handler. It excludes WithRetry: a batch
// handler routes its own failures.
func WithBatches(max int, h BatchHandler) RunnerOption {
	return func(g *GroupRunner) error {
		if max < 1 || h == nil {
			return errors.New("kafka: batches need a handler and a size of at least 1")
		}
		if g.retry != nil {
			return errors.New("kafka: a runner with a retry policy handles records one by one")
		}
		g.batch, g.batchMax = h, max
		return nil
	}
}

// NewGroupRunner returns a runner for group over topics.
func NewGroupRunner(cfg config.Kafka, group string, topics []string, h Handler, log *zap.Logger, opts ...RunnerOption) (*GroupRunner, error) {
	g := &GroupRunner{cfg: cfg, group: group, topics: topics, handler: h, log: log.With(zap.String("group", group)), label: group}
	for _, o := range opts {
		if err := o(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Topics returns the topics the runner reads: its own and its retry
// topic.
func (g *GroupRunner) Topics() []string { return g.topics }

// RetryGroup returns the consumer group that reads the retry topic, and
// its topics; none without a retry policy.
func (g *GroupRunner) RetryGroup() (string, []string) {
	if g.retries == nil {
		return "", nil
	}
	return g.retries.group, g.retries.topics
}

// Group returns the consumer group id.
func (g *GroupRunner) Group() string { return g.group }

// Start launches the consume loop in the background. It returns at once:
// brokers that are away are retried, they do not fail the start.
func (g *GroupRunner) Start(ctx context.Context) error {
	if g.retries != nil {
		if err := g.retries.Start(ctx); err != nil {
			return err
		}
	}
	return g.start()
}

func (g *GroupRunner) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	g.mu.Lock()
	g.cancel, g.done = cancel, make(chan struct{})
	g.mu.Unlock()
	go g.loop(ctx)
	return nil
}

// Stop ends consumption: the record in hand is finished, marked offsets are
// committed, and the group is left. It waits until then or until ctx ends.
func (g *GroupRunner) Stop(ctx context.Context) error {
	err := g.stop(ctx)
	if g.retries != nil {
		err = errors.Join(err, g.retries.Stop(ctx))
	}
	return err
}

func (g *GroupRunner) stop(ctx context.Context) error {
	g.mu.Lock()
	cancel, done := g.cancel, g.done
	g.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *GroupRunner) loop(ctx context.Context) {
	defer close(g.done)
	backoff := g.cfg.ReconnectBackoff
	for ctx.Err() == nil {
		sc, err := NewSaramaConfig(g.cfg)
		if err != nil {
			g.log.Error("kafka consumer config", zap.Error(err))
			return
		}
		// Each group's client has an id of its own, so that the broker (its
		// quotas, its logs, kafka-consumer-groups --describe) tells a
		// process's groups apart.
		sc.ClientID = g.cfg.ClientID + "-" + g.group
		cg, err := sarama.NewConsumerGroup(g.cfg.Brokers, g.group, sc)
		if err != nil {
			g.log.Warn("kafka consumer group unavailable, retrying", zap.Error(err), zap.Duration("backoff", backoff))
			periodic.Sleep(ctx, backoff)
			continue
		}
		g.log.Info("kafka consumer group joined", zap.Strings("topics", g.topics))
		for ctx.Err() == nil {
			err := cg.Consume(ctx, g.topics, &groupHandler{runner: g})
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				break
			}
			if err != nil {
				g.log.Warn("kafka consume session ended", zap.Error(err))
				periodic.Sleep(ctx, backoff)
			}
		}
		// Close commits the offsets marked so far before leaving the group.
		if err := cg.Close(); err != nil {
			g.log.Warn("kafka consumer group close", zap.Error(err))
		}
	}
	g.log.Info("kafka consumer group stopped")
}

type groupHandler struct {
	runner *GroupRunner
}

func (h *groupHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim handles the records of one partition in order, one by one
// or, with a BatchHandler, in batches. A record in hand is finished even
// when the session is being torn down: its context is detached from the
// session's cancellation. A failed record is tried again in place (see
// Handler); it is marked only once handled.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	g := h.runner
	size, process := 1, func(b []*sarama.ConsumerMessage) bool {
		if !h.handle(sess, b[0]) {
			return false
		}
		sess.MarkMessage(b[0], "")
		return true
	}
	if g.batch != nil {
		// Each record that arrives is handled with those already waiting
		// behind it; a batch never waits to fill, so a record alone is
		// handled at once.
		size, process = g.batchMax, func(b []*sarama.ConsumerMessage) bool { return h.handleBatch(sess, b) }
	}
	batch := make([]*sarama.ConsumerMessage, 0, size)
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			batch = append(batch[:0], msg)
		more:
			for len(batch) < size {
				select {
				case m, ok := <-claim.Messages():
					if !ok {
						break more
					}
					batch = append(batch, m)
				default:
					break more
				}
			}
			if !process(batch) {
				return nil // the session ended with records unhandled
			}
		}
	}
}

// handleBatch runs the batch handler until every record of batch is done,
// marking each done prefix, and reports whether it finished before the
// session ended. Failures back off as handle's do.
func (h *groupHandler) handleBatch(sess sarama.ConsumerGroupSession, batch []*sarama.ConsumerMessage) bool {
	g := h.runner
	ctx := context.WithoutCancel(sess.Context())
	for attempt := 0; ; attempt++ {
		done, err := g.batch(ctx, batch)
		done = min(max(done, 0), len(batch))
		if done > 0 {
			sess.MarkMessage(batch[done-1], "")
			batch, attempt = batch[done:], 0
		}
		if len(batch) == 0 {
			return true
		}
		if err == nil {
			if done > 0 {
				continue // the handler stopped early without a failure: go on
			}
			err = errors.New("kafka: the batch handler did not handle its first record")
		}
		d := RetryDelay(g.cfg.ConsumerRetryBackoff, g.cfg.ConsumerRetryMaxBackoff, attempt)
		g.log.Warn("kafka batch handler failed; retrying its records", zap.String("topic", batch[0].Topic),
			zap.Int32("partition", batch[0].Partition), zap.Int64("offset", batch[0].Offset), zap.Int("records", len(batch)),
			zap.Int("attempt", attempt+1), zap.Duration("backoff", d), zap.Error(err))
		select {
		case <-sess.Context().Done():
			return false
		case <-time.After(d):
		}
	}
}

// handle runs the handler on msg and reports whether the record is done
// (handled, or moved to a retry or dead-letter topic) before the session
// ended. Without a retry policy it tries the record in place until it
// succeeds, backing off between attempts; with one, it tries InPlace times
// and then routes the record (see RetryPolicy).
func (h *groupHandler) handle(sess sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage) bool {
	g := h.runner
	ctx := context.WithoutCancel(sess.Context())
	p := g.retry
	failed := 0 // deliveries of this record that failed before this one
	if p != nil && msg.Topic == p.RetryTopic {
		failed = Attempts(msg)
		requeue, err := WaitUntilDue(msg, sess.Context().Done())
		if err != nil {
			return false
		}
		if requeue {
			return h.publishUntilDone(sess, msg, func() error {
				return Republish(ctx, p.Publisher, p.Propagator, msg, p.RetryTopic, nil)
			})
		}
	}
	for attempt := 0; ; attempt++ {
		err := g.handler(ctx, msg)
		if err == nil {
			return true
		}
		var dl *DeadLetterError
		if p != nil && (attempt+1 >= p.InPlace || errors.As(err, &dl)) {
			return h.publishUntilDone(sess, msg, func() error { return p.route(ctx, g, msg, failed+1, err) })
		}
		d := RetryDelay(g.cfg.ConsumerRetryBackoff, g.cfg.ConsumerRetryMaxBackoff, attempt)
		g.log.Warn("kafka handler failed; retrying the record",
			zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition),
			zap.Int64("offset", msg.Offset), zap.Int("attempt", attempt+1), zap.Duration("backoff", d), zap.Error(err))
		select {
		case <-sess.Context().Done():
			return false
		case <-time.After(d):
		}
	}
}

// publishUntilDone runs publish (a republish of msg) until it succeeds,
// backing off while the broker is away, and reports whether it did before
// the session ended: nothing else on the partition can progress without it.
func (h *groupHandler) publishUntilDone(sess sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage, publish func() error) bool {
	g := h.runner
	for attempt := 0; ; attempt++ {
		err := publish()
		if err == nil {
			return true
		}
		d := RetryDelay(g.cfg.ConsumerRetryBackoff, g.cfg.ConsumerRetryMaxBackoff, attempt)
		g.log.Warn("kafka: cannot move a failed record off its partition yet", zap.String("topic", msg.Topic),
			zap.Int64("offset", msg.Offset), zap.Duration("backoff", d), zap.Error(err))
		select {
		case <-sess.Context().Done():
			return false
		case <-time.After(d):
		}
	}
}

// RetryDelay is the pause before retry attempt+1 of a failed record: base
// doubled per attempt, capped at max, with "equal jitter" (a random point
// in the upper half), so that consumers that failed together do not retry
// in lockstep.
func RetryDelay(base, max time.Duration, attempt int) time.Duration {
	d := base
	for range attempt {
		if d >= max/2 {
			d = max
			break
		}
		d *= 2
	}
	d = min(d, max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
