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

	"github.com/paygate/paygate/internal/platform/batch"
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
	mp       metric.MeterProvider
	log      *zap.Logger

	mu     sync.Mutex
	runner *kafka.GroupRunner
	writer *batch.Committer[write, []claimResult]
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
		metrics: m, mp: d.MeterProvider, log: d.Log}, nil
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
	runner, err := kafka.NewGroupRunner(c.kafkaCfg, c.cfg.Group, c.Topics(), c.Handle, c.log,
		kafka.WithBatches(maxBatch, c.HandleBatch))
	if err != nil {
		return err
	}
	// One worker: while a commit waits for its WAL flush, the writes of
	// the other partitions pile up into the next one. A committer stops
	// for good, so every start has its own.
	writer, err := batch.New(CommitterName, c.commitWrites, batch.Options[write]{Workers: 1, Tracer: c.tracer}, c.mp)
	if err != nil {
		return err
	}
	if err := writer.Start(ctx); err != nil {
		return err
	}
	if err := runner.Start(ctx); err != nil {
		_ = writer.Stop(ctx)
		return err
	}
	c.runner, c.writer = runner, writer
	return nil
}

// Stop ends consumption: the record in hand is finished (a retry record
// still waiting for its time is left uncommitted, to be read again after
// a restart), marked offsets are committed and the group is left. The
// consumer can be started again.
func (c *Consumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	runner, writer, stop := c.runner, c.writer, c.stop
	c.runner = nil
	c.mu.Unlock()
	if runner == nil {
		return nil
	}
	close(stop)
	err := runner.Stop(ctx)
	// The records in hand are finished: their writes are done.
	c.mu.Lock()
	c.writer = nil
	c.mu.Unlock()
	return errors.Join(err, writer.Stop(ctx))
}

// CommitterName is the "committer" label of the delivery commits' batch
// metrics (internal/platform/batch).
const CommitterName = "email"

// commit commits w with the writes of the other partitions' handlers
// (group commit, see Store.Commit) and returns its claims' outcomes. A
// consumer that is not running (tests drive its handlers directly)
// commits w on its own.
func (c *Consumer) commit(ctx context.Context, w write) ([]claimResult, error) {
	c.mu.Lock()
	writer := c.writer
	c.mu.Unlock()
	if writer == nil {
		res, err := c.store.Commit(ctx, []write{w})
		if err != nil {
			return nil, err
		}
		return res[0], nil
	}
	return writer.Do(ctx, w)
}

// commitWrites is the delivery committer's processor: one transaction
// for every write of the batch, which fails or succeeds as a whole.
func (c *Consumer) commitWrites(ctx context.Context, writes []write) []batch.Result[[]claimResult] {
	out := make([]batch.Result[[]claimResult], len(writes))
	res, err := c.store.Commit(ctx, writes)
	for i := range out {
		if err != nil {
			out[i].Err = err
		} else {
			out[i].Value = res[i]
		}
	}
	return out
}

func (c *Consumer) stopping() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop == nil {
		return nil
	}
	return c.stop
}

// busyError says another consumer holds the claim of a mail until until.
type busyError struct{ until time.Time }

func (e *busyError) Error() string {
	return "another consumer is sending this mail (claim held until " + e.until.UTC().Format(time.RFC3339) + ")"
}

// record is one Kafka record being handled: its span, its logger, its
// attempt and, once parsed, its event's mails and their outcomes.
type record struct {
	msg     *sarama.ConsumerMessage
	ctx     context.Context
	span    trace.Span
	log     *zap.Logger
	failed  int // attempts that failed before this one
	attempt int
	eventID uuid.UUID
	outs    []outgoing
	// poison is why the record cannot be read, if it cannot.
	poison error
	// errs holds each mail's outcome after deliver: nil (sent now or
	// before), a *busyError, or the send's error.
	errs []error
}

// begin starts handling msg: its span (continuing the producer's trace)
// and its logger.
func (c *Consumer) begin(ctx context.Context, msg *sarama.ConsumerMessage) *record {
	h := kafka.HeaderMap(msg)
	r := &record{msg: msg}
	if msg.Topic == c.cfg.RetryTopic {
		if n, err := strconv.Atoi(h[HeaderAttempt]); err == nil && n > 0 {
			r.failed = n
		}
	}
	r.attempt = r.failed + 1
	ctx = kafka.ExtractContext(ctx, c.prop, msg)
	r.ctx, r.span = c.tracer.Start(ctx, "notify process "+msg.Topic, trace.WithSpanKind(trace.SpanKindConsumer),
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
			attribute.Int("paygate.notify.attempt", r.attempt),
		))
	r.log = logging.WithTrace(r.ctx, c.log).With(zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition),
		zap.Int64("offset", msg.Offset), zap.String("event_id", h[kafka.HeaderID]), zap.String("event_type", h[kafka.HeaderType]),
		zap.Int("attempt", r.attempt))
	return r
}

// parse reads the record's event and the mails it calls for, into
// r.outs, or the reason it cannot be read into r.poison. It has no effect
// outside r: finish acts on what it found.
func (c *Consumer) parse(r *record) {
	ev, err := kafka.FromConsumerMessage(r.msg)
	if err != nil {
		r.poison = fmt.Errorf("%w: %v", ErrPoison, err)
		return
	}
	if r.eventID, err = uuid.Parse(ev.ID()); err != nil {
		r.poison = poison("ce_id %q is not a UUID", ev.ID())
		return
	}
	if r.outs, err = compose(ev.ID(), ev.Type(), ev.DataContentType(), ev.Data()); err != nil {
		r.poison = err
	}
}

// finish settles a record whose mails were delivered: done, or to the
// retry or dead-letter topic. It returns an error only when the record
// must be read again.
func (c *Consumer) finish(r *record) error {
	switch {
	case r.poison != nil:
		return c.deadLetter(r, ReasonPoison, r.poison)
	case len(r.outs) == 0:
		r.span.SetAttributes(attribute.String("paygate.notify.outcome", "ignored"))
		r.log.Debug("event needs no email")
		return nil
	}
	var transient, permanent error
	var busyUntil time.Time
	for _, err := range r.errs {
		var be *busyError
		switch {
		case err == nil:
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
	case transient != nil && r.attempt >= c.cfg.MaxAttempts:
		return c.deadLetter(r, ReasonExhausted, transient)
	case transient != nil:
		notBefore := time.Now().Add(c.backoff(r.attempt))
		if busyUntil.After(notBefore) {
			notBefore = busyUntil
		}
		return c.retry(r, r.attempt, notBefore, transient)
	case permanent != nil:
		return c.deadLetter(r, ReasonRejected, permanent)
	case !busyUntil.IsZero():
		// Not a failure of ours: come back when the other claim expires,
		// without spending an attempt.
		return c.retry(r, r.failed, busyUntil.Add(time.Second), &busyError{until: busyUntil})
	}
	r.span.SetAttributes(attribute.String("paygate.notify.outcome", "done"))
	return nil
}

// Handle processes one record; it is the kafka.Handler of the group. It
// returns an error only when the record must be read again: the database
// or the broker failed, or the consumer is stopping while the record
// waits for its retry time.
func (c *Consumer) Handle(ctx context.Context, msg *sarama.ConsumerMessage) error {
	r := c.begin(ctx, msg)
	defer r.span.End()
	if msg.Topic == c.cfg.RetryTopic {
		requeue, err := kafka.WaitUntilDue(msg, c.stopping())
		if err != nil {
			r.span.SetAttributes(attribute.String("paygate.notify.outcome", "interrupted"))
			return err
		}
		if requeue {
			if err := c.publish(r.ctx, msg, c.cfg.RetryTopic, nil); err != nil {
				return c.failed(r, err)
			}
			r.span.SetAttributes(attribute.String("paygate.notify.outcome", "requeued"))
			return nil
		}
	}
	c.parse(r)
	if err := c.deliver(r.ctx, []*record{r}); err != nil {
		return c.failed(r, err)
	}
	return c.finish(r)
}

// HandleBatch processes records of one partition that arrived together;
// it is the kafka.BatchHandler of the group. Their mails are claimed,
// sent and recorded together (see deliver); each record is then settled
// on its own, in order. Records of the retry topic wait for their time,
// so they go one by one through Handle.
func (c *Consumer) HandleBatch(ctx context.Context, msgs []*sarama.ConsumerMessage) (int, error) {
	if msgs[0].Topic == c.cfg.RetryTopic {
		for i, m := range msgs {
			if err := c.Handle(ctx, m); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	c.metrics.batch(ctx, len(msgs))
	if len(msgs) == 1 {
		if err := c.Handle(ctx, msgs[0]); err != nil {
			return 0, err
		}
		return 1, nil
	}
	recs := make([]*record, len(msgs))
	for i, m := range msgs {
		recs[i] = c.begin(ctx, m)
		c.parse(recs[i])
	}
	ended := 0 // the records before it are settled, their spans ended
	defer func() {
		for _, r := range recs[ended:] {
			r.span.End()
		}
	}()
	bctx, bspan := c.tracer.Start(ctx, "notify deliver batch", trace.WithLinks(spanLinks(recs)...),
		trace.WithAttributes(attribute.String(httpserver.DomainAttribute, Domain), attribute.Int("paygate.notify.records", len(recs))))
	err := c.deliver(bctx, recs)
	if err != nil {
		bspan.SetStatus(codes.Error, redact(err.Error()))
	}
	bspan.End()
	if err != nil {
		for _, r := range recs {
			_ = c.failed(r, err)
		}
		return 0, err
	}
	for i, r := range recs {
		if err := c.finish(r); err != nil {
			return i, err
		}
		r.span.End()
		ended = i + 1
	}
	return len(recs), nil
}

func spanLinks(recs []*record) []trace.Link {
	links := make([]trace.Link, len(recs))
	for i, r := range recs {
		links[i] = trace.Link{SpanContext: r.span.SpanContext()}
	}
	return links
}

// maxBatch is the most records of a partition handled together.
const maxBatch = 64

// maxParallelSends is how many mails are claimed and sent at once. A
// claim's lease covers one SMTP conversation (ClaimLease), so every mail
// claimed together is sent at once, each over its own connection. It is
// also what a crash can duplicate: mails the relay accepted but that are
// not yet recorded (they are recorded together once the slowest is
// out) are sent again after their claims lapse. The long chaos run saw 17
// duplicates at a kill -9 with 8, 3 with one event's two mails; 4 halves
// the commits of the latter and bounds the former.
const maxParallelSends = 4

// deliver sends the mails of recs unless they were sent before, and
// stores each mail's outcome in its record's errs. The mails are taken
// maxParallelSends at a time: claimed in one commit, sent in parallel
// (each conversation starts right after the claim, so each ends within
// its lease), and recorded as sent in the commit that claims the next
// ones (the last ones in a commit of their own). Commits go through the
// consumer's committer, shared by the partitions' handlers. It returns an
// error, the database's, only when the records must be read again.
func (c *Consumer) deliver(ctx context.Context, recs []*record) error {
	type mail struct {
		rec *record
		out int // index in rec.outs
		key mailKey
		msg Message
	}
	var mails []mail
	// A mail is claimed once per statement (ON CONFLICT cannot touch a
	// row twice), and an event can come twice in one batch (a relay that
	// published it again after a crash): the second is a duplicate.
	seen := make(map[mailKey]bool)
	for _, r := range recs {
		r.errs = make([]error, len(r.outs))
		for i, o := range r.outs {
			subject, text, html, err := c.renderer.Render(o.template, o.view)
			if err != nil {
				// A template that cannot render this payload will not
				// render it on the next attempt either.
				c.metrics.email(r.ctx, o.template, ResultFailed)
				r.errs[i] = Permanent(err)
				continue
			}
			k := mailKey{event: r.eventID, recipient: o.to, template: o.template}
			if seen[k] {
				// The same mail twice (same Message-ID): sent once.
				c.metrics.email(r.ctx, o.template, ResultDuplicate)
				continue
			}
			seen[k] = true
			mails = append(mails, mail{rec: r, out: i, key: k, msg: Message{ID: messageID(r.eventID, o.template), To: o.to,
				Subject: subject, Text: text, HTML: html, Template: o.template}})
		}
	}
	// done are the mails the last chunk sent, not yet recorded; by is
	// when the claims they were sent under end, less a margin.
	var (
		done []mailKey
		by   time.Time
	)
	for len(mails) > 0 {
		chunk := mails[:min(len(mails), maxParallelSends)]
		mails = mails[len(chunk):]
		keys := make([]mailKey, len(chunk))
		for i, m := range chunk {
			keys[i] = m.key
		}
		// The claims hold until at least a lease after this moment (the
		// database stamps them when it runs the claim).
		claimedAt := time.Now()
		err := ctx.Err() // a consumer that stops claims nothing more
		var claims []claimResult
		if err == nil {
			claims, err = c.commit(ctx, write{sent: done, claims: keys})
		}
		if err != nil {
			// The consumer is stopping or the database failed: whether
			// the sent mails were recorded is unknown, so they are
			// recorded on their own before the others are given up.
			if len(done) > 0 {
				if merr := c.markSent(context.WithoutCancel(ctx), done, by); merr != nil {
					return merr
				}
			}
			return err
		}
		done = nil
		var send []int // indexes in chunk of the mails claimed now
		for j, cl := range claims {
			m := chunk[j]
			switch cl.state {
			case claimed:
				send = append(send, j)
			case alreadySent:
				c.metrics.email(m.rec.ctx, m.key.template, ResultDuplicate)
				m.rec.log.Debug("email already sent", zap.String("template", m.key.template))
			case busy:
				m.rec.errs[m.out] = &busyError{until: cl.until}
			}
		}
		sent := make([]bool, len(chunk))
		var wg sync.WaitGroup
		for _, j := range send {
			m := chunk[j]
			if len(send) == 1 {
				sent[j], m.rec.errs[m.out] = c.send(m.rec.ctx, m.rec.log, m.rec.eventID, m.msg)
				break
			}
			wg.Go(func() { sent[j], m.rec.errs[m.out] = c.send(m.rec.ctx, m.rec.log, m.rec.eventID, m.msg) })
		}
		wg.Wait()
		for j, ok := range sent {
			if ok {
				done = append(done, keys[j])
			}
		}
		by = claimedAt.Add(c.store.Lease() - markSentMargin)
	}
	if len(done) == 0 {
		return nil
	}
	// The mails are out: recording that must not give up while the
	// claims hold, or a redelivery would send them again once the claims
	// lapsed. A database restart takes seconds, so the record is retried
	// until shortly before the claims end.
	return c.markSent(context.WithoutCancel(ctx), done, by)
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
func (c *Consumer) markSent(ctx context.Context, keys []mailKey, by time.Time) error {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		_, err := c.commit(ctx, write{sent: keys})
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

func (c *Consumer) retry(r *record, failedAttempts int, notBefore time.Time, cause error) error {
	summary := ErrorSummary(cause)
	err := c.publish(r.ctx, r.msg, c.cfg.RetryTopic, map[string]string{
		HeaderAttempt:   strconv.Itoa(failedAttempts),
		HeaderNotBefore: notBefore.UTC().Format(time.RFC3339Nano),
		HeaderError:     summary,
	})
	if err != nil {
		return c.failed(r, err)
	}
	c.metrics.retry(r.ctx)
	r.span.SetAttributes(attribute.String("paygate.notify.outcome", "retry"))
	r.span.SetStatus(codes.Error, summary)
	r.log.Warn("email will be retried", zap.Time("not_before", notBefore), zap.String("error", summary))
	return nil
}

func (c *Consumer) deadLetter(r *record, reason string, cause error) error {
	summary := ErrorSummary(cause)
	err := c.publish(r.ctx, r.msg, c.cfg.DLQTopic, map[string]string{
		HeaderReason:         reason,
		HeaderError:          summary,
		HeaderAttempt:        strconv.Itoa(r.attempt),
		HeaderDeadLetteredAt: time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return c.failed(r, err)
	}
	c.metrics.deadLetter(r.ctx, reason)
	r.span.SetAttributes(attribute.String("paygate.notify.outcome", "dead_letter"), attribute.String("paygate.notify.reason", reason))
	r.span.SetStatus(codes.Error, summary)
	r.log.Error("event dead-lettered", zap.String("reason", reason), zap.String("error", summary))
	return nil
}

// failed marks the span of a record that will be read again.
func (c *Consumer) failed(r *record, err error) error {
	r.span.SetAttributes(attribute.String("paygate.notify.outcome", "redeliver"))
	r.span.SetStatus(codes.Error, redact(err.Error()))
	return err
}

// publish copies msg to topic with set headers (see kafka.Republish); a
// failure is the broker's, and the record is read again.
func (c *Consumer) publish(ctx context.Context, msg *sarama.ConsumerMessage, topic string, set map[string]string) error {
	return kafka.Republish(ctx, c.pub, c.prop, msg, topic, set)
}
