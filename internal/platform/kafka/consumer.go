package kafka

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
)

// Handler processes one record. Returning nil marks the record consumed.
// Returning an error leaves it unmarked: the runner leaves the group
// session, waits, rejoins, and the record is delivered again from the last
// committed offset. Handlers that must not block a partition (mail sending)
// route their own failures to retry topics and return nil.
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
// is detached from the session's cancellation.
func (h *groupHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case <-sess.Context().Done():
			return nil
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			if err := h.runner.handler(context.WithoutCancel(sess.Context()), msg); err != nil {
				h.runner.log.Warn("kafka handler failed; record will be redelivered",
					zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition),
					zap.Int64("offset", msg.Offset), zap.Error(err))
				return err
			}
			sess.MarkMessage(msg, "")
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
