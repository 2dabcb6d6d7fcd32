// Package idempotency gives mutating money endpoints Stripe's
// Idempotency-Key semantics: the first response to a key is stored per
// caller in the same transaction as its effect and replayed to every retry
// with the same request; the same key with another request is refused; a
// retry while the first is still running gets 409; keys are forgotten
// after the retention window (at least 24 hours).
//
// This package is the transactional part: claiming a key, running the
// operation and storing its result, in one database transaction. Reading
// the key off a request, fingerprinting it and writing the stored response
// are the HTTP surface's, package idemhttp.
package idempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Errors of running under a key.
var (
	ErrKeyReused  = apperr.New(apperr.KindBusinessRule, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with a different request.")
	ErrInProgress = apperr.New(apperr.KindConflict, "IDEMPOTENCY_IN_PROGRESS", "A request with this Idempotency-Key is still being processed; retry later.")
)

// Op is the operation a key protects. It runs inside tx, which also
// stores the response; it returns the success status and body. A client
// error (*apperr.Error other than internal or unavailable) rolls back what
// op wrote and is stored as the key's response too, as Stripe does; any
// other error stores nothing and is returned.
type Op func(ctx context.Context, tx pgx.Tx) (status int, body any, err error)

// Store runs operations under idempotency keys.
type Store struct {
	db        *postgres.DB
	retention time.Duration
	log       *zap.Logger
}

// NewStore returns a store keeping responses for retention.
func NewStore(db *postgres.DB, retention time.Duration, log *zap.Logger) *Store {
	return &Store{db: db, retention: retention, log: log}
}

// Response is a stored or fresh response.
type Response struct {
	Status   int
	Body     []byte
	Replayed bool
}

// Claim names one idempotent request, as the HTTP surface read it.
type Claim struct {
	Owner uuid.UUID
	Key   string
	// Fingerprint identifies the request, so that the key cannot be
	// reused for another one.
	Fingerprint []byte
	// Status is the status stored with a successful result.
	Status int
	// Refusal turns a client error into the status and body to store.
	Refusal func(error) (status int, body []byte)
}

// Run runs op at most once for the claim and returns the response of the
// first run: op's result with the claim's status, or its stored refusal.
// See Do.
func (s *Store) Run(ctx context.Context, c Claim, op func(ctx context.Context, tx pgx.Tx) (any, error)) (Response, error) {
	return s.Do(ctx, c.Owner, c.Key, c.Fingerprint, func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		body, err := op(ctx, tx)
		return c.Status, body, err
	}, c.Refusal)
}

// Do runs op at most once for (owner, key) and returns the response of the
// first run. fingerprint identifies the request (see idemhttp.Fingerprint); problem
// turns a client error into the status and body to store.
//
// Concurrency: each run takes a transaction-level advisory lock on
// (owner, key) with try semantics before anything else, and holds it until
// its transaction ends. A second request with the key while the first is
// running fails fast with ErrInProgress instead of blocking; once the first
// committed, the key row exists and is replayed.
func (s *Store) Do(ctx context.Context, owner uuid.UUID, key string, fingerprint []byte, op Op, problem func(error) (int, []byte)) (Response, error) {
	var res Response
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		res = Response{}
		var locked bool
		if err := tx.QueryRow(ctx, `-- name: LockIdempotencyKey
SELECT pg_try_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))`, owner, key).Scan(&locked); err != nil {
			return fmt.Errorf("idempotency lock: %w", err)
		}
		if !locked {
			return ErrInProgress
		}
		var storedHash []byte
		err := tx.QueryRow(ctx, `-- name: GetIdempotencyKey
SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE owner_id = $1 AND idem_key = $2`,
			owner, key).Scan(&storedHash, &res.Status, &res.Body)
		if err == nil {
			if !bytes.Equal(storedHash, fingerprint) {
				return ErrKeyReused
			}
			res.Replayed = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("idempotency lookup: %w", err)
		}

		// The operation runs in a savepoint so that a refused operation
		// leaves nothing behind but its stored refusal.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		status, body, opErr := op(ctx, sp)
		if opErr != nil {
			_ = sp.Rollback(ctx)
			if !storable(opErr) {
				return opErr
			}
			res.Status, res.Body = problem(opErr)
		} else {
			if err := sp.Commit(ctx); err != nil {
				return err
			}
			res.Status = status
			if res.Body, err = json.Marshal(body); err != nil {
				return fmt.Errorf("encode response: %w", err)
			}
		}
		_, err = tx.Exec(ctx, `-- name: InsertIdempotencyKey
INSERT INTO idempotency_keys (owner_id, idem_key, request_hash, status_code, response_body) VALUES ($1, $2, $3, $4, $5)`,
			owner, key, fingerprint, res.Status, res.Body)
		return err
	})
	return res, err
}

// Lookup returns the stored response of (owner, key) without claiming the
// key: found is false when no request with the key has completed. The key
// used with another request is ErrKeyReused. An operation that must do
// slow, idempotent work outside the database before Run (a call to a
// payment provider) looks first, so that a retry of a completed request is
// replayed without that work; Run still decides under the key's lock.
func (s *Store) Lookup(ctx context.Context, owner uuid.UUID, key string, fingerprint []byte) (Response, bool, error) {
	var res Response
	var storedHash []byte
	err := s.db.Pool.QueryRow(ctx, `-- name: LookupIdempotencyKey
SELECT request_hash, status_code, response_body FROM idempotency_keys WHERE owner_id = $1 AND idem_key = $2`,
		owner, key).Scan(&storedHash, &res.Status, &res.Body)
	if errors.Is(err, pgx.ErrNoRows) {
		return Response{}, false, nil
	}
	if err != nil {
		return Response{}, false, fmt.Errorf("idempotency lookup: %w", err)
	}
	if !bytes.Equal(storedHash, fingerprint) {
		return Response{}, false, ErrKeyReused
	}
	res.Replayed = true
	return res, true, nil
}

// storable reports whether err is a client-visible refusal worth storing.
func storable(err error) bool {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Kind != apperr.KindInternal && ae.Kind != apperr.KindUnavailable
}

// Cleanup deletes keys older than the retention window, in batches.
func (s *Store) Cleanup(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.db.Pool.Exec(ctx, `-- name: DeleteExpiredIdempotencyKeys
DELETE FROM idempotency_keys WHERE ctid IN (
  SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT 1000)`, time.Now().Add(-s.retention))
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 1000 {
			return total, nil
		}
	}
}

// ClaimState is what ClaimMany found for one claim.
type ClaimState struct {
	// Busy: another transaction holds the key (ErrInProgress), or an
	// earlier claim of the same batch has it.
	Busy bool
	// Stored is the response of a request that completed under the key.
	Stored *Response
	// Reused: the key completed with another request (ErrKeyReused).
	Reused bool
}

// Fresh reports whether the claim's operation is to run.
func (s ClaimState) Fresh() bool { return !s.Busy && s.Stored == nil && !s.Reused }

// ClaimMany is Do's claiming step for a batch of claims in tx: it takes
// the transaction-level advisory lock of every key with try semantics, in
// one statement, and reads the stored responses of the keys it locked, in
// another. A key that appears twice in the batch is Busy from its second
// claim on. Store the fresh claims' responses with StoreMany in the same
// transaction. A caller with statements of its own to send alongside uses
// QueueClaimMany.
func (s *Store) ClaimMany(ctx context.Context, tx pgx.Tx, claims []Claim) ([]ClaimState, error) {
	b := &pgx.Batch{}
	c := s.QueueClaimMany(b, claims)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("idempotency lock: %w", err)
	}
	b = &pgx.Batch{}
	c.QueueLookup(b)
	if b.Len() > 0 {
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return nil, fmt.Errorf("idempotency lookup: %w", err)
		}
	}
	return c.States(), nil
}

// ManyClaim is ClaimMany in two steps, for a caller that pipelines them
// with statements of its own: QueueClaimMany queues the locks, and once
// they have run, QueueLookup queues the read of the locked keys; once that
// has run too, States holds what ClaimMany returns.
type ManyClaim struct {
	claims []Claim
	states []ClaimState
	owners []uuid.UUID
	keys   []string
	// index[j] is the claim of owners[j] and keys[j]; locked[j] whether
	// its lock was taken.
	index  []int
	locked []bool
}

// QueueClaimMany queues the statement that takes the claims' locks.
func (s *Store) QueueClaimMany(b *pgx.Batch, claims []Claim) *ManyClaim {
	c := &ManyClaim{claims: claims, states: make([]ClaimState, len(claims))}
	seen := make(map[string]bool, len(claims))
	for i, cl := range claims {
		k := cl.Owner.String() + "/" + cl.Key
		if seen[k] {
			c.states[i].Busy = true
			continue
		}
		seen[k] = true
		c.owners, c.keys, c.index = append(c.owners, cl.Owner), append(c.keys, cl.Key), append(c.index, i)
	}
	c.locked = make([]bool, len(c.index))
	b.Queue(`-- name: LockIdempotencyKeys
SELECT u.n, pg_try_advisory_xact_lock(hashtextextended(u.owner::text || '/' || u.k, 0))
FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS u(owner, k, n)
ORDER BY u.n`, c.owners, c.keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var n int
			var ok bool
			if err := rows.Scan(&n, &ok); err != nil {
				return err
			}
			c.locked[n-1] = ok
		}
		return rows.Err()
	})
	return c
}

// QueueLookup queues the read of the stored responses of the keys whose
// locks were taken (nothing when none was); call it once the statement
// QueueClaimMany queued has run. The read is a statement of its own, after
// the locks: under READ COMMITTED it sees a key that a concurrent request
// committed while this one locked.
func (c *ManyClaim) QueueLookup(b *pgx.Batch) {
	var owners []uuid.UUID
	var keys []string
	byKey := map[string]int{}
	for j, i := range c.index {
		if !c.locked[j] {
			c.states[i].Busy = true
			continue
		}
		owners, keys = append(owners, c.owners[j]), append(keys, c.keys[j])
		byKey[c.owners[j].String()+"/"+c.keys[j]] = i
	}
	if len(owners) == 0 {
		return
	}
	// The lookup joins an array to a table that grows quickly: a generic
	// plan cached while the table was small is a sequential scan, and it
	// would stay cached until the next ANALYZE (see postgres.PlanEachTime,
	// which a pipelined statement cannot take). So the statement is
	// planned at each execution by switching custom plans on around it,
	// for this transaction only; the plan is chosen when the statement is
	// bound, which the server does after the SET before it has run.
	b.Queue("-- name: CustomPlansOn\nSET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(`-- name: GetIdempotencyKeys
SELECT k.owner_id, k.idem_key, k.request_hash, k.status_code, k.response_body
FROM idempotency_keys k JOIN unnest($1::uuid[], $2::text[]) AS u(owner, key) ON k.owner_id = u.owner AND k.idem_key = u.key`,
		owners, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var owner uuid.UUID
			var key string
			var hash []byte
			res := &Response{Replayed: true}
			if err := rows.Scan(&owner, &key, &hash, &res.Status, &res.Body); err != nil {
				return err
			}
			i := byKey[owner.String()+"/"+key]
			if !bytes.Equal(hash, c.claims[i].Fingerprint) {
				c.states[i].Reused = true
				continue
			}
			c.states[i].Stored = res
		}
		return rows.Err()
	})
	b.Queue("-- name: CustomPlansOff\nSET LOCAL plan_cache_mode TO DEFAULT")
}

// States returns, for each claim, what ClaimMany returns.
func (c *ManyClaim) States() []ClaimState { return c.states }

// Stored is the response to store under a claim.
type Stored struct {
	Claim  Claim
	Status int
	Body   []byte
}

// StoreMany stores the responses of fresh claims in tx, in one statement.
func (s *Store) StoreMany(ctx context.Context, tx pgx.Tx, stored []Stored) error {
	b := &pgx.Batch{}
	s.QueueStoreMany(b, stored)
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("idempotency store: %w", err)
	}
	return nil
}

// QueueStoreMany adds StoreMany's statement to b (nothing when stored is
// empty), for a caller that sends it with writes of its own in one round
// trip; b must be sent in the transaction that claimed the keys.
func (s *Store) QueueStoreMany(b *pgx.Batch, stored []Stored) {
	if len(stored) == 0 {
		return
	}
	owners := make([]uuid.UUID, len(stored))
	keys := make([]string, len(stored))
	hashes := make([][]byte, len(stored))
	statuses := make([]int32, len(stored))
	bodies := make([][]byte, len(stored))
	for i, st := range stored {
		owners[i], keys[i], hashes[i], statuses[i], bodies[i] = st.Claim.Owner, st.Claim.Key, st.Claim.Fingerprint, int32(st.Status), st.Body
	}
	b.Queue(`-- name: InsertIdempotencyKeys
INSERT INTO idempotency_keys (owner_id, idem_key, request_hash, status_code, response_body)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::int[], $5::bytea[])`, owners, keys, hashes, statuses, bodies)
}

// Storable reports whether err is a client-visible refusal that is stored
// as the key's response (see Op).
func Storable(err error) bool { return storable(err) }
