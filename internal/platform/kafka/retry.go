package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.uber.org/zap"
)

// Headers of a record a consumer republished to its retry or dead-letter
// topic. The original key, value and ce_* headers are kept, so a
// republished record is still the same CloudEvent; these say where it came
// from and what became of it.
const (
	// HeaderAttempt is the number of deliveries of the record that failed
	// so far.
	HeaderAttempt = "paygate-attempt"
	// HeaderNotBefore (RFC 3339, UTC) is when a retry record is due.
	HeaderNotBefore = "paygate-not-before"
	// HeaderError is the last error, as much as may be shown.
	HeaderError = "paygate-error"
	// HeaderReason says why a record was dead-lettered: ReasonPoison,
	// ReasonRejected or ReasonExhausted.
	HeaderReason = "paygate-reason"
	// HeaderOriginTopic, HeaderOriginPartition and HeaderOriginOffset say
	// where the record was first read.
	HeaderOriginTopic     = "paygate-origin-topic"
	HeaderOriginPartition = "paygate-origin-partition"
	HeaderOriginOffset    = "paygate-origin-offset"
	// HeaderDeadLetteredAt (RFC 3339, UTC) is when it was dead-lettered.
	HeaderDeadLetteredAt = "paygate-dead-lettered-at"
	// HeaderReplayedFrom names the dead letter (topic/partition/offset) a
	// replayed record is a copy of.
	HeaderReplayedFrom = "paygate-replayed-from"
)

// Reasons a record is dead-lettered.
const (
	// ReasonPoison: the record cannot be read (not a CloudEvent, a payload
	// that does not parse); no attempt can help.
	ReasonPoison = "poison"
	// ReasonRejected: the handler refused the record for good.
	ReasonRejected = "rejected"
	// ReasonExhausted: the record failed every attempt it was given.
	ReasonExhausted = "exhausted"
)

// DeadLetterReasons lists the reasons.
var DeadLetterReasons = []string{ReasonPoison, ReasonRejected, ReasonExhausted}

// DeadLetterError is a handler's error that sends its record straight to
// the dead-letter topic instead of retrying it.
type DeadLetterError struct {
	Reason string
	Err    error
}

func (e *DeadLetterError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DeadLetterError) Unwrap() error { return e.Err }

// Poison marks err as a record that cannot be read.
func Poison(err error) error { return &DeadLetterError{Reason: ReasonPoison, Err: err} }

// Reject marks err as a record the handler refuses for good.
func Reject(err error) error { return &DeadLetterError{Reason: ReasonRejected, Err: err} }

// Publisher sends records to Kafka; *Producer is one.
type Publisher interface {
	Send(ctx context.Context, msgs []*sarama.ProducerMessage) error
}

// RetryPolicy takes a record that keeps failing off its partition, so that
// it does not hold up the records behind it: after InPlace attempts in a
// row, the record is republished to RetryTopic (which the group also
// reads) to be tried again after a backoff, and after MaxAttempts failed
// deliveries, or at once for a Poison or Reject error, to DLQTopic, where
// an operator lists and replays it.
type RetryPolicy struct {
	RetryTopic string
	DLQTopic   string
	// MaxAttempts bounds the deliveries of a record (each of up to
	// InPlace handler calls) before it is dead-lettered.
	MaxAttempts int
	// InPlace is the number of handler calls per delivery, spaced by the
	// consumer retry backoff; 3 when zero.
	InPlace int
	// Backoff is the wait before the second delivery, doubled for each
	// further one (with jitter) up to MaxBackoff.
	Backoff    time.Duration
	MaxBackoff time.Duration
	Publisher  Publisher
	// Propagator carries the trace context into the republished record;
	// none when nil.
	Propagator propagation.TextMapPropagator
}

// maxRetryWait bounds how long a retry record is waited for in the
// handler: a record due later is requeued after it. It stays well below
// the group's rebalance timeout.
const maxRetryWait = 20 * time.Second

// Metric names of consumers with a RetryPolicy (Prometheus adds _total).
const (
	MetricConsumerRetries     = "paygate.kafka.consumer.retries"
	MetricConsumerDeadLetters = "paygate.kafka.consumer.dead_letters"
)

type retryMetrics struct {
	retries, dead metric.Int64Counter
}

func newRetryMetrics(mp metric.MeterProvider) (*retryMetrics, error) {
	m := mp.Meter("paygate/kafka")
	r, err := m.Int64Counter(MetricConsumerRetries, metric.WithDescription("Records a consumer group republished to its retry topic."))
	if err != nil {
		return nil, err
	}
	d, err := m.Int64Counter(MetricConsumerDeadLetters, metric.WithDescription("Records a consumer group sent to its dead-letter topic, by reason (poison, rejected, exhausted)."))
	if err != nil {
		return nil, err
	}
	return &retryMetrics{retries: r, dead: d}, nil
}

// Attempts returns the failed deliveries a record's header counts.
func Attempts(msg *sarama.ConsumerMessage) int {
	n, err := strconv.Atoi(HeaderMap(msg)[HeaderAttempt])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// WaitUntilDue waits until a retry record's not-before time, at most
// maxRetryWait, or until done closes (errStopped). requeue says the record
// is still not due after the wait and must go back to the retry topic.
func WaitUntilDue(msg *sarama.ConsumerMessage, done <-chan struct{}) (requeue bool, err error) {
	nb, err := time.Parse(time.RFC3339Nano, HeaderMap(msg)[HeaderNotBefore])
	if err != nil {
		return false, nil // no time: due now
	}
	d := time.Until(nb)
	if d <= 0 {
		return false, nil
	}
	if d > maxRetryWait {
		d, requeue = maxRetryWait, true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return requeue, nil
	case <-done:
		return false, ErrStopped
	}
}

// ErrStopped is returned by a wait that the consumer's stop cut short.
var ErrStopped = errors.New("kafka: consumer stopping")

// Republish copies msg (key, value, headers) to topic, with the headers in
// set replacing any of the same name. The trace context of ctx replaces
// the record's, so the next attempt's span follows this one; the origin
// headers are added on the first copy and kept after.
func Republish(ctx context.Context, pub Publisher, prop propagation.TextMapPropagator, msg *sarama.ConsumerMessage, topic string, set map[string]string) error {
	carrier := propagation.MapCarrier{}
	if prop != nil {
		prop.Inject(ctx, carrier)
	}
	headers := make([]sarama.RecordHeader, 0, len(msg.Headers)+len(set)+len(carrier)+3)
	seen := map[string]bool{}
	for _, rh := range msg.Headers {
		if rh == nil {
			continue
		}
		k := strings.ToLower(string(rh.Key))
		if _, replaced := set[k]; replaced || carrier.Get(k) != "" || k == HeaderTraceparent || k == HeaderTracestate {
			continue
		}
		seen[k] = true
		headers = append(headers, sarama.RecordHeader{Key: rh.Key, Value: rh.Value})
	}
	add := func(k, v string) { headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}) }
	for _, k := range carrier.Keys() {
		add(k, carrier.Get(k))
	}
	if !seen[HeaderOriginTopic] {
		add(HeaderOriginTopic, msg.Topic)
		add(HeaderOriginPartition, strconv.Itoa(int(msg.Partition)))
		add(HeaderOriginOffset, strconv.FormatInt(msg.Offset, 10))
	}
	for k, v := range set {
		add(k, v)
	}
	pm := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(msg.Value), Headers: headers}
	if msg.Key != nil {
		pm.Key = sarama.ByteEncoder(msg.Key)
	}
	if err := pub.Send(ctx, []*sarama.ProducerMessage{pm}); err != nil {
		return fmt.Errorf("kafka: republish to %s: %w", topic, err)
	}
	return nil
}

// route sends a record whose delivery failed with err to the retry or the
// dead-letter topic; failed counts the deliveries that failed, this one
// included.
func (p *RetryPolicy) route(ctx context.Context, g *GroupRunner, msg *sarama.ConsumerMessage, failed int, cause error) error {
	summary := cause.Error()
	if len(summary) > 500 {
		summary = summary[:500]
	}
	reason := ""
	var dl *DeadLetterError
	switch {
	case errors.As(cause, &dl):
		reason = dl.Reason
	case failed >= p.MaxAttempts:
		reason = ReasonExhausted
	}
	log := g.log.With(zap.String("topic", msg.Topic), zap.Int32("partition", msg.Partition), zap.Int64("offset", msg.Offset),
		zap.String("event_id", HeaderMap(msg)[HeaderID]), zap.Int("attempt", failed), zap.String("error", summary))
	if reason != "" {
		err := Republish(ctx, p.Publisher, p.Propagator, msg, p.DLQTopic, map[string]string{
			HeaderReason: reason, HeaderError: summary, HeaderAttempt: strconv.Itoa(failed),
			HeaderDeadLetteredAt: time.Now().UTC().Format(time.RFC3339Nano),
		})
		if err != nil {
			return err
		}
		g.metrics.dead.Add(ctx, 1, metric.WithAttributes(attribute.String("group", g.label), attribute.String("reason", reason)))
		log.Error("record dead-lettered", zap.String("reason", reason), zap.String("dlq", p.DLQTopic))
		return nil
	}
	notBefore := time.Now().Add(RetryDelay(p.Backoff, p.MaxBackoff, failed-1))
	err := Republish(ctx, p.Publisher, p.Propagator, msg, p.RetryTopic, map[string]string{
		HeaderAttempt: strconv.Itoa(failed), HeaderNotBefore: notBefore.UTC().Format(time.RFC3339Nano), HeaderError: summary,
	})
	if err != nil {
		return err
	}
	g.metrics.retries.Add(ctx, 1, metric.WithAttributes(attribute.String("group", g.label)))
	log.Warn("record moved to the retry topic", zap.Time("not_before", notBefore))
	return nil
}
