package notify

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names of the email consumer (Prometheus adds _total). Labels are
// bounded: template (the kinds of Templates), result and reason (the
// constants below); never an address or an id.
const (
	// MetricEmails counts mails by template and result: sent, failed (one
	// failed SMTP attempt), duplicate (skipped: already sent for a
	// redelivered event).
	MetricEmails = "paygate.notify.emails"
	// MetricDeadLetters counts records sent to the dead-letter topic by
	// reason: poison, rejected (5xx) or exhausted (out of attempts).
	MetricDeadLetters = "paygate.notify.dead_letters"
	// MetricRetries counts records republished to the retry topic.
	MetricRetries = "paygate.notify.retries"
	// MetricSMTPConnections counts the SMTP connections messages went
	// over, by outcome (ConnDialed, ConnReused, ConnStale): dialed ÷
	// (dialed + reused) is the share of mails that paid for a handshake.
	MetricSMTPConnections = "paygate.notify.smtp_connections"
	// MetricBatchSize is the number of records of one partition handled
	// together (their mails claimed and recorded in shared statements).
	MetricBatchSize = "paygate.notify.batch_size"
)

// Results and reasons, the values of the metric labels.
const (
	ResultSent      = "sent"
	ResultFailed    = "failed"
	ResultDuplicate = "duplicate"

	ReasonPoison    = "poison"
	ReasonRejected  = "rejected"
	ReasonExhausted = "exhausted"
)

type metrics struct {
	emails      metric.Int64Counter
	deadLetters metric.Int64Counter
	retries     metric.Int64Counter
	batchSize   metric.Int64Histogram
	// sent holds the attributes of each template's sent mails, built
	// once: the one count every mail makes.
	sent map[string]metric.AddOption
}

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	m := mp.Meter("paygate/notify")
	emails, err := m.Int64Counter(MetricEmails, metric.WithDescription("Emails by template and result (sent, failed attempt, duplicate skipped)."))
	if err != nil {
		return nil, err
	}
	dead, err := m.Int64Counter(MetricDeadLetters, metric.WithDescription("Records sent to the email dead-letter topic, by reason (poison, rejected, exhausted)."))
	if err != nil {
		return nil, err
	}
	retries, err := m.Int64Counter(MetricRetries, metric.WithDescription("Records republished to the email retry topic."))
	if err != nil {
		return nil, err
	}
	batchSize, err := m.Int64Histogram(MetricBatchSize, metric.WithDescription("Records of one partition handled together: their mails claimed and recorded in shared statements."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64))
	if err != nil {
		return nil, err
	}
	sent := make(map[string]metric.AddOption, len(Templates))
	for _, t := range Templates {
		sent[t] = emailAttrs(t, ResultSent)
	}
	return &metrics{emails: emails, deadLetters: dead, retries: retries, batchSize: batchSize, sent: sent}, nil
}

func (m *metrics) batch(ctx context.Context, records int) {
	m.batchSize.Record(ctx, int64(records))
}

func (m *metrics) email(ctx context.Context, template, result string) {
	attrs, ok := m.sent[template]
	if !ok || result != ResultSent {
		attrs = emailAttrs(template, result)
	}
	m.emails.Add(ctx, 1, attrs)
}

func emailAttrs(template, result string) metric.AddOption {
	return metric.WithAttributes(attribute.String("template", template), attribute.String("result", result))
}

func (m *metrics) deadLetter(ctx context.Context, reason string) {
	m.deadLetters.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
}

func (m *metrics) retry(ctx context.Context) {
	m.retries.Add(ctx, 1)
}
