package notify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/logging"
)

// Headers the consumer sets on the records it republishes to the retry and
// dead-letter topics: the platform's (kafka.Header…), which every consumer
// with a retry and dead-letter topic uses, so that one admin route lists
// and replays the dead letters of all of them.
const (
	HeaderAttempt         = kafka.HeaderAttempt
	HeaderNotBefore       = kafka.HeaderNotBefore
	HeaderError           = kafka.HeaderError
	HeaderReason          = kafka.HeaderReason
	HeaderOriginTopic     = kafka.HeaderOriginTopic
	HeaderOriginPartition = kafka.HeaderOriginPartition
	HeaderOriginOffset    = kafka.HeaderOriginOffset
	HeaderDeadLetteredAt  = kafka.HeaderDeadLetteredAt
)

// Publisher sends records to Kafka; *kafka.Producer is one.
type Publisher interface {
	Send(ctx context.Context, msgs []*sarama.ProducerMessage) error
}

// ConsumerParams are what NewConsumer needs; it is built without fx too.
// Telemetry fields may be nil.
type ConsumerParams struct {
	Config    config.Notify
	Kafka     config.Kafka
	Store     *Store
	Sender    Sender
	Publisher Publisher
	// Renderer is built from the embedded templates when nil.
	Renderer       *Renderer
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Log            *zap.Logger
}

// Consumer mails the events of the four domain topics and its retry topic.
type Consumer struct {
	cfg      config.Notify
	kafkaCfg config.Kafka
	store    *Store
	sender   Sender
	pub      Publisher
	renderer *Renderer
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	metrics  *metrics
	log      *zap.Logger

	mu     sync.Mutex
	runner *kafka.GroupRunner
	stop   chan struct{}
}

// NewConsumer returns a consumer; Start runs it.
func NewConsumer(d ConsumerParams) (*Consumer, error) {
	switch {
	case d.Config.Group == "" || d.Config.RetryTopic == "" || d.Config.DLQTopic == "":
		return nil, errors.New("notify: PAYGATE_NOTIFY_GROUP, PAYGATE_NOTIFY_RETRY_TOPIC and PAYGATE_NOTIFY_DLQ_TOPIC must be set")
	case d.Config.MaxAttempts < 1 || d.Config.RetryBackoff <= 0:
		return nil, errors.New("notify: PAYGATE_NOTIFY_MAX_ATTEMPTS and PAYGATE_NOTIFY_RETRY_BACKOFF must be positive")
	case d.Store == nil || d.Sender == nil || d.Publisher == nil:
		return nil, errors.New("notify: a store, a sender and a publisher are required")
	}
	if d.Renderer == nil {
		r, err := NewRenderer()
		if err != nil {
			return nil, err
		}
		d.Renderer = r
	}
	if d.TracerProvider == nil {
		d.TracerProvider = tracenoop.NewTracerProvider()
	}
	if d.MeterProvider == nil {
		d.MeterProvider = metricnoop.NewMeterProvider()
	}
	if d.Propagator == nil {
		d.Propagator = propagation.TraceContext{}
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	m, err := newMetrics(d.MeterProvider)
	if err != nil {
		return nil, err
	}
	return &Consumer{cfg: d.Config, kafkaCfg: d.Kafka, store: d.Store, sender: d.Sender, pub: d.Publisher,
		renderer: d.Renderer, tracer: d.TracerProvider.Tracer("paygate/notify"), prop: d.Propagator,
		metrics: m, log: d.Log}, nil
}

// Topics returns the topics the consumer reads: the four domain topics
// and its retry topic.
func (c *Consumer) Topics() []string {
	k := c.kafkaCfg
	return []string{k.TopicAuth, k.TopicTopup, k.TopicTransfer, k.TopicWithdraw, c.cfg.RetryTopic}
}

// Start joins the consumer group in the background; brokers that are away
// are retried, they do not fail the start.
func (c *Consumer) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runner != nil {
		return nil
	}
	c.stop = make(chan struct{})
	runner, err := kafka.NewGroupRunner(c.kafkaCfg, c.cfg.Group, c.Topics(), c.Handle, c.log)
	if err != nil {
		return err
	}
	c.runner = runner
	return c.runner.Start(ctx)
}

// Stop ends consumption: the record in hand is finished (a retry record
// still waiting for its time is left uncommitted, to be read again after
// a restart), marked offsets are committed and the group is left. The
// consumer can be started again.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	runner, stop := c.runner, c.stop
	c.runner = nil
	c.mu.Unlock()
	if runner == nil {
		return nil
	}
	close(stop)
	return runner.Stop(ctx)
}

func (c *Consumer) stopping() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil {
		return nil
	}
	return c.stop
}

// infraError is a failure of the consumer's own dependencies (the
// database, the broker): the record is left uncommitted and read again.
type infraError struct{ err error }

func (e *infraError) Error() string { return e.err.Error() }
func (e *infraError) Unwrap() error { return e.err }

// busyError says another consumer holds the claim of a mail until until.
type busyError struct{ until time.Time }

func (e *busyError) Error() string {
	return "another consumer is sending this mail (claim held until " + e.until.UTC().Format(time.RFC3339) + ")"
}

// Handle processes one record; it is the kafka.Handler of the group. It
// returns an error only when the record must be read again: the database
// or the broker failed, or the consumer is stopping while the record
// waits for its retry time.
func (c *Consumer) Handle(ctx context.Context, msg *sarama.ConsumerMessage) error {
	h := kafka.HeaderMap(msg)
	isRetry := msg.Topic == c.cfg.RetryTopic
	failed := 0 // attempts that failed before this one
	if isRetry {
		if n, err := strconv.Atoi(h[HeaderAttempt]); err == nil && n > 0 {
			failed = n
		}
	}
	attempt := failed + 1

	ctx = kafka.ExtractContext(ctx, c.prop, msg)
	ctx, span := c.tracer.Start(ctx, "notify process "+msg.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String(httpserver.DomainAttribute, Domain),
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(msg.Topic),
			semconv.MessagingDestinationPartitionID(strconv.Itoa(int(msg.Partition))),
			semconv.MessagingKafkaOffset(int(msg.Offset)),
			semconv.MessagingConsumerGroupName(c.cfg.Group),
			semconv.MessagingMessageID(h[kafka.HeaderID]),
			attribute.String("cloudevents.event_id", h[kafka.HeaderID]),
			attribute.String("cloudevents.event_type", h[kafka.HeaderType]),
			attribute.Int("paygate.notify.attempt", attempt),
		))
	defer span.End()
	log := logging.WithTrace(ctx, c.log).With(zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition),
		zap.Int64("offset", msg.Offset), zap.String("event_id", h[kafka.HeaderID]), zap.String("event_type", h[kafka.HeaderType]),
		zap.Int("attempt", attempt))

	if isRetry {
		requeue, err := kafka.WaitUntilDue(msg, c.stopping())
		if err != nil {
			span.SetAttributes(attribute.String("paygate.notify.outcome", "interrupted"))
			return err
		}
		if requeue {
			if err := c.publish(ctx, msg, c.cfg.RetryTopic, nil); err != nil {
				return c.failed(span, err)
			}
			span.SetAttributes(attribute.String("paygate.notify.outcome", "requeued"))
			return nil
		}
	}

	ev, err := kafka.FromConsumerMessage(msg)
	if err != nil {
		return c.deadLetter(ctx, span, log, msg, ReasonPoison, attempt, fmt.Errorf("%w: %v", ErrPoison, err))
	}
	eventID, err := uuid.Parse(ev.ID())
	if err != nil {
		return c.deadLetter(ctx, span, log, msg, ReasonPoison, attempt, poison("ce_id %q is not a UUID", ev.ID()))
	}
	outs, err := compose(ev.ID(), ev.Type(), ev.DataContentType(), ev.Data())
	if err != nil {
		return c.deadLetter(ctx, span, log, msg, ReasonPoison, attempt, err)
	}
	if len(outs) == 0 {
		span.SetAttributes(attribute.String("paygate.notify.outcome", "ignored"))
		log.Debug("event needs no email")
		return nil
	}

	var transient, permanent error
	var busyUntil time.Time
	for _, err := range c.deliver(ctx, log, eventID, outs) {
		var ie *infraError
		var be *busyError
		switch {
		case err == nil:
		case errors.As(err, &ie):
			return c.failed(span, err)
		case errors.As(err, &be):
			if be.until.After(busyUntil) {
				busyUntil = be.until
			}
		case IsPermanent(err):
			permanent = err
		default:
			transient = err
		}
	}

	switch {
	case transient != nil && attempt >= c.cfg.MaxAttempts:
		return c.deadLetter(ctx, span, log, msg, ReasonExhausted, attempt, transient)
	case transient != nil:
		notBefore := time.Now().Add(c.backoff(attempt))
		if busyUntil.After(notBefore) {
			notBefore = busyUntil
		}
		return c.retry(ctx, span, log, msg, attempt, notBefore, transient)
	case permanent != nil:
		return c.deadLetter(ctx, span, log, msg, ReasonRejected, attempt, permanent)
	case !busyUntil.IsZero():
		// Not a failure of ours: come back when the other claim expires,
		// without spending an attempt.
		return c.retry(ctx, span, log, msg, failed, busyUntil.Add(time.Second), &busyError{until: busyUntil})
	}
	span.SetAttributes(attribute.String("paygate.notify.outcome", "done"))
	return nil
}

// deliver sends each of an event's mails unless it was sent before, and
// returns the outcome of each: nil (sent now or before), a *busyError, an
// *infraError, or the send's error. The mails are claimed in one commit,
// sent in parallel (each conversation starts right after the claim, so
// each ends within its lease however many mails the event has) and
// recorded as sent in one commit.
func (c *Consumer) deliver(ctx context.Context, log *zap.Logger, eventID uuid.UUID, outs []outgoing) []error {
	errs := make([]error, len(outs))
	msgs := make([]Message, len(outs))
	var keys []mailKey
	var idx []int // the index in outs of each key
	seen := make(map[mailKey]bool, len(outs))
	for i, o := range outs {
		subject, text, html, err := c.renderer.Render(o.template, o.view)
		if err != nil {
			// A template that cannot render this payload will not render
			// it on the next attempt either.
			c.metrics.email(ctx, o.template, ResultFailed)
			errs[i] = Permanent(err)
			continue
		}
		k := mailKey{recipient: o.to, template: o.template}
		if seen[k] {
			continue // the same mail twice (same Message-ID): sent once
		}
		seen[k] = true
		msgs[i] = Message{ID: messageID(eventID, o.template), To: o.to, Subject: subject, Text: text, HTML: html, Template: o.template}
		keys, idx = append(keys, k), append(idx, i)
	}
	if len(keys) == 0 {
		return errs
	}

	// The claims hold until at least a lease after this moment (the
	// database stamps them when it runs the claim).
	claimedAt := time.Now()
	claims, err := c.store.ClaimAll(ctx, eventID, keys)
	if err != nil {
		for _, i := range idx {
			errs[i] = &infraError{err}
		}
		return errs
	}
	var send []int // indexes in keys of the mails claimed now
	for j, cl := range claims {
		switch cl.state {
		case claimed:
			send = append(send, j)
		case alreadySent:
			c.metrics.email(ctx, keys[j].template, ResultDuplicate)
			log.Debug("email already sent", zap.String("template", keys[j].template))
		case busy:
			errs[idx[j]] = &busyError{until: cl.until}
		}
	}
	if len(send) == 0 {
		return errs
	}

	sent := make([]bool, len(keys))
	if len(send) == 1 {
		j := send[0]
		sent[j], errs[idx[j]] = c.send(ctx, log, eventID, msgs[idx[j]])
	} else {
		var wg sync.WaitGroup
		for _, j := range send {
			wg.Go(func() { sent[j], errs[idx[j]] = c.send(ctx, log, eventID, msgs[idx[j]]) })
		}
		wg.Wait()
	}
	var done []mailKey
	for _, j := range send {
		if sent[j] {
			done = append(done, keys[j])
		}
	}
	if len(done) == 0 {
		return errs
	}
	// The mails are out: recording that must not give up while the claims
	// hold, or a redelivery would send them again once the claims lapsed.
	// A database restart takes seconds, so the record is retried until
	// shortly before the claims end.
	if err := c.markSent(context.WithoutCancel(ctx), eventID, done, claimedAt.Add(c.store.Lease()-markSentMargin)); err != nil {
		for _, j := range send {
			if sent[j] {
				errs[idx[j]] = &infraError{err}
			}
		}
	}
	return errs
}

// send sends one claimed mail; on failure it releases the claim, so that
// the next attempt can claim the mail at once. It reports whether the
// server accepted the mail, and the send's error when it did not.
func (c *Consumer) send(ctx context.Context, log *zap.Logger, eventID uuid.UUID, m Message) (bool, error) {
	sctx, span := c.tracer.Start(ctx, "notify smtp send", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String(httpserver.DomainAttribute, Domain),
			attribute.String("cloudevents.event_id", eventID.String()),
			attribute.String("paygate.notify.template", m.Template),
		))
	defer span.End()
	if err := c.sender.Send(sctx, m); err != nil {
		summary := ErrorSummary(err)
		span.SetStatus(codes.Error, summary)
		span.SetAttributes(attribute.Bool("paygate.notify.permanent", IsPermanent(err)))
		c.metrics.email(ctx, m.Template, ResultFailed)
		logging.WithTrace(sctx, log).Warn("email not sent", zap.String("template", m.Template),
			zap.Bool("permanent", IsPermanent(err)), zap.String("error", summary))
		if rerr := c.store.Release(context.WithoutCancel(ctx), eventID, m.To, m.Template, summary); rerr != nil {
			// The claim expires by itself; the next attempt waits for it.
			log.Warn("release email claim", zap.Error(rerr))
		}
		return false, err
	}
	c.metrics.email(ctx, m.Template, ResultSent)
	logging.WithTrace(sctx, log).Info("email sent", zap.String("template", m.Template))
	return true, nil
}

// markSentMargin is how long before its claim ends a consumer stops trying
// to record a sent mail: the claim was stamped by the database's clock,
// and the last attempt must not overlap another consumer's claim.
const markSentMargin = time.Second

// markSent records sent mails, trying again with backoff until it
// succeeds or until by, the end of the time the claims are ours; it tries
// at least once.
func (c *Consumer) markSent(ctx context.Context, eventID uuid.UUID, keys []mailKey, by time.Time) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		err := c.store.MarkAllSent(ctx, eventID, keys)
		if err == nil || time.Now().Add(backoff).After(by) {
			return err
		}
		time.Sleep(backoff)
	}
}

// messageID is the Message-ID of a mail: the same for every attempt.
func messageID(eventID uuid.UUID, template string) string {
	return eventID.String() + "." + template + "@paygate"
}

// backoff is the pause after the attempt-th failed attempt: the configured
// backoff doubled per attempt, at most config.MaxNotifyRetryBackoff.
func (c *Consumer) backoff(attempt int) time.Duration {
	d := c.cfg.RetryBackoff
	for i := 1; i < attempt && d < config.MaxNotifyRetryBackoff; i++ {
		d *= 2
	}
	return min(d, config.MaxNotifyRetryBackoff)
}

func (c *Consumer) retry(ctx context.Context, span trace.Span, log *zap.Logger, msg *sarama.ConsumerMessage,
	failedAttempts int, notBefore time.Time, cause error) error {
	summary := ErrorSummary(cause)
	err := c.publish(ctx, msg, c.cfg.RetryTopic, map[string]string{
		HeaderAttempt:   strconv.Itoa(failedAttempts),
		HeaderNotBefore: notBefore.UTC().Format(time.RFC3339Nano),
		HeaderError:     summary,
	})
	if err != nil {
		return c.failed(span, err)
	}
	c.metrics.retry(ctx)
	span.SetAttributes(attribute.String("paygate.notify.outcome", "retry"))
	span.SetStatus(codes.Error, summary)
	log.Warn("email will be retried", zap.Time("not_before", notBefore), zap.String("error", summary))
	return nil
}

func (c *Consumer) deadLetter(ctx context.Context, span trace.Span, log *zap.Logger, msg *sarama.ConsumerMessage,
	reason string, attempt int, cause error) error {
	summary := ErrorSummary(cause)
	err := c.publish(ctx, msg, c.cfg.DLQTopic, map[string]string{
		HeaderReason:         reason,
		HeaderError:          summary,
		HeaderAttempt:        strconv.Itoa(attempt),
		HeaderDeadLetteredAt: time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return c.failed(span, err)
	}
	c.metrics.deadLetter(ctx, reason)
	span.SetAttributes(attribute.String("paygate.notify.outcome", "dead_letter"), attribute.String("paygate.notify.reason", reason))
	span.SetStatus(codes.Error, summary)
	log.Error("event dead-lettered", zap.String("reason", reason), zap.String("error", summary))
	return nil
}

// failed marks the span of a record that will be read again.
func (c *Consumer) failed(span trace.Span, err error) error {
	span.SetAttributes(attribute.String("paygate.notify.outcome", "redeliver"))
	span.SetStatus(codes.Error, redact(err.Error()))
	return err
}

// publish copies msg to topic with set headers (see kafka.Republish); a
// failure is the broker's, and the record is read again.
func (c *Consumer) publish(ctx context.Context, msg *sarama.ConsumerMessage, topic string, set map[string]string) error {
	if err := kafka.Republish(ctx, c.pub, c.prop, msg, topic, set); err != nil {
		return &infraError{err}
	}
	return nil
}
