// Package postgres holds paygate's PostgreSQL plumbing over pgx/v5: the
// connection pool, the embedded forward-only migrations and their runner,
// and a transaction helper that retries serialization failures and
// deadlocks.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/config"
)

// Querier runs statements; *pgxpool.Pool, *pgx.Conn and pgx.Tx all
// satisfy it, so a store's reads work both inside a caller's transaction
// and on the pool. It is the one such interface of the code base.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Collect reads every row of a query with scan; err is the query's own
// error, returned as it is, so a store's list reads
// Collect(q.Query(...)) in one line.
func Collect[T any](rows pgx.Rows, err error, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

// NewPool builds a pgx pool from the configuration. It does not wait for a
// connection: an unreachable database shows in /readyz rather than stopping
// the process.
func NewPool(ctx context.Context, cfg config.Database, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("postgres: cannot parse PAYGATE_DATABASE_URL")
	}
	pc.MaxConns = cfg.MaxConns
	pc.MinConns = cfg.MinConns
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	pc.HealthCheckPeriod = 15 * time.Second
	if tracer != nil {
		pc.ConnConfig.Tracer = tracer
	}
	pc.AfterConnect = RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return pool, nil
}

// RegisterTypes teaches a connection's type map paygate's Go types; it is
// the pool's AfterConnect. github.com/google/uuid's UUID is a
// driver.Valuer that returns a string, so without a codec pgx formats every
// UUID argument as text and PostgreSQL parses it back: that was 7% of the
// gateway's CPU in the transfer benchmark, most of it in the uuid[] arrays
// of a group commit. With the codec a UUID travels as its 16 bytes.
func RegisterTypes(_ context.Context, conn *pgx.Conn) error {
	pgxuuid.Register(conn.TypeMap())
	return nil
}

// PlanEachTime, passed as a statement's first argument, has PostgreSQL
// plan that statement at every execution rather than keep a generic plan
// on each connection. It is for the few statements that join an array
// of keys to a table that grows quickly (delivery records, outbox rows,
// idempotency keys): a generic plan made while such a table was small is a
// sequential scan, and it stays cached until the next ANALYZE, which on a
// young table under load can be minutes of scans that grow with it (an
// 11 ms UPDATE of one row at 30,000 rows, against 0.3 ms by the primary
// key). Planning again costs far less than that risk. The statement
// description is still cached, so it is one round trip as before.
const PlanEachTime = pgx.QueryExecModeCacheDescribe

// SQLSTATE codes that mean "run the transaction again".
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// Unavailable reports whether err means that the database could not be
// reached or went away: a refused or lost connection, or a server that is
// shutting down, starting or recovering. The outcome of a transaction that
// failed so may not be known (its commit may have happened), which is why
// the money path retries only under an Idempotency-Key.
func Unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || pgconn.Timeout(err) || strings.Contains(err.Error(), "conn closed")
}

// Unreachable is err as the client sees it: 503 DATABASE_UNAVAILABLE with
// a Retry-After, instead of a 500; the cause stays in the logs.
func Unreachable(err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	e := ErrDatabaseUnavailable.Wrap(err)
	e.RetryAfter = 2 * time.Second
	return e
}

// A database that cannot be reached is a 503 wherever its error surfaces,
// also from a read outside InTx that a caller wrapped as it is.
func init() {
	apperr.RegisterTranslator(func(err error) error {
		if Unavailable(err) {
			return Unreachable(err)
		}
		return nil
	})
}

// ErrDatabaseUnavailable is the answer while the database cannot be
// reached.
var ErrDatabaseUnavailable = apperr.New(apperr.KindUnavailable, "DATABASE_UNAVAILABLE",
	"The service cannot reach its database for the moment; retry with the same Idempotency-Key.")

// Retryable reports whether err is a serialization failure or a deadlock,
// the two errors after which a whole transaction may simply be retried.
func Retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == codeSerializationFailure || pe.Code == codeDeadlockDetected
	}
	return false
}

// IsUniqueViolation reports whether err is a unique_violation on the named
// constraint (any constraint when name is empty).
func IsUniqueViolation(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (name == "" || pe.ConstraintName == name)
}

// IsCheckViolation reports whether err is a check_violation on the named
// constraint (any constraint when name is empty).
func IsCheckViolation(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && (name == "" || pe.ConstraintName == name)
}

// DB runs transactions on a pool.
type DB struct {
	Pool        *pgxpool.Pool
	maxAttempts int
	log         *zap.Logger
}

// NewDB wraps pool; a transaction is tried at most maxAttempts times.
func NewDB(pool *pgxpool.Pool, maxAttempts int, log *zap.Logger) *DB {
	if maxAttempts < 1 {
		maxAttempts = 1
	}
	return &DB{Pool: pool, maxAttempts: maxAttempts, log: log}
}

// InTx runs fn in a read-committed transaction; see InTxWith.
func (db *DB) InTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return db.InTxWith(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// InTxWith runs fn in a transaction with the given options and commits it.
// When fn or the commit fails with a serialization failure or a deadlock,
// the transaction is rolled back and fn runs again in a fresh one, after a
// jittered exponential backoff (10ms doubling, capped at 500ms), up to the
// configured number of attempts. fn must therefore have no side effects
// outside the transaction. Any other error rolls back and is returned as is.
func (db *DB) InTxWith(ctx context.Context, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) error {
	return db.retry(ctx, func() error { return db.once(ctx, opts, fn) })
}

// retry runs once until it succeeds, fails with an error that is not
// Retryable, or has been tried maxAttempts times, with InTxWith's
// backoff between attempts; an unreachable database is Unreachable.
func (db *DB) retry(ctx context.Context, once func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = once()
		if err != nil && Unavailable(err) {
			return Unreachable(err)
		}
		if err == nil || !Retryable(err) || attempt >= db.maxAttempts {
			return err
		}
		backoff := min(10*time.Millisecond<<(attempt-1), 500*time.Millisecond)
		sleep := backoff/2 + rand.N(backoff/2+1)
		if db.log != nil {
			db.log.Debug("retrying transaction", zap.Int("attempt", attempt), zap.Duration("backoff", sleep), zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(sleep):
		}
	}
}

func (db *DB) once(ctx context.Context, opts pgx.TxOptions, fn func(ctx context.Context, tx pgx.Tx) error) (err error) {
	tx, err := db.Pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = fn(ctx, tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// WithSessionLock runs fn while holding the session-level advisory lock
// named key on a connection of its own, unless another session holds it:
// then it returns false without running fn. Jobs that one replica at a
// time should run, and that make network calls between their
// transactions (the provider poller), use it; a lock held by a
// connection that dies is released by the server with the session.
func WithSessionLock(ctx context.Context, pool *pgxpool.Pool, key string, fn func(ctx context.Context) error) (bool, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `-- name: TrySessionLock
SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, key).Scan(&locked); err != nil {
		return false, err
	}
	if !locked {
		return false, nil
	}
	defer func() {
		// A failed unlock (the context ended) leaves the lock on a pooled
		// connection: closing that connection is what releases it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `-- name: SessionUnlock
SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	return true, fn(ctx)
}
