package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/internal/migrations"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/platform/postgres"
)

func TestConcurrentMigrationsApplyEachVersionOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.NewEmptyDatabase(t)
	ctx := context.Background()
	const instances = 4
	applied := make([][]int, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			pool := pgtest.NewPool(t, url)
			m, err := postgres.NewMigrator(pool, migrations.FS, zaptest.NewLogger(t))
			if err != nil {
				errs[i] = err
				return
			}
			applied[i], errs[i] = m.Up(ctx)
		})
	}
	wg.Wait()
	seen := map[int]int{}
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		for _, v := range applied[i] {
			seen[v]++
		}
	}
	ms, err := postgres.LoadMigrations(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if seen[m.Version] != 1 {
			t.Errorf("migration %d applied %d times, want 1", m.Version, seen[m.Version])
		}
	}
	pool := pgtest.NewPool(t, url)
	m, err := postgres.NewMigrator(pool, migrations.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SchemaCheck(ctx); err != nil {
		t.Fatalf("schema check after migrate: %v", err)
	}
}

func TestSchemaCheckReportsPendingMigrations(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewEmptyDatabase(t))
	m, err := postgres.NewMigrator(pool, migrations.FS, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SchemaCheck(context.Background()); err == nil {
		t.Fatal("schema check passed on an empty database")
	}
}

func TestChangedMigrationIsRefused(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewEmptyDatabase(t))
	ctx := context.Background()
	v1 := fstest.MapFS{"0001_a_table.sql": {Data: []byte("CREATE TABLE a (id int);")}}
	m, err := postgres.NewMigrator(pool, v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	edited := fstest.MapFS{
		"0001_a_table.sql": {Data: []byte("CREATE TABLE a (id bigint);")},
		"0002_b_table.sql": {Data: []byte("CREATE TABLE b (id int);")},
	}
	m2, err := postgres.NewMigrator(pool, edited, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Up(ctx); err == nil {
		t.Fatal("an edited migration was accepted")
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('b') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("migrations after the edited one ran (%v)", err)
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewEmptyDatabase(t))
	ctx := context.Background()
	bad := fstest.MapFS{"0001_half.sql": {Data: []byte("CREATE TABLE half (id int); SELECT no_such_function();")}}
	m, err := postgres.NewMigrator(pool, bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx); err == nil {
		t.Fatal("failing migration reported success")
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('half') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("a failed migration left its table behind (%v)", err)
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	t.Parallel()
	_, err := postgres.LoadMigrations(fstest.MapFS{
		"0001_a.sql": {Data: []byte("SELECT 1")},
		"0003_c.sql": {Data: []byte("SELECT 1")},
	})
	if err == nil {
		t.Fatal("a gap in migration numbers was accepted")
	}
}

func TestInTxRetriesSerializationFailures(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	db := postgres.NewDB(pool, 4, zaptest.NewLogger(t))
	ctx := context.Background()

	var calls atomic.Int32
	err := db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if calls.Add(1) < 3 {
			return &pgconn.PgError{Code: "40001"}
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("err=%v calls=%d, want success on the third attempt", err, calls.Load())
	}

	calls.Store(0)
	err = db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		calls.Add(1)
		return &pgconn.PgError{Code: "40P01"}
	})
	if !postgres.Retryable(err) || calls.Load() != 4 {
		t.Fatalf("err=%v calls=%d, want the deadlock after 4 attempts", err, calls.Load())
	}

	calls.Store(0)
	boom := errors.New("boom")
	err = db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		calls.Add(1)
		return boom
	})
	if !errors.Is(err, boom) || calls.Load() != 1 {
		t.Fatalf("err=%v calls=%d, want boom once", err, calls.Load())
	}
}

// TestInTxSurvivesRealDeadlock makes two transactions lock two rows in
// opposite orders. PostgreSQL aborts one with 40P01; InTx runs it again and
// both updates land.
func TestInTxSurvivesRealDeadlock(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	ctx := context.Background()
	if _, err := pool.Exec(ctx, "CREATE TABLE acc (id int PRIMARY KEY, n int NOT NULL); INSERT INTO acc VALUES (1, 0), (2, 0);"); err != nil {
		t.Fatal(err)
	}
	db := postgres.NewDB(pool, 5, zaptest.NewLogger(t))
	var firstLocked sync.WaitGroup
	firstLocked.Add(2)
	var attempts atomic.Int32
	run := func(a, b int) error {
		var once sync.Once
		return db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			attempts.Add(1)
			if _, err := tx.Exec(ctx, "UPDATE acc SET n = n + 1 WHERE id = $1", a); err != nil {
				return err
			}
			once.Do(func() { firstLocked.Done(); firstLocked.Wait() })
			_, err := tx.Exec(ctx, "UPDATE acc SET n = n + 1 WHERE id = $1", b)
			return err
		})
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = run(1, 2) })
	wg.Go(func() { errs[1] = run(2, 1) })
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v, %v", errs[0], errs[1])
	}
	if attempts.Load() < 3 {
		t.Fatalf("attempts = %d: no transaction was retried, so no deadlock happened", attempts.Load())
	}
	var sum int
	if err := pool.QueryRow(ctx, "SELECT sum(n) FROM acc").Scan(&sum); err != nil || sum != 4 {
		t.Fatalf("sum = %d (%v), want 4", sum, err)
	}
}

// TestSchemaAheadOfBinaryIsReported: after a rollback the database holds
// migrations of a newer release. The older binary's migrate neither fails
// nor touches them, and says clearly which they are.
func TestSchemaAheadOfBinaryIsReported(t *testing.T) {
	pool := pgtest.NewPool(t, pgtest.NewEmptyDatabase(t))
	ctx := context.Background()
	newer := fstest.MapFS{
		"0001_a_table.sql":  {Data: []byte("CREATE TABLE a (id int);")},
		"0002_a_column.sql": {Data: []byte("ALTER TABLE a ADD COLUMN note text;")},
	}
	m, _ := postgres.NewMigrator(pool, newer, nil)
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	older, _ := postgres.NewMigrator(pool, fstest.MapFS{"0001_a_table.sql": newer["0001_a_table.sql"]}, zap.New(core))
	applied, err := older.Up(ctx)
	if err != nil || len(applied) != 0 {
		t.Fatalf("the older binary's migrate: applied %v, err %v; want nothing applied and no error", applied, err)
	}
	ahead, err := older.Ahead(ctx)
	if err != nil || len(ahead) != 1 || ahead[0].Version != 2 || ahead[0].Name != "a_column" {
		t.Fatalf("Ahead = %+v, %v; want 0002_a_column", ahead, err)
	}
	entries := logs.FilterMessage("database schema is ahead of this binary").All()
	if len(entries) != 1 {
		t.Fatalf("want one warning about the schema ahead, got %d: %v", len(entries), logs.All())
	}
	detail := entries[0].ContextMap()["detail"].(string)
	for _, want := range []string{"0002_a_column", "latest is 0001", "expand/contract"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the warning %q does not mention %q", detail, want)
		}
	}
	if err := older.SchemaCheck(ctx); err != nil {
		t.Errorf("readiness fails on a schema ahead of the binary: %v", err)
	}
}

// TestPoolSendsUUIDsAsBinary checks the pool's type registration: a
// google/uuid.UUID argument, alone and in a uuid[] array, arrives intact,
// and a uuid column read into an interface comes back as a uuid.UUID (pgx
// alone returns [16]byte there, so this fails if the codec is not
// registered on the pool's connections).
func TestPoolSendsUUIDsAsBinary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := postgres.NewPool(ctx, config.Database{URL: pgtest.NewEmptyDatabase(t), MaxConns: 2,
		ConnectTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	ids := []uuid.UUID{uuid.New(), uuid.New()}
	var first, second any
	var text string
	if err := pool.QueryRow(ctx, `SELECT $1::uuid, ($2::uuid[])[2], ($2::uuid[])[1]::text`, ids[0], ids).
		Scan(&first, &second, &text); err != nil {
		t.Fatal(err)
	}
	if got, ok := first.(uuid.UUID); !ok || got != ids[0] {
		t.Errorf("uuid argument read back as %T %v, want uuid.UUID %v", first, first, ids[0])
	}
	if got, ok := second.(uuid.UUID); !ok || got != ids[1] {
		t.Errorf("uuid[] element read back as %T %v, want uuid.UUID %v", second, second, ids[1])
	}
	if text != ids[0].String() {
		t.Errorf("uuid[] element as text = %q, want %q", text, ids[0])
	}

	var nullID uuid.NullUUID
	if err := pool.QueryRow(ctx, `SELECT NULL::uuid`).Scan(&nullID); err != nil || nullID.Valid {
		t.Errorf("NULL uuid scanned as %+v, %v; want invalid, no error", nullID, err)
	}
}
