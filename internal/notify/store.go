package notify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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
// SMTP conversation starts.
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

// Claim takes the row of (eventID, recipient, template), creating it
// pending when it does not exist.
// For a busy row it also returns until when the other claim holds.
func (s *Store) Claim(ctx context.Context, eventID uuid.UUID, recipient, template string) (claim, time.Time, error) {
	var status string
	var until *time.Time
	err := s.pool.QueryRow(ctx, `-- name: ClaimDelivery
INSERT INTO notify_deliveries (event_id, recipient, template, attempts, claimed_until)
VALUES ($1, $2, $3, 1, now() + $4::bigint * interval '1 millisecond')
ON CONFLICT (event_id, recipient, template) DO UPDATE
SET attempts = notify_deliveries.attempts + 1, claimed_until = EXCLUDED.claimed_until, updated_at = now()
WHERE notify_deliveries.status = 'pending'
  AND (notify_deliveries.claimed_until IS NULL OR notify_deliveries.claimed_until < now())
RETURNING status`, eventID, recipient, template, s.lease.Milliseconds()).Scan(&status)
	if err == nil {
		return claimed, time.Time{}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, time.Time{}, fmt.Errorf("notify: claim delivery: %w", err)
	}
	// The row exists and was not claimable: sent, or claimed by another.
	if err := s.pool.QueryRow(ctx, `-- name: DeliveryStatus
SELECT status, claimed_until FROM notify_deliveries WHERE event_id = $1 AND recipient = $2 AND template = $3`,
		eventID, recipient, template).Scan(&status, &until); err != nil {
		return 0, time.Time{}, fmt.Errorf("notify: delivery status: %w", err)
	}
	if status == StatusSent {
		return alreadySent, time.Time{}, nil
	}
	if until == nil {
		// Released between the two statements: claimable now.
		return busy, time.Now(), nil
	}
	return busy, *until, nil
}

// MarkSent records that the SMTP server accepted the mail.
func (s *Store) MarkSent(ctx context.Context, eventID uuid.UUID, recipient, template string) error {
	_, err := s.pool.Exec(ctx, `-- name: MarkDeliverySent
UPDATE notify_deliveries SET status = 'sent', sent_at = now(), claimed_until = NULL, last_error = '', updated_at = now()
WHERE event_id = $1 AND recipient = $2 AND template = $3`, eventID, recipient, template)
	if err != nil {
		return fmt.Errorf("notify: mark delivery sent: %w", err)
	}
	return nil
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
