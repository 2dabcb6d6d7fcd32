package notify_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// harness runs the consumer built by hand, without fx: a fresh database,
// its own broker and SMTP server, in-memory spans and metrics.
type harness struct {
	cfg      config.Notify
	kafka    config.Kafka
	pool     *pgxpool.Pool
	broker   *kafkatest.Broker
	smtp     *smtptest.Server
	producer *kafka.Producer
	consumer *notify.Consumer
	spans    *tracetest.SpanRecorder
	tp       *sdktrace.TracerProvider
	metrics  *sdkmetric.ManualReader
}

func newHarness(t *testing.T, lease time.Duration, adjust ...func(*config.Notify)) *harness {
	t.Helper()
	return newHarnessWith(t, lease, harnessOptions{}, adjust...)
}

// harnessOptions change how the harness reaches its database and SMTP.
type harnessOptions struct {
	// dbURL maps the test database's URL to the one the consumer uses
	// (through a proxy that can take the database away).
	dbURL func(string) string
	// sender wraps the SMTP sender.
	sender func(notify.Sender) notify.Sender
}

func newHarnessWith(t *testing.T, lease time.Duration, o harnessOptions, adjust ...func(*config.Notify)) *harness {
	t.Helper()
	h := &harness{cfg: notifyConfig(), smtp: smtptest.Start(t), spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader()}
	for _, f := range adjust {
		f(&h.cfg)
	}
	dbURL := pgtest.NewDatabase(t)
	if o.dbURL != nil {
		dbURL = o.dbURL(dbURL)
	}
	h.pool = pgtest.NewPool(t, dbURL)
	h.broker = kafkatest.NewBroker(t)
	k := h.broker.Config()
	h.kafka = k
	log := zaptest.NewLogger(t)
	h.producer = kafka.NewProducer(k, []kafka.TopicSpec{{Name: k.TopicAuth}, {Name: k.TopicTopup}, {Name: k.TopicTransfer},
		{Name: k.TopicWithdraw}, {Name: h.cfg.RetryTopic}, {Name: h.cfg.DLQTopic}}, log)
	t.Cleanup(func() { _ = h.producer.Close() })
	sender, err := notify.NewSMTPSender(config.SMTP{Host: h.smtp.Host, Port: h.smtp.Port, TLS: "none", Timeout: 2 * time.Second,
		From: "paygate <no-reply@paygate.test>"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	var snd notify.Sender = sender
	if o.sender != nil {
		snd = o.sender(sender)
	}
	h.consumer, err = notify.NewConsumer(notify.ConsumerParams{Config: h.cfg, Kafka: k, Store: notify.NewStore(h.pool, lease),
		Sender: snd, Publisher: h.producer, TracerProvider: h.tp,
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.metrics)),
		Propagator:    propagation.TraceContext{}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.consumer.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.consumer.Stop(context.Background()) })
	return h
}

func (h *harness) addr() string { return h.kafka.Brokers[0] }

func (h *harness) publish(t *testing.T, msgs ...*sarama.ProducerMessage) {
	t.Helper()
	if err := h.producer.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) dlq(t *testing.T, n int, timeout time.Duration) []kafkatest.Record {
	t.Helper()
	return readTopic(t, h.addr(), h.cfg.DLQTopic, n, timeout)
}

func registered(email string) events.UserRegistered {
	return events.UserRegistered{UserID: uuid.New(), Email: email, Firstname: "Ann", Lastname: "A",
		AccountNumber: "1234567890123456", Role: "user", RegisteredAt: time.Now()}
}

func TestRejectedMailIsDeadLetteredAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.smtp.RefuseRecipients(refusePrefix("gone", 550))
	id := uuid.NewString()
	h.publish(t, cloudEvent(t, h.kafka.TopicAuth, "u1", events.TypeUserRegistered, id, registered("gone@example.com"), nil),
		cloudEvent(t, h.kafka.TopicAuth, "u2", events.TypeUserRegistered, uuid.NewString(), registered("here@example.com"), nil))

	recs := h.dlq(t, 1, 30*time.Second)
	if len(recs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(recs))
	}
	r := recs[0]
	if r.Headers[notify.HeaderReason] != notify.ReasonRejected || r.Headers[notify.HeaderAttempt] != "1" ||
		!strings.Contains(r.Headers[notify.HeaderError], "550") || r.Headers[kafka.HeaderID] != id {
		t.Fatalf("dead letter headers %v", r.Headers)
	}
	if strings.Contains(r.Headers[notify.HeaderError], "@") {
		t.Fatalf("error header shows an address: %q", r.Headers[notify.HeaderError])
	}
	h.smtp.Wait(t, 1, 30*time.Second)
	// The counter moves once the dead letter is acknowledged, a moment
	// after it became readable.
	rejected := func() int64 {
		return counter(t, h.metrics, notify.MetricDeadLetters, attribute.String("reason", notify.ReasonRejected))
	}
	eventually(t, 5*time.Second, "the dead letter to be counted", func() bool { return rejected() >= 1 })
	if got := rejected(); got != 1 {
		t.Fatalf("dead letters (rejected) = %d, want 1", got)
	}
	if got := counter(t, h.metrics, notify.MetricRetries); got != 0 {
		t.Fatalf("retries = %d, want 0: a 5xx is not retried", got)
	}
	if n := len(h.broker.ReadToEnd(t, h.cfg.RetryTopic)); n != 0 {
		t.Fatalf("%d records in the retry topic, want 0", n)
	}
}

// TestSpansContinueTheProducerTrace checks the consumer span joins the
// trace of the traceparent header, the SMTP span is its child, both carry
// paygate.domain=email and the event id, and no span shows an email
// address or an account number.
func TestSpansContinueTheProducerTrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	producerTP := sdktrace.NewTracerProvider()
	ctx, parent := producerTP.Tracer("test").Start(context.Background(), "request")
	parent.End()
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)

	id := uuid.NewString()
	p := events.TransferSucceeded{TransferID: uuid.New(), Amount: 50000, Currency: "IDR", Note: "rent", CreatedAt: time.Now(),
		Sender:    events.TransferParty{UserID: uuid.New(), Email: "alice@example.com", Firstname: "Alice", AccountNumber: "1111222233334444", BalanceAfter: 1},
		Recipient: events.TransferParty{UserID: uuid.New(), Email: "bob@example.com", Firstname: "Bob", AccountNumber: "5555666677778888", BalanceAfter: 2}}
	h.publish(t, cloudEvent(t, h.kafka.TopicTransfer, "alice", events.TypeTransferSucceeded, id, p, map[string]string{"traceparent": carrier.Get("traceparent")}))
	h.smtp.Wait(t, 2, 30*time.Second)
	_ = h.tp.ForceFlush(context.Background())

	var consume sdktrace.ReadOnlySpan
	var sends []sdktrace.ReadOnlySpan
	eventually(t, 5*time.Second, "spans", func() bool {
		consume, sends = nil, nil
		for _, s := range h.spans.Ended() {
			switch s.SpanKind() {
			case trace.SpanKindConsumer:
				consume = s
			case trace.SpanKindClient:
				sends = append(sends, s)
			}
		}
		return consume != nil && len(sends) == 2
	})
	if consume.SpanContext().TraceID() != parent.SpanContext().TraceID() || consume.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("consumer span is not a child of the producer's span")
	}
	for _, s := range append(sends, consume) {
		if s != consume && s.Parent().SpanID() != consume.SpanContext().SpanID() {
			t.Errorf("%s is not a child of the consumer span", s.Name())
		}
		attrs := map[attribute.Key]string{}
		for _, a := range s.Attributes() {
			v := a.Value.String()
			attrs[a.Key] = v
			if strings.Contains(v, "@") || strings.Contains(v, "1111222233334444") || strings.Contains(v, "5555666677778888") {
				t.Errorf("span %s attribute %s = %q shows personal data", s.Name(), a.Key, v)
			}
		}
		if attrs[httpserver.DomainAttribute] != notify.Domain || attrs["cloudevents.event_id"] != id {
			t.Errorf("span %s attributes %v", s.Name(), attrs)
		}
	}
}

// TestPendingRowLeftByACrashIsResent: a claim that expired (the consumer
// died between claiming and marking) is taken again and the mail sent; a
// claim still held makes the record wait in the retry topic, without
// spending an attempt, and the mail goes out once the claim expires.
func TestPendingRowLeftByACrashIsResent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute, func(c *config.Notify) { c.MaxAttempts = 1 })
	ctx := context.Background()
	expired, held := uuid.New(), uuid.New()
	if _, err := h.pool.Exec(ctx, `INSERT INTO notify_deliveries (event_id, recipient, template, attempts, claimed_until)
VALUES ($1, 'crash@example.com', 'welcome', 1, now() - interval '1 second'),
       ($2, 'held@example.com', 'welcome', 1, now() + interval '1500 milliseconds')`, expired, held); err != nil {
		t.Fatal(err)
	}
	h.publish(t, cloudEvent(t, h.kafka.TopicAuth, "u1", events.TypeUserRegistered, expired.String(), registered("crash@example.com"), nil),
		cloudEvent(t, h.kafka.TopicAuth, "u2", events.TypeUserRegistered, held.String(), registered("held@example.com"), nil))
	msgs := h.smtp.Wait(t, 2, 30*time.Second)
	if len(h.smtp.To("crash@example.com")) != 1 || len(h.smtp.To("held@example.com")) != 1 {
		t.Fatalf("mails: %d to crash@, %d to held@; want 1 each", len(h.smtp.To("crash@example.com")), len(h.smtp.To("held@example.com")))
	}
	if eventOf(msgs[0]) != expired.String() {
		t.Fatalf("first mail is of event %s, want the expired claim's %s", eventOf(msgs[0]), expired)
	}
	var attempts int
	var status string
	eventually(t, 5*time.Second, "the held row marked sent", func() bool {
		if err := h.pool.QueryRow(ctx, `SELECT status, attempts FROM notify_deliveries WHERE event_id = $1`, held).Scan(&status, &attempts); err != nil {
			t.Fatal(err)
		}
		return status == notify.StatusSent
	})
	if attempts != 2 {
		t.Fatalf("held row: %s after %d attempts, want sent after 2", status, attempts)
	}
	// MaxAttempts is 1: waiting for another consumer's claim spent none.
	if n := len(h.broker.ReadToEnd(t, h.cfg.DLQTopic)); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
}

// TestStopDoesNotWaitForARetryRecord: a retry record not due yet does not
// hold up shutdown, and it stays uncommitted to be read after a restart.
func TestStopDoesNotWaitForARetryRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	pm := cloudEvent(t, h.cfg.RetryTopic, "u1", events.TypeUserRegistered, uuid.NewString(), registered("later@example.com"), map[string]string{
		notify.HeaderAttempt: "1", notify.HeaderNotBefore: time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)})
	h.publish(t, pm)
	// Wait until the consumer holds the record: its span has started.
	// That is the whole condition. From there the handler only parses the
	// headers before it waits on the stop signal or the record's time,
	// whichever comes first, so a Stop that arrives before the wait has
	// begun interrupts it just the same; no pause is needed.
	eventually(t, 30*time.Second, "the consumer to take the retry record", func() bool {
		for _, s := range h.spans.Started() {
			if s.SpanKind() == trace.SpanKindConsumer {
				return true
			}
		}
		return false
	})
	start := time.Now()
	if err := h.consumer.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %s", d)
	}
	if caughtUp(t, h.broker, h.cfg.Group, []string{h.cfg.RetryTopic}) {
		t.Fatal("the waiting retry record was committed")
	}
	if n := len(h.smtp.Messages()); n != 0 {
		t.Fatalf("%d mails sent before the record was due", n)
	}
	interrupted := false
	for _, s := range h.spans.Ended() {
		for _, a := range s.Attributes() {
			interrupted = interrupted || (a.Key == "paygate.notify.outcome" && a.Value.AsString() == "interrupted")
		}
	}
	if !interrupted {
		t.Fatal("no consumer span ended interrupted: the record was not waiting")
	}
}

func TestIgnoredEventsAreConsumedWithoutMail(t *testing.T) {
	t.Parallel()
	h := newHarness(t, time.Minute)
	h.publish(t,
		cloudEvent(t, h.kafka.TopicTopup, "u1", events.TypeTopUpReversed, uuid.NewString(), events.TopUpReversed{TopUpID: uuid.New(), Amount: 1, Currency: "IDR"}, nil),
		cloudEvent(t, h.kafka.TopicTransfer, "u1", events.TypeTransferReversed, uuid.NewString(), events.TransferReversed{TransferID: uuid.New(), Amount: 1, Currency: "IDR"}, nil))
	waitCaughtUp(t, h.broker, h.cfg.Group, []string{h.kafka.TopicTopup, h.kafka.TopicTransfer}, 30*time.Second)
	if n := len(h.broker.ReadToEnd(t, h.cfg.DLQTopic)); n != 0 {
		t.Fatalf("%d dead letters, want 0", n)
	}
	if n := len(h.smtp.Messages()); n != 0 {
		t.Fatalf("%d mails, want 0", n)
	}
}
