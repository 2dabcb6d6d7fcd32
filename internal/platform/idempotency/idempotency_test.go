package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/platform/postgres"
)

func setup(t *testing.T) (*idempotency.Store, *postgres.DB) {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	if _, err := pool.Exec(context.Background(), "CREATE TABLE effects (id serial PRIMARY KEY, note text)"); err != nil {
		t.Fatal(err)
	}
	db := postgres.NewDB(pool, 3, nil)
	return idempotency.NewStore(db, 24*time.Hour, nil), db
}

func problem(err error) (int, []byte) {
	var ae *apperr.Error
	errors.As(err, &ae)
	return 422, []byte(`{"code":"` + ae.Code + `"}`)
}

func effects(t *testing.T, db *postgres.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), "SELECT count(*) FROM effects").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFirstResponseIsReplayedAndOperationRunsOnce(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	owner := uuid.New()
	var runs atomic.Int32
	op := func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		runs.Add(1)
		_, err := tx.Exec(ctx, "INSERT INTO effects (note) VALUES ('x')")
		return http.StatusCreated, map[string]int32{"run": runs.Load()}, err
	}
	ctx := context.Background()
	first, err := s.Do(ctx, owner, "k1", []byte("fp"), op, problem)
	if err != nil || first.Replayed || first.Status != 201 {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := s.Do(ctx, owner, "k1", []byte("fp"), op, problem)
	if err != nil || !again.Replayed || again.Status != 201 || string(again.Body) != string(first.Body) {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if runs.Load() != 1 || effects(t, db) != 1 {
		t.Fatalf("runs=%d effects=%d, want 1 and 1", runs.Load(), effects(t, db))
	}
	// The same key with another request is refused.
	if _, err := s.Do(ctx, owner, "k1", []byte("other"), op, problem); !errors.Is(err, idempotency.ErrKeyReused) {
		t.Fatalf("reused key: %v", err)
	}
	// Keys are scoped per caller.
	if r, err := s.Do(ctx, uuid.New(), "k1", []byte("fp"), op, problem); err != nil || r.Replayed {
		t.Fatalf("another owner's key: %+v %v", r, err)
	}
}

func TestRefusalIsStoredAndItsWritesRolledBack(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	refused := apperr.New(apperr.KindBusinessRule, "INSUFFICIENT_FUNDS", "no")
	runs := 0
	op := func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		runs++
		if _, err := tx.Exec(ctx, "INSERT INTO effects (note) VALUES ('partial')"); err != nil {
			return 0, nil, err
		}
		return 0, nil, refused
	}
	for range 2 {
		r, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), op, problem)
		if err != nil || r.Status != 422 || string(r.Body) != `{"code":"INSUFFICIENT_FUNDS"}` {
			t.Fatalf("refusal: %+v %v", r, err)
		}
	}
	if runs != 1 || effects(t, db) != 0 {
		t.Fatalf("runs=%d effects=%d: want one run and no partial write", runs, effects(t, db))
	}
}

func TestFaultIsNotStored(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	boom := errors.New("boom")
	fail := true
	op := func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		// The write must happen for its absence afterwards to mean anything.
		if _, err := tx.Exec(ctx, "INSERT INTO effects (note) VALUES ('x')"); err != nil {
			return 0, nil, err
		}
		if fail {
			return 0, nil, boom
		}
		return 200, "ok", nil
	}
	if _, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), op, problem); !errors.Is(err, boom) {
		t.Fatalf("fault: %v", err)
	}
	fail = false
	r, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), op, problem)
	if err != nil || r.Replayed || r.Status != 200 || effects(t, db) != 1 {
		t.Fatalf("after a fault the key must run again: %+v %v effects=%d", r, err, effects(t, db))
	}
}

func TestRetryWhileRunningIsAConflict(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	started, release := make(chan struct{}), make(chan struct{})
	slow := func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		close(started)
		<-release
		return 201, "done", nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), slow, problem)
		done <- err
	}()
	<-started
	fast := func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		t.Error("the operation ran twice")
		return 201, "dup", nil
	}
	if _, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), fast, problem); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("concurrent retry: %v, want ErrInProgress", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r, err := s.Do(context.Background(), uuid.Nil, "k", []byte("fp"), fast, problem)
	if err != nil || !r.Replayed || string(r.Body) != `"done"` {
		t.Fatalf("after the first finished: %+v %v", r, err)
	}
}

func TestCleanupForgetsOldKeys(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	op := func(ctx context.Context, tx pgx.Tx) (int, any, error) { return 200, 1, nil }
	for _, k := range []string{"old", "new"} {
		if _, err := s.Do(context.Background(), uuid.Nil, k, []byte("fp"), op, problem); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(context.Background(), "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE idem_key = 'old'"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Cleanup(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("cleanup deleted %d (%v), want 1", n, err)
	}
}

// TestClaimManyFindsStoredKeysAndPlansItsLookupEachTime claims batches on
// one connection, storing half of each batch's responses: a second claim
// of every key replays the stored ones, reports a changed request as
// reused and the unstored ones as fresh, a key twice in one batch is busy
// the second time, and the lookup of stored keys, prepared by pgx, never
// ran a generic plan (one cached while the table was small would be a
// sequential scan for as long as it stays cached), while the statements
// after it in the transaction are back on the default plan choice.
func TestClaimManyFindsStoredKeysAndPlansItsLookupEachTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t)+"&pool_max_conns=1")
	db := postgres.NewDB(pool, 3, nil)
	s := idempotency.NewStore(db, 24*time.Hour, nil)
	owner := uuid.New()
	claim := func(key, body string) idempotency.Claim {
		return idempotency.Claim{Owner: owner, Key: key, Fingerprint: []byte(body), Status: http.StatusCreated}
	}
	const rounds = 8
	for r := range rounds {
		keys := []string{fmt.Sprint("k", r, "a"), fmt.Sprint("k", r, "b")}
		err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			states, err := s.ClaimMany(ctx, tx, []idempotency.Claim{claim(keys[0], "x"), claim(keys[1], "x"), claim(keys[0], "x")})
			if err != nil {
				return err
			}
			if !states[0].Fresh() || !states[1].Fresh() || !states[2].Busy {
				t.Fatalf("round %d, first claims: %+v", r, states)
			}
			var mode string
			if err := tx.QueryRow(ctx, "SELECT current_setting('plan_cache_mode')").Scan(&mode); err != nil {
				return err
			}
			if mode != "auto" {
				t.Fatalf("plan_cache_mode %q after ClaimMany, want auto", mode)
			}
			return s.StoreMany(ctx, tx, []idempotency.Stored{{Claim: claim(keys[0], "x"), Status: 201, Body: []byte(`{"n":1}`)}})
		})
		if err != nil {
			t.Fatal(err)
		}
		err = db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			states, err := s.ClaimMany(ctx, tx, []idempotency.Claim{claim(keys[0], "x"), claim(keys[1], "x")})
			if err != nil {
				return err
			}
			if states[0].Stored == nil || string(states[0].Stored.Body) != `{"n":1}` || !states[1].Fresh() {
				t.Fatalf("round %d, second claims: %+v", r, states)
			}
			states, err = s.ClaimMany(ctx, tx, []idempotency.Claim{claim(keys[0], "changed")})
			if err != nil {
				return err
			}
			if !states[0].Reused {
				t.Fatalf("round %d: a changed request under a stored key: %+v", r, states[0])
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var generic, custom int64
	err := pool.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements
		WHERE statement LIKE '-- name: GetIdempotencyKeys%'`).Scan(&generic, &custom)
	if err != nil {
		t.Fatalf("the lookup is not among the prepared statements: %v", err)
	}
	if generic != 0 || custom < 3*rounds {
		t.Fatalf("the lookup ran %d generic and %d custom plans; want 0 and at least %d", generic, custom, 3*rounds)
	}
}
