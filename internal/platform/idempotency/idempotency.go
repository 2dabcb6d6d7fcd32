// Package idempotency gives mutating money endpoints Stripe's
// Idempotency-Key semantics: the first response to a key is stored per
// caller in the same transaction as its effect and replayed to every retry
// with the same request; the same key with another request is refused; a
// retry while the first is still running gets 409; keys are forgotten
// after the retention window (at least 24 hours).
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// ReplayedHeader is set on responses replayed from a stored key.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLength is the longest accepted key.
const MaxKeyLength = 255

// Errors of the idempotency layer.
var (
	ErrKeyRequired = apperr.New(apperr.KindValidation, "IDEMPOTENCY_KEY_REQUIRED", "This endpoint requires an Idempotency-Key header (up to 255 characters).")
	ErrKeyInvalid  = apperr.New(apperr.KindValidation, "IDEMPOTENCY_KEY_INVALID", "The Idempotency-Key header must be 1 to 255 characters.")
	ErrKeyReused   = apperr.New(apperr.KindBusinessRule, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with a different request.")
	ErrInProgress  = apperr.New(apperr.KindConflict, "IDEMPOTENCY_IN_PROGRESS", "A request with this Idempotency-Key is still being processed; retry later.")
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

// Do runs op at most once for (owner, key) and returns the response of the
// first run. fingerprint identifies the request (see Fingerprint); problem
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

// storable reports whether err is a client-visible refusal worth storing.
func storable(err error) bool {
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		return false
	}
	return ae.Kind != apperr.KindInternal && ae.Kind != apperr.KindUnavailable
}

// Fingerprint identifies a request: the method, the route template and the
// canonical form of the JSON body (object members sorted, numbers kept
// exact), so that a retry re-encoded by another client library still
// matches.
func Fingerprint(r *http.Request, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + httpserver.RouteTemplate(r.Context()) + "\n"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil {
		if canon, err := json.Marshal(v); err == nil {
			body = canon
		}
	}
	h.Write(body)
	return h.Sum(nil)
}

// Key returns the request's Idempotency-Key: ErrKeyRequired when there is
// none, ErrKeyInvalid when it is longer than MaxKeyLength.
func Key(r *http.Request) (string, error) {
	k := r.Header.Get(Header)
	switch {
	case k == "":
		return "", ErrKeyRequired
	case len(k) > MaxKeyLength:
		return "", ErrKeyInvalid
	}
	return k, nil
}

// Serve runs op under the request's key for owner and writes the response,
// fresh or replayed, which it also returns. body is the raw request body,
// already validated by the caller: validation failures happen before Serve
// and store nothing.
func (s *Store) Serve(w http.ResponseWriter, r *http.Request, owner uuid.UUID, body []byte, op Op) (Response, error) {
	key, err := Key(r)
	if err != nil {
		return Response{}, err
	}
	problem := func(err error) (int, []byte) {
		p := httpserver.ProblemFor(r, err)
		b, _ := json.Marshal(p)
		return p.Status, b
	}
	res, err := s.Do(r.Context(), owner, key, Fingerprint(r, body), op, problem)
	if err != nil {
		return Response{}, err
	}
	ct := "application/json"
	if res.Status >= 400 {
		ct = httpserver.ProblemContentType
	}
	w.Header().Set("Content-Type", ct)
	if res.Replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
	return res, nil
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
