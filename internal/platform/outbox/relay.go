package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Sender publishes records and reports the ones not acknowledged with a
// *kafka.SendError.
type Sender interface {
	Send(ctx context.Context, msgs []*sarama.ProducerMessage) error
}

// relayLockKey is the transaction-level advisory lock each relay batch
// takes ("paygrely"). Only one batch runs at a time across all replicas,
// which is what keeps events with the same key in id order on Kafka; FOR
// UPDATE SKIP LOCKED below is the second line of defence.
const relayLockKey int64 = 0x7061796772656c79

// MaxRetryBackoff is the longest pause between two failed publishes
// (unless PAYGATE_OUTBOX_RETRY_BACKOFF is longer): the doubling stops there,
// so that a broker back from an outage gets the events it missed within
// 5 s, however long it was away. A failed attempt costs one short
// transaction and one refused connection.
const MaxRetryBackoff = 5 * time.Second

// Relay publishes pending outbox rows to Kafka.
type Relay struct {
	pool   *pgxpool.Pool
	sender Sender
	cfg    config.Outbox
	log    *zap.Logger
	tracer trace.Tracer

	wake chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRelay returns a relay; Start runs it. tp may be nil (no spans).
func NewRelay(pool *pgxpool.Pool, sender Sender, cfg config.Outbox, log *zap.Logger, tp trace.TracerProvider) *Relay {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	return &Relay{pool: pool, sender: sender, cfg: cfg, log: log, tracer: tp.Tracer("paygate/outbox"), wake: make(chan struct{}, 1)}
}

// Start launches the listener and the publish loop.
func (r *Relay) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	r.wg.Add(2)
	go func() { defer r.wg.Done(); r.listen(ctx) }()
	go func() { defer r.wg.Done(); r.loop(ctx) }()
	return nil
}

// Stop ends the relay after the batch in progress, if any, has been
// published and committed.
func (r *Relay) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wake asks the loop to look for pending events now.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listen turns NOTIFYs on NotifyChannel into wake-ups. When the connection
// breaks it reconnects; meanwhile polling keeps events moving.
func (r *Relay) listen(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.listenOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.Debug("outbox listen interrupted", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.PollInterval):
			}
		}
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection ends in LISTEN state; it is not returned to the pool.
	defer func() { _ = conn.Hijack().Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "-- name: ListenOutbox\nLISTEN "+NotifyChannel); err != nil {
		return err
	}
	r.Wake() // events may have been enqueued while nobody listened
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		r.Wake()
	}
}

func (r *Relay) loop(ctx context.Context) {
	backoff := r.cfg.RetryBackoff
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	cleanup := time.NewTicker(time.Hour)
	defer cleanup.Stop()
	r.cleanup(ctx)
	for {
		// A batch runs to its end even when Stop is called meanwhile.
		n, err := r.relayOnce(context.WithoutCancel(ctx))
		var again <-chan time.Time
		if errors.Is(err, errLockedElsewhere) {
			err = nil
			// Another replica's relay holds the lock. It may have read the
			// outbox before what woke this one committed, and only a NOTIFY
			// would wake it again, which the money path does not send (see
			// QueueMany): look again shortly instead of waiting for a poll.
			again = time.After(min(lockedElsewhereRetry, r.cfg.PollInterval))
		}
		switch {
		case err != nil:
			r.log.Warn("outbox relay failed; events stay pending", zap.Error(err), zap.Duration("backoff", backoff))
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, max(r.cfg.RetryBackoff, MaxRetryBackoff))
			continue
		case n == r.cfg.BatchSize:
			backoff = r.cfg.RetryBackoff
			if ctx.Err() != nil {
				return
			}
			continue // more may be waiting
		}
		backoff = r.cfg.RetryBackoff
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			// Events rarely come alone: those committed during the
			// linger go in the same batch (one transaction, one send).
			if r.cfg.Linger > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(r.cfg.Linger):
				}
			}
		case <-again:
		case <-poll.C:
		case <-cleanup.C:
			r.cleanup(ctx)
		}
	}
}

// lockedElsewhereRetry is how soon a relay that found the relay lock taken
// tries again.
const lockedElsewhereRetry = 25 * time.Millisecond

// traceContext returns a context carrying the trace context stored with
// the event.
func (p pendingRow) traceContext() context.Context {
	carrier := propagation.MapCarrier{"traceparent": p.traceparent, "tracestate": p.tracestate}
	return propagation.TraceContext{}.Extract(context.Background(), carrier)
}

// DomainOf returns the paygate.domain of an event type such as
// "paygate.transfer.succeeded" (user events belong to auth).
func DomainOf(eventType string) string {
	parts := strings.Split(eventType, ".")
	if len(parts) < 3 {
		return "unknown"
	}
	switch parts[1] {
	case "user":
		return "auth"
	case "withdrawal":
		return "withdraw"
	default:
		return parts[1]
	}
}

type pendingRow struct {
	id          int64
	eventID     uuid.UUID
	topic       string
	key         string
	eventType   string
	source      string
	subject     string
	eventTime   time.Time
	payload     []byte
	traceparent string
	tracestate  string
}

const selectPending = `-- name: SelectPendingEvents
SELECT id, event_id, topic, event_key, event_type, source, subject, event_time, payload, traceparent, tracestate
FROM outbox
WHERE sent_at IS NULL AND parked_at IS NULL
ORDER BY id
LIMIT $1
FOR UPDATE SKIP LOCKED`

const markSent = `-- name: MarkEventsSent
UPDATE outbox SET sent_at = now(), attempts = attempts + 1, last_error = '' WHERE id = ANY($1)`

const markFailed = `-- name: MarkEventsFailed
UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1)`

const markParked = `-- name: ParkEvent
UPDATE outbox SET attempts = attempts + 1, last_error = $2, parked_at = now() WHERE id = $1`

// RelayOnce publishes one batch of pending events in id order and marks
// the acknowledged ones sent, all in one transaction. It returns how many
// events it published. Events Kafka did not acknowledge stay pending with
// their error recorded, and are tried again by a later batch; an event
// the broker refuses for good (kafka.Permanent), or one that cannot be
// made into a record, is parked instead: kept with its error, out of the
// relay's way, and counted by the parked gauge.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	n, err := r.relayOnce(ctx)
	if errors.Is(err, errLockedElsewhere) {
		return 0, nil
	}
	return n, err
}

// errLockedElsewhere is relayOnce's answer when another relay holds the
// relay lock.
var errLockedElsewhere = errors.New("outbox: another relay holds the lock")

// relayOnce is RelayOnce, failing with errLockedElsewhere when another
// relay holds the lock.
func (r *Relay) relayOnce(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	// The batch's COMMIT does not wait for its WAL flush (synchronous_commit
	// off, for this transaction only). That weakens nothing: a "sent" mark
	// lost in a crash of PostgreSQL publishes its event again, which the
	// relay's at-least-once contract already allows (it can stop between
	// the broker's ack and its COMMIT) and every consumer deduplicates by
	// event id. It spares the transfers' commits, which must wait for
	// theirs, a flush to queue behind, once per relay batch.
	var locked bool
	var syncCommit string
	if err := tx.QueryRow(ctx, "-- name: TryLockRelay\nSELECT pg_try_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)",
		relayLockKey).Scan(&locked, &syncCommit); err != nil {
		return 0, fmt.Errorf("outbox: lock: %w", err)
	}
	if !locked {
		return 0, errLockedElsewhere
	}

	rows, err := tx.Query(ctx, selectPending, r.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("outbox: select: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pendingRow, error) {
		var p pendingRow
		err := row.Scan(&p.id, &p.eventID, &p.topic, &p.key, &p.eventType, &p.source, &p.subject,
			&p.eventTime, &p.payload, &p.traceparent, &p.tracestate)
		return p, err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: scan: %w", err)
	}
	if len(batch) == 0 {
		return 0, nil
	}

	links := make([]trace.Link, 0, len(batch))
	for _, p := range batch {
		links = append(links, trace.Link{SpanContext: trace.SpanContextFromContext(p.traceContext())})
	}
	ctx, batchSpan := r.tracer.Start(ctx, "outbox relay", trace.WithLinks(links...),
		trace.WithAttributes(attribute.Int("paygate.outbox.batch_size", len(batch)),
			attribute.String("paygate.outbox.synchronous_commit", syncCommit)))
	defer batchSpan.End()

	msgs := make([]*sarama.ProducerMessage, 0, len(batch))
	ids := make(map[*sarama.ProducerMessage]int64, len(batch))
	spans := make(map[int64]trace.Span, len(batch))
	endSpans := func() {
		for id, sp := range spans {
			sp.End()
			delete(spans, id)
		}
	}
	defer endSpans() // on early returns
	parked := map[int64]string{}
	for _, p := range batch {
		// The publish span continues the trace of the transaction that
		// enqueued the event, and its own context travels in the record's
		// traceparent header, so consumers join that same trace.
		pctx, span := r.tracer.Start(p.traceContext(), "publish "+p.topic, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", p.topic),
				attribute.String("messaging.message.id", p.eventID.String()),
				attribute.String("paygate.event_type", p.eventType),
				attribute.String("paygate.domain", DomainOf(p.eventType)),
			))
		spans[p.id] = span
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(pctx, carrier)
		p.traceparent, p.tracestate = carrier.Get("traceparent"), carrier.Get("tracestate")
		m, err := r.message(p)
		if err != nil {
			// Cannot happen for events written by Enqueue; park the row,
			// visible, rather than drop it or retry it forever.
			parked[p.id] = "unpublishable event: " + err.Error()
			continue
		}
		msgs = append(msgs, m)
		ids[m] = p.id
	}

	sendErr := r.sender.Send(ctx, msgs)
	failed := map[int64]bool{}
	if sendErr != nil {
		var se *kafka.SendError
		if errors.As(sendErr, &se) {
			for _, m := range se.Failed {
				failed[ids[m]] = true
			}
		} else {
			for _, id := range ids {
				failed[id] = true
			}
		}
	}
	var se *kafka.SendError
	errors.As(sendErr, &se)
	var sent, notSent []int64
	for m, id := range ids {
		switch {
		case !failed[id]:
			sent = append(sent, id)
		case se != nil && kafka.Permanent(se.Causes[m]):
			parked[id] = "refused by the broker: " + se.Causes[m].Error()
			spans[id].SetStatus(codes.Error, "refused for good; parked")
		default:
			notSent = append(notSent, id)
			spans[id].SetStatus(codes.Error, "not acknowledged")
		}
	}
	endSpans()
	if sendErr != nil {
		batchSpan.RecordError(sendErr)
		batchSpan.SetStatus(codes.Error, "publish failed")
	}
	for id, reason := range parked {
		r.log.Error("outbox: event parked", zap.Int64("id", id), zap.String("reason", reason))
		if _, err := tx.Exec(ctx, markParked, id, truncate(reason, 500)); err != nil {
			return 0, fmt.Errorf("outbox: park: %w", err)
		}
	}
	if len(sent) > 0 {
		if _, err := tx.Exec(ctx, markSent, postgres.PlanEachTime, sent); err != nil {
			return 0, fmt.Errorf("outbox: mark sent: %w", err)
		}
	}
	if len(notSent) > 0 {
		if _, err := tx.Exec(ctx, markFailed, postgres.PlanEachTime, notSent, truncate(sendErr.Error(), 500)); err != nil {
			return 0, fmt.Errorf("outbox: mark failed: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("outbox: commit: %w", err)
	}
	if len(notSent) > 0 {
		return len(sent), sendErr
	}
	return len(sent), nil
}

func (r *Relay) message(p pendingRow) (*sarama.ProducerMessage, error) {
	e := cloudevents.New()
	e.SetID(p.eventID.String())
	src := p.source
	if src == "" {
		src = r.cfg.Source
	}
	e.SetSource(src)
	e.SetType(p.eventType)
	e.SetTime(p.eventTime)
	if p.subject != "" {
		e.SetSubject(p.subject)
	}
	e.SetDataContentType("application/json")
	e.DataEncoded = p.payload
	return kafka.ToProducerMessage(e, p.topic, p.key, map[string]string{
		kafka.HeaderTraceparent: p.traceparent,
		kafka.HeaderTracestate:  p.tracestate,
	})
}

// cleanup deletes published events older than the retention, in chunks so
// that no single statement holds many locks.
func (r *Relay) cleanup(ctx context.Context) {
	cutoff := time.Now().Add(-r.cfg.Retention)
	for ctx.Err() == nil {
		tag, err := r.pool.Exec(ctx, `-- name: DeleteOldEvents
DELETE FROM outbox WHERE id IN (
  SELECT id FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1 LIMIT 1000)`, cutoff)
		if err != nil {
			r.log.Warn("outbox cleanup failed", zap.Error(err))
			return
		}
		if tag.RowsAffected() < 1000 {
			return
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
