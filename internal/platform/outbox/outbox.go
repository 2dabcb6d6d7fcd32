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
// delivers it only if that transaction commits. (The money path's batches
// wake their own process's relay after the commit instead; see
// QueueMany.)
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
	// Origin is the context of the request the event belongs to, whose
	// trace context is stored with it; the ctx of Enqueue when nil. A
	// batch that books many requests' changes in one transaction sets it,
	// so that each event continues its own request's trace.
	Origin context.Context
}

// ErrInvalidEvent is returned for an event missing its topic or type.
var ErrInvalidEvent = errors.New("outbox: event needs a topic and a type")

const insertEvents = `-- name: EnqueueEvents
INSERT INTO outbox (event_id, topic, event_key, event_type, source, subject, event_time, payload, traceparent, tracestate)
SELECT u.id, u.topic, u.key, u.type, '', u.subject, u.at, u.payload, u.parent, u.state
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[], $8::text[], $9::text[])
  WITH ORDINALITY AS u(id, topic, key, type, subject, at, payload, parent, state, n)
ORDER BY u.n`

// Enqueue records e in tx. It must be called inside the transaction that
// makes the change e describes; the event is published only if tx commits.
// The W3C trace context of ctx is stored with the event, so the relay's
// publish and every consumer join the caller's trace.
func Enqueue(ctx context.Context, tx pgx.Tx, e Event) (uuid.UUID, error) {
	ids, err := EnqueueMany(ctx, tx, []Event{e})
	if err != nil {
		return uuid.Nil, err
	}
	return ids[0], nil
}

// EnqueueMany is Enqueue for many events, in two statements whatever their
// number (one insert and one notification), sent in one round trip.
func EnqueueMany(ctx context.Context, tx pgx.Tx, events []Event) ([]uuid.UUID, error) {
	b := &pgx.Batch{}
	ids, err := QueueMany(ctx, b, events)
	if err != nil {
		return nil, err
	}
	QueueNotify(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("outbox: insert %d events: %w", len(events), err)
	}
	return ids, nil
}

// QueueMany adds the insert of events to b, for a caller that sends it
// with writes of its own in one round trip; b must be sent in the
// transaction that makes the events' changes. It fails, queueing nothing,
// when an event is invalid or its data cannot be encoded.
//
// It does not wake a relay: the caller either queues QueueNotify in the
// same transaction, or wakes its own process's relay (Relay.Wake) once the
// transaction has committed. The money path does the latter, because a
// NOTIFY serializes commits: PostgreSQL holds one database-wide lock from
// a notifying transaction's pre-commit until its WAL flush is done, so
// two notifying batches cannot share a flush. Without a NOTIFY, a relay
// on another replica learns of the events from its own polling, and the
// local relay, if another replica's holds the relay lock, looks again
// shortly after (see Relay.loop).
func QueueMany(ctx context.Context, b *pgx.Batch, events []Event) ([]uuid.UUID, error) {
	n := len(events)
	ids, topics, keys, types, subjects := make([]uuid.UUID, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times, payloads, parents, states := make([]time.Time, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range events {
		if e.Topic == "" || e.Type == "" {
			return nil, ErrInvalidEvent
		}
		if e.ID == uuid.Nil {
			e.ID = uuid.New()
		}
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		payload, err := json.Marshal(e.Data)
		if err != nil {
			return nil, fmt.Errorf("outbox: encode %s payload: %w", e.Type, err)
		}
		origin := e.Origin
		if origin == nil {
			origin = ctx
		}
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(origin, carrier)
		ids[i], topics[i], keys[i], types[i], subjects[i] = e.ID, e.Topic, e.Key, e.Type, e.Subject
		times[i], payloads[i], parents[i], states[i] = e.Time.UTC(), string(payload), carrier.Get("traceparent"), carrier.Get("tracestate")
	}
	b.Queue(insertEvents, ids, topics, keys, types, subjects, times, payloads, parents, states)
	return ids, nil
}

// QueueNotify adds to b the NOTIFY that wakes every replica's relay when
// b's transaction commits.
func QueueNotify(b *pgx.Batch) {
	b.Queue("-- name: NotifyOutbox\nSELECT pg_notify($1, '')", NotifyChannel)
}
