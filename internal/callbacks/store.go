package callbacks

import (
	"context"
	"encoding/base64"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/provider"
)

// Store holds the SQL of the inbox: provider_callbacks (every delivery,
// verbatim) and provider_callback_events (one row per notification, with
// its outcome). Neither is ever updated.
type Store struct{}

// Insert stores a delivery as received and returns its id. It runs on
// its own (autocommit), so the body is kept even if processing fails.
func (Store) Insert(ctx context.Context, q postgres.Querier, r Received) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `-- name: InsertProviderCallback
INSERT INTO provider_callbacks (provider, kind, event_id, reference, body) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		string(r.Provider), r.Kind, r.Event.ID, r.reference(), r.Body).Scan(&id)
	return id, err
}

// LockEvent takes the notification's advisory lock for the rest of tx and
// reports whether it was processed already.
//
// The check is a statement of its own, after the lock: under READ
// COMMITTED it takes a fresh snapshot, so it sees the outcome a
// concurrent delivery committed while this one waited for the lock.
func (Store) LockEvent(ctx context.Context, tx pgx.Tx, prov provider.Name, eventID string) (bool, error) {
	if _, err := tx.Exec(ctx, `-- name: LockProviderCallbackEvent
SELECT pg_advisory_xact_lock(hashtextextended('paygate.callback/' || $1 || '/' || $2, 0))`, string(prov), eventID); err != nil {
		return false, err
	}
	var done bool
	err := tx.QueryRow(ctx, `-- name: ProviderCallbackEventDone
SELECT EXISTS (SELECT 1 FROM provider_callback_events WHERE provider = $1 AND event_id = $2)`, string(prov), eventID).Scan(&done)
	return done, err
}

// InsertEvent records the outcome of a notification.
func (Store) InsertEvent(ctx context.Context, tx pgx.Tx, r Received, callbackID int64, outcome, detail string) error {
	_, err := tx.Exec(ctx, `-- name: InsertProviderCallbackEvent
INSERT INTO provider_callback_events (provider, event_id, callback_id, kind, reference, outcome, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, string(r.Provider), r.Event.ID, callbackID, r.Kind, r.reference(), outcome, detail)
	return err
}

// List returns up to n notifications with one of outcomes (all when
// empty), newest first, before the sequence number before (0: from the
// newest), with the number of deliveries and the first one's body.
func (Store) List(ctx context.Context, q postgres.Querier, outcomes []string, before int64, n int) ([]Entry, error) {
	rows, err := q.Query(ctx, `-- name: ListProviderCallbackEvents
SELECT e.provider, e.event_id, e.kind, e.reference, e.outcome, e.detail,
  (SELECT count(*) FROM provider_callbacks c WHERE c.provider = e.provider AND c.event_id = e.event_id),
  c.body, c.received_at, e.processed_at, e.callback_id
FROM provider_callback_events e JOIN provider_callbacks c ON c.id = e.callback_id
WHERE (cardinality($1::text[]) = 0 OR e.outcome = ANY($1))
  AND ($2::bigint = 0 OR e.callback_id < $2)
ORDER BY e.callback_id DESC
LIMIT $3`, outcomes, before, n)
	return postgres.Collect(rows, err, func(r pgx.Row) (Entry, error) {
		var e Entry
		var body []byte
		err := r.Scan(&e.Provider, &e.EventID, &e.Kind, &e.Reference, &e.Outcome, &e.Detail, &e.Deliveries, &body,
			&e.ReceivedAt, &e.ProcessedAt, &e.seq)
		// A body is shown as received when it is text; anything else
		// (never expected of a JSON callback) as base64.
		if utf8.Valid(body) {
			e.Body = string(body)
		} else {
			e.Body = "base64:" + base64.StdEncoding.EncodeToString(body)
		}
		return e, err
	})
}
