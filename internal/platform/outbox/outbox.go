// Package outbox implements the transactional outbox: a domain calls
// Enqueue inside the database transaction that makes a change, so the event
// exists if and only if the change committed; the Relay then publishes
// pending events to Kafka as CloudEvents and marks them sent.
//
// Delivery is at least once: a crash after Kafka acknowledged a batch but
// before the relay's commit republishes that batch. Every event carries a
// unique ce_id for consumers to deduplicate on.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/propagation"
)

// NotifyChannel is the LISTEN/NOTIFY channel that wakes the relay. The
// notification is sent inside the enqueuing transaction, so Postgres
// delivers it only if that transaction commits.
const NotifyChannel = "paygate_outbox"

// Event is a domain event to publish.
type Event struct {
	// ID is the CloudEvents id; a random UUID when zero.
	ID uuid.UUID
	// Topic is the Kafka topic.
	Topic string
	// Key is the record key: the user or account the event is about, so
	// that one user's events stay in order on one partition.
	Key string
	// Type is the CloudEvents type, e.g. "paygate.transfer.succeeded".
	Type string
	// Subject is the CloudEvents subject: the resource the event is about.
	Subject string
	// Time is when the change happened; now when zero.
	Time time.Time
	// Data is the payload, encoded as JSON.
	Data any
}

// ErrInvalidEvent is returned for an event missing its topic or type.
var ErrInvalidEvent = errors.New("outbox: event needs a topic and a type")

const insertEvent = `-- name: EnqueueEvent
INSERT INTO outbox (event_id, topic, event_key, event_type, source, subject, event_time, payload, traceparent, tracestate)
VALUES ($1, $2, $3, $4, '', $5, $6, $7, $8, $9)`

// Enqueue records e in tx. It must be called inside the transaction that
// makes the change e describes; the event is published only if tx commits.
// The W3C trace context of ctx is stored with the event, so the relay's
// publish and every consumer join the caller's trace.
func Enqueue(ctx context.Context, tx pgx.Tx, e Event) (uuid.UUID, error) {
	if e.Topic == "" || e.Type == "" {
		return uuid.Nil, ErrInvalidEvent
	}
	if e.ID == uuid.Nil {
		e.ID = uuid.New()
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	payload, err := json.Marshal(e.Data)
	if err != nil {
		return uuid.Nil, fmt.Errorf("outbox: encode %s payload: %w", e.Type, err)
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	if _, err := tx.Exec(ctx, insertEvent, e.ID, e.Topic, e.Key, e.Type, e.Subject, e.Time.UTC(), payload,
		carrier.Get("traceparent"), carrier.Get("tracestate")); err != nil {
		return uuid.Nil, fmt.Errorf("outbox: insert %s: %w", e.Type, err)
	}
	if _, err := tx.Exec(ctx, "-- name: NotifyOutbox\nSELECT pg_notify($1, '')", NotifyChannel); err != nil {
		return uuid.Nil, fmt.Errorf("outbox: notify: %w", err)
	}
	return e.ID, nil
}
