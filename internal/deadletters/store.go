package deadletters

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store holds the SQL of dead_letter_replays.
type Store struct{}

// Insert records the replay of rec by by and returns its time; a second
// replay of the same dead letter is ErrAlreadyReplayed.
func (Store) Insert(ctx context.Context, tx pgx.Tx, consumer string, rec kafka.Record, eventID string, by uuid.UUID) (time.Time, error) {
	var at time.Time
	err := tx.QueryRow(ctx, `-- name: InsertDeadLetterReplay
INSERT INTO dead_letter_replays (consumer, topic, partition, "offset", event_id, replayed_by)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING replayed_at`, consumer, rec.Topic, rec.Partition, rec.Offset, eventID, by).Scan(&at)
	if postgres.IsUniqueViolation(err, "") {
		return time.Time{}, ErrAlreadyReplayed
	}
	return at, err
}

// MarkReplayed fills in the replay of each dead letter that was replayed.
func (Store) MarkReplayed(ctx context.Context, q postgres.Querier, letters []DeadLetter) error {
	rows, err := q.Query(ctx, `-- name: ListDeadLetterReplays
SELECT consumer, partition, "offset", replayed_at, replayed_by FROM dead_letter_replays`)
	if err != nil {
		return err
	}
	type key struct {
		consumer  string
		partition int32
		offset    int64
	}
	type replay struct {
		at time.Time
		by uuid.UUID
	}
	replays := map[key]replay{}
	for rows.Next() {
		var k key
		var r replay
		if err := rows.Scan(&k.consumer, &k.partition, &k.offset, &r.at, &r.by); err != nil {
			rows.Close()
			return err
		}
		replays[k] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i := range letters {
		if r, ok := replays[key{letters[i].Consumer, letters[i].Partition, letters[i].Offset}]; ok {
			letters[i].ReplayedAt, letters[i].ReplayedBy = &r.at, &r.by
		}
	}
	return nil
}
