package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Delivery statuses.
const (
	StatusPending = "pending"
	StatusSent    = "sent"
)

// Claim outcomes.
type claim int

const (
	// claimed: this consumer owns the row and sends the mail.
	claimed claim = iota
	// alreadySent: the mail went out before; nothing to do.
	alreadySent
	// busy: another consumer is sending this mail right now.
	busy
)

// Store records deliveries in notify_deliveries. Each method is one
// statement, committed on its own: the claim must be durable before the
// SMTP conversation starts. The mails of events handled together are
// claimed in one statement and recorded in one.
type Store struct {
	pool *pgxpool.Pool
	// lease is how long a claim keeps other consumers off a row; a claim
	// left by a crash expires after it and the mail is sent again.
	lease time.Duration
}

// NewStore returns the store; lease should exceed the longest SMTP
// conversation.
func NewStore(pool *pgxpool.Pool, lease time.Duration) *Store {
	return &Store{pool: pool, lease: lease}
}

// Lease returns how long a claim keeps other consumers off a row.
func (s *Store) Lease() time.Duration { return s.lease }

// mailKey names one mail: the row of (event, recipient, template).
type mailKey struct {
	event               uuid.UUID
	recipient, template string
}

// claimResult is the outcome of claiming one mail; until is, for a busy
// mail, when the other consumer's claim ends.
type claimResult struct {
	state claim
	until time.Time
}

// ClaimAll takes the rows of the mails keys in one statement (one commit
// for all the mails of the events handled together), creating them
// pending where they do not exist; the keys must be distinct. The results
// are in the order of keys.
func (s *Store) ClaimAll(ctx context.Context, keys []mailKey) ([]claimResult, error) {
	events, recipients, templates := keyColumns(keys)
	rows, err := s.pool.Query(ctx, `-- name: ClaimDeliveries
INSERT INTO notify_deliveries (event_id, recipient, template, attempts, claimed_until)
SELECT u.event_id, u.recipient, u.template, 1, now() + $4::bigint * interval '1 millisecond'
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
ON CONFLICT (event_id, recipient, template) DO UPDATE
SET attempts = notify_deliveries.attempts + 1, claimed_until = EXCLUDED.claimed_until, updated_at = now()
WHERE notify_deliveries.status = 'pending'
  AND (notify_deliveries.claimed_until IS NULL OR notify_deliveries.claimed_until < now())
RETURNING event_id, recipient, template`, events, recipients, templates, s.lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("notify: claim deliveries: %w", err)
	}
	got := make(map[mailKey]bool, len(keys))
	var k mailKey
	if _, err := pgx.ForEachRow(rows, []any{&k.event, &k.recipient, &k.template}, func() error {
		got[k] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("notify: claim deliveries: %w", err)
	}
	res := make([]claimResult, len(keys))
	if len(got) == len(keys) {
		return res, nil // all claimed: the common case
	}
	// The rows that exist and were not claimable: sent, or claimed by
	// another consumer.
	rows, err = s.pool.Query(ctx, `-- name: DeliveryStatuses
SELECT d.event_id, d.recipient, d.template, d.status, d.claimed_until
FROM notify_deliveries d JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
  ON d.event_id = u.event_id AND d.recipient = u.recipient AND d.template = u.template`, postgres.PlanEachTime, events, recipients, templates)
	if err != nil {
		return nil, fmt.Errorf("notify: delivery statuses: %w", err)
	}
	type row struct {
		status string
		until  *time.Time
	}
	found := make(map[mailKey]row, len(keys))
	var r row
	if _, err := pgx.ForEachRow(rows, []any{&k.event, &k.recipient, &k.template, &r.status, &r.until}, func() error {
		found[k] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("notify: delivery statuses: %w", err)
	}
	now := time.Now()
	for i, key := range keys {
		r, ok := found[key]
		switch {
		case got[key]:
			res[i].state = claimed
		case ok && r.status == StatusSent:
			res[i].state = alreadySent
		case ok && r.until != nil:
			res[i] = claimResult{state: busy, until: *r.until}
		default:
			// Released (or pruned) between the two statements: claimable
			// now, by the next attempt.
			res[i] = claimResult{state: busy, until: now}
		}
	}
	return res, nil
}

// MarkAllSent records in one statement that the SMTP server accepted the
// mails keys.
func (s *Store) MarkAllSent(ctx context.Context, keys []mailKey) error {
	events, recipients, templates := keyColumns(keys)
	_, err := s.pool.Exec(ctx, `-- name: MarkDeliveriesSent
UPDATE notify_deliveries d
SET status = 'sent', sent_at = now(), claimed_until = NULL, last_error = '', updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
WHERE d.event_id = u.event_id AND d.recipient = u.recipient AND d.template = u.template`, postgres.PlanEachTime, events, recipients, templates)
	if err != nil {
		return fmt.Errorf("notify: mark deliveries sent: %w", err)
	}
	return nil
}

func keyColumns(keys []mailKey) (events []uuid.UUID, recipients, templates []string) {
	events, recipients, templates = make([]uuid.UUID, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		events[i], recipients[i], templates[i] = k.event, k.recipient, k.template
	}
	return events, recipients, templates
}

// Release gives a claimed row back after a failed send, with the error,
// so that the next attempt can claim it at once.
func (s *Store) Release(ctx context.Context, eventID uuid.UUID, recipient, template, lastError string) error {
	_, err := s.pool.Exec(ctx, `-- name: ReleaseDelivery
UPDATE notify_deliveries SET claimed_until = NULL, last_error = $4, updated_at = now()
WHERE event_id = $1 AND recipient = $2 AND template = $3 AND status = 'pending'`, eventID, recipient, template, lastError)
	if err != nil {
		return fmt.Errorf("notify: release delivery: %w", err)
	}
	return nil
}

// pruneBatch bounds one DELETE of Prune, so that pruning a large backlog
// never holds many row locks or one long transaction.
const pruneBatch = 1000

// Prune deletes the records of mails sent before cutoff and returns how
// many went. A record is what stops a redelivered event from mailing twice,
// so cutoff must lie before the oldest record a consumer could still read
// (the topics' retention). Pending records stay: they are the mails that
// never went out, which operators look for.
func (s *Store) Prune(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `-- name: PruneSentDeliveries
DELETE FROM notify_deliveries WHERE ctid IN (
  SELECT ctid FROM notify_deliveries WHERE status = 'sent' AND sent_at < $1 LIMIT $2)`, cutoff, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("notify: prune deliveries: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			return total, nil
		}
	}
}
