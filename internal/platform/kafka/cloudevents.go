package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"go.opentelemetry.io/otel/propagation"
)

// Header names of the CloudEvents Kafka protocol binding, binary content
// mode: every context attribute is a "ce_"-prefixed header and the data is
// the record value, its media type in "content-type".
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderSource      = "ce_source"
	HeaderType        = "ce_type"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	// HeaderTraceparent carries the W3C trace context, so a consumer's span
	// joins the trace of the request that caused the event.
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// ErrNotCloudEvent is returned for a record that is not a valid CloudEvent
// in binary mode.
var ErrNotCloudEvent = errors.New("not a binary-mode CloudEvent")

// ToProducerMessage encodes e as a Kafka record in binary content mode on
// topic with the given key. e is validated against the CloudEvents 1.0 spec
// first. Extra headers (such as traceparent) are added as they are.
func ToProducerMessage(e cloudevents.Event, topic, key string, extra map[string]string) (*sarama.ProducerMessage, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("invalid cloudevent: %w", err)
	}
	headers := []sarama.RecordHeader{
		{Key: []byte(HeaderSpecVersion), Value: []byte(e.SpecVersion())},
		{Key: []byte(HeaderID), Value: []byte(e.ID())},
		{Key: []byte(HeaderSource), Value: []byte(e.Source())},
		{Key: []byte(HeaderType), Value: []byte(e.Type())},
		{Key: []byte(HeaderTime), Value: []byte(e.Time().UTC().Format(time.RFC3339Nano))},
	}
	if s := e.Subject(); s != "" {
		headers = append(headers, sarama.RecordHeader{Key: []byte(HeaderSubject), Value: []byte(s)})
	}
	if ct := e.DataContentType(); ct != "" {
		headers = append(headers, sarama.RecordHeader{Key: []byte(HeaderContentType), Value: []byte(ct)})
	}
	for k, v := range extra {
		if v != "" {
			headers = append(headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
	}
	return &sarama.ProducerMessage{
		Topic:   topic,
		Key:     sarama.StringEncoder(key),
		Value:   sarama.ByteEncoder(e.Data()),
		Headers: headers,
	}, nil
}

// FromConsumerMessage decodes a binary-mode record into a CloudEvent and
// validates it.
func FromConsumerMessage(m *sarama.ConsumerMessage) (cloudevents.Event, error) {
	h := HeaderMap(m)
	if h[HeaderSpecVersion] == "" {
		return cloudevents.Event{}, ErrNotCloudEvent
	}
	e := cloudevents.New(h[HeaderSpecVersion])
	e.SetID(h[HeaderID])
	e.SetSource(h[HeaderSource])
	e.SetType(h[HeaderType])
	if s := h[HeaderSubject]; s != "" {
		e.SetSubject(s)
	}
	if ts := h[HeaderTime]; ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return cloudevents.Event{}, fmt.Errorf("%w: bad ce_time: %v", ErrNotCloudEvent, err)
		}
		e.SetTime(t)
	}
	if ct := h[HeaderContentType]; ct != "" {
		e.SetDataContentType(ct)
	}
	e.DataEncoded = m.Value
	if err := e.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: %v", ErrNotCloudEvent, err)
	}
	return e, nil
}

// HeaderMap returns the record's headers by name; a repeated header keeps
// its last value.
func HeaderMap(m *sarama.ConsumerMessage) map[string]string {
	out := make(map[string]string, len(m.Headers))
	for _, h := range m.Headers {
		if h != nil {
			out[strings.ToLower(string(h.Key))] = string(h.Value)
		}
	}
	return out
}

// headerCarrier adapts consumer record headers to the OTel propagation API.
type headerCarrier map[string]string

func (c headerCarrier) Get(key string) string { return c[strings.ToLower(key)] }
func (c headerCarrier) Set(key, value string) { c[strings.ToLower(key)] = value }
func (c headerCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// ExtractContext returns ctx carrying the trace context found in m's
// headers, so that work done for the record continues the producer's trace.
func ExtractContext(ctx context.Context, p propagation.TextMapPropagator, m *sarama.ConsumerMessage) context.Context {
	return p.Extract(ctx, headerCarrier(HeaderMap(m)))
}
