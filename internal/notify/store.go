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

// Store records deliveries in notify_deliveries. A claim must be durable
// before the SMTP conversation starts, so every write commits before its
// method returns; the mails of events handled together are claimed in one
// statement and recorded in one, and Commit commits the writes of several
// callers together.
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

// write is one caller's share of a delivery commit: the mails it sent
// and must record as sent, and the mails it is about to send and must
// claim. Either may be empty.
type write struct {
	sent   []mailKey
	claims []mailKey
}

// Commit records the writes of several callers in one transaction: one
// statement records every sent mail, then one claims every mail to claim,
// and both ride in one round trip with their commit, since every mail
// costs a commit's WAL flush otherwise. It returns, for each write, the
// outcome of each of its claims in their order. A mail claimed by two
// writes is claimed for the first; the second finds it busy for a lease,
// as it would had another consumer claimed it.
func (s *Store) Commit(ctx context.Context, writes []write) ([][]claimResult, error) {
	// Each mail once per statement: ON CONFLICT cannot touch a row twice.
	var sent, claims []mailKey
	marked, claiming := make(map[mailKey]bool), make(map[mailKey]bool)
	for _, w := range writes {
		for _, k := range w.sent {
			if !marked[k] {
				marked[k] = true
				sent = append(sent, k)
			}
		}
		for _, k := range w.claims {
			if !claiming[k] {
				claiming[k] = true
				claims = append(claims, k)
			}
		}
	}
	if len(sent) == 0 && len(claims) == 0 {
		return make([][]claimResult, len(writes)), nil
	}
	b := &pgx.Batch{}
	// Both statements join an array of keys to a table that grows
	// quickly, which postgres.PlanEachTime is for; a pipelined statement
	// cannot take it, so custom plans are switched on for the
	// transaction instead.
	b.Queue("-- name: CustomPlansOn\nSET LOCAL plan_cache_mode = force_custom_plan")
	if len(sent) > 0 {
		events, recipients, templates := keyColumns(sent)
		b.Queue(`-- name: MarkDeliveriesSent
UPDATE notify_deliveries d
SET status = 'sent', sent_at = now(), claimed_until = NULL, last_error = '', updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
WHERE d.event_id = u.event_id AND d.recipient = u.recipient AND d.template = u.template`, events, recipients, templates)
	}
	got := make(map[mailKey]bool, len(claims))
	if len(claims) > 0 {
		events, recipients, templates := keyColumns(claims)
		var k mailKey
		b.Queue(`-- name: ClaimDeliveries
INSERT INTO notify_deliveries (event_id, recipient, template, attempts, claimed_until)
SELECT u.event_id, u.recipient, u.template, 1, now() + $4::bigint * interval '1 millisecond'
FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
ON CONFLICT (event_id, recipient, template) DO UPDATE
SET attempts = notify_deliveries.attempts + 1, claimed_until = EXCLUDED.claimed_until, updated_at = now()
WHERE notify_deliveries.status = 'pending'
  AND (notify_deliveries.claimed_until IS NULL OR notify_deliveries.claimed_until < now())
RETURNING event_id, recipient, template`, events, recipients, templates, s.lease.Milliseconds()).Query(func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&k.event, &k.recipient, &k.template}, func() error {
				got[k] = true
				return nil
			})
			return err
		})
	}
	// One round trip: BEGIN, the statements and COMMIT go out together.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("notify: record deliveries: %w", err)
	}
	err = postgres.RunPipelined(ctx, conn.Conn(), func(ctx context.Context, p postgres.Pipeline) error {
		return p.SendAndCommit(ctx, b)
	})
	conn.Release()
	if err != nil {
		return nil, fmt.Errorf("notify: record deliveries: %w", err)
	}
	// A mail an earlier write of this commit claimed is busy for a lease.
	claimedNow := time.Now().Add(s.lease)
	var missing []mailKey
	for _, k := range claims {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	found, err := s.statuses(ctx, missing)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	res := make([][]claimResult, len(writes))
	seen := make(map[mailKey]bool, len(claims))
	for i, w := range writes {
		res[i] = make([]claimResult, len(w.claims))
		for j, k := range w.claims {
			r, ok := found[k]
			switch {
			case seen[k] && got[k]:
				res[i][j] = claimResult{state: busy, until: claimedNow}
			case got[k]:
				res[i][j].state = claimed
			case ok && r.status == StatusSent:
				res[i][j].state = alreadySent
			case ok && r.until != nil:
				res[i][j] = claimResult{state: busy, until: *r.until}
			default:
				// Released (or pruned) between the two statements:
				// claimable now, by the next attempt.
				res[i][j] = claimResult{state: busy, until: now}
			}
			seen[k] = true
		}
	}
	return res, nil
}

// deliveryStatus is what a mail's row says when it could not be claimed.
type deliveryStatus struct {
	status string
	until  *time.Time
}

// statuses reads the rows of the mails keys that exist: sent, or claimed
// by another consumer.
func (s *Store) statuses(ctx context.Context, keys []mailKey) (map[mailKey]deliveryStatus, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	events, recipients, templates := keyColumns(keys)
	rows, err := s.pool.Query(ctx, `-- name: DeliveryStatuses
SELECT d.event_id, d.recipient, d.template, d.status, d.claimed_until
FROM notify_deliveries d JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS u(event_id, recipient, template)
  ON d.event_id = u.event_id AND d.recipient = u.recipient AND d.template = u.template`, postgres.PlanEachTime, events, recipients, templates)
	if err != nil {
		return nil, fmt.Errorf("notify: delivery statuses: %w", err)
	}
	found := make(map[mailKey]deliveryStatus, len(keys))
	var k mailKey
	var r deliveryStatus
	if _, err := pgx.ForEachRow(rows, []any{&k.event, &k.recipient, &k.template, &r.status, &r.until}, func() error {
		found[k] = r
		return nil
	}); err != nil {
		return nil, fmt.Errorf("notify: delivery statuses: %w", err)
	}
	return found, nil
}

// ClaimAll takes the rows of the mails keys in one statement and commit,
// creating them pending where they do not exist; the keys must be
// distinct. The results are in the order of keys.
func (s *Store) ClaimAll(ctx context.Context, keys []mailKey) ([]claimResult, error) {
	res, err := s.Commit(ctx, []write{{claims: keys}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// MarkAllSent records in one statement that the SMTP server accepted the
// mails keys.
func (s *Store) MarkAllSent(ctx context.Context, keys []mailKey) error {
	_, err := s.Commit(ctx, []write{{sent: keys}})
	return err
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
