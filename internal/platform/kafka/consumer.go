package kafka

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/IBM/sarama"
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

// GroupRunner consumes topics as one consumer group until stopped.
type GroupRunner struct {
	cfg     config.Kafka
	group   string
	topics  []string
	handler Handler
	log     *zap.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewGroupRunner returns a runner for group over topics.
func NewGroupRunner(cfg config.Kafka, group string, topics []string, h Handler, log *zap.Logger) *GroupRunner {
	return &GroupRunner{cfg: cfg, group: group, topics: topics, handler: h, log: log.With(zap.String("group", group))}
}

// Group returns the consumer group id.
func (g *GroupRunner) Group() string { return g.group }

// Start launches the consume loop in the background. It returns at once:
// brokers that are away are retried, they do not fail the start.
func (g *GroupRunner) Start(context.Context) error {
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
		cg, err := sarama.NewConsumerGroup(g.cfg.Brokers, g.group, sc)
		if err != nil {
			g.log.Warn("kafka consumer group unavailable, retrying", zap.Error(err), zap.Duration("backoff", backoff))
			sleep(ctx, backoff)
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
				sleep(ctx, backoff)
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

// ConsumeClaim handles the records of one partition in order. A record in
// hand is finished even when the session is being torn down: its context
// is detached from the session's cancellation. A failed record is tried
// again in place (see Handler); it is marked only once handled.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if !h.handle(sess, msg) {
				return nil // the session ended with the record unhandled
			}
			sess.MarkMessage(msg, "")
		}
	}
}

// handle runs the handler on msg until it succeeds, backing off between
// attempts, and reports whether it did before the session ended.
func (h *groupHandler) handle(sess sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage) bool {
	for attempt := 0; ; attempt++ {
		err := h.runner.handler(context.WithoutCancel(sess.Context()), msg)
		if err == nil {
			return true
		}
		d := RetryDelay(h.runner.cfg.ConsumerRetryBackoff, h.runner.cfg.ConsumerRetryMaxBackoff, attempt)
		h.runner.log.Warn("kafka handler failed; retrying the record",
			zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition),
			zap.Int64("offset", msg.Offset), zap.Int("attempt", attempt+1), zap.Duration("backoff", d), zap.Error(err))
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

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
