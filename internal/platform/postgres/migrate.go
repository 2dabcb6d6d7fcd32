package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// migrationLockKey is the advisory lock that serialises migration runs
// across replicas ("paygmigr" read as a number); two instances starting
// together queue on it and the second finds nothing left to do.
const migrationLockKey int64 = 0x706179676d696772

// Migration is one embedded SQL file.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads NNNN_name.sql files from fsys in version order. It
// rejects gaps and duplicate versions, which would make the order ambiguous.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migrations must be numbered 0001, 0002, ... without gaps; found %04d at position %d", m.Version, i+1)
		}
	}
	return out, nil
}

// Migrator applies migrations to a database.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []Migration
	log        *zap.Logger
}

// NewMigrator returns a Migrator for the migrations in fsys.
func NewMigrator(pool *pgxpool.Pool, fsys fs.FS, log *zap.Logger) (*Migrator, error) {
	ms, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	return &Migrator{pool: pool, migrations: ms, log: log}, nil
}

// Latest returns the highest embedded version.
func (m *Migrator) Latest() int {
	if len(m.migrations) == 0 {
		return 0
	}
	return m.migrations[len(m.migrations)-1].Version
}

const createVersionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Up applies every pending migration, each in its own transaction, under a
// session advisory lock. It refuses to run when an applied migration's file
// changed since, because forward-only means released files never change.
// It returns the versions it applied.
func (m *Migrator) Up(ctx context.Context) ([]int, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "-- name: LockMigrations\nSELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "-- name: UnlockMigrations\nSELECT pg_advisory_unlock($1)", migrationLockKey)
	}()
	if _, err := conn.Exec(ctx, createVersionTable); err != nil {
		return nil, fmt.Errorf("migrate: version table: %w", err)
	}
	applied, err := appliedChecksums(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if ahead, err := m.ahead(ctx, conn.Conn()); err != nil {
		return nil, err
	} else if len(ahead) > 0 && m.log != nil {
		m.log.Warn("database schema is ahead of this binary",
			zap.String("detail", aheadMessage(ahead, m.Latest())))
	}
	var done []int
	for _, mig := range m.migrations {
		if sum, ok := applied[mig.Version]; ok {
			if sum != mig.Checksum {
				return done, fmt.Errorf("migrate: %04d_%s changed after it was applied; write a new migration instead", mig.Version, mig.Name)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn.Conn(), func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, mig.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "-- name: RecordMigration\nINSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
				mig.Version, mig.Name, mig.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: %04d_%s: %w", mig.Version, mig.Name, err)
		}
		if m.log != nil {
			m.log.Info("applied migration", zap.Int("version", mig.Version), zap.String("name", mig.Name))
		}
		done = append(done, mig.Version)
	}
	return done, nil
}

// Pending returns the embedded migrations the database has not applied.
func (m *Migrator) Pending(ctx context.Context) ([]Migration, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	applied, err := appliedChecksums(ctx, conn.Conn())
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
			return m.migrations, nil
		}
		return nil, err
	}
	var out []Migration
	for _, mig := range m.migrations {
		if _, ok := applied[mig.Version]; !ok {
			out = append(out, mig)
		}
	}
	return out, nil
}

// Ahead returns the migrations the database has applied that this binary
// does not know: a newer release applied them, and this one runs after a
// rollback. That is safe only under the expand/contract rule (README,
// "Kubernetes"): a release's migrations only add to the schema that the
// release before it uses, and removals wait for a later release.
func (m *Migrator) Ahead(ctx context.Context) ([]Migration, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	return m.ahead(ctx, conn.Conn())
}

func (m *Migrator) ahead(ctx context.Context, conn *pgx.Conn) ([]Migration, error) {
	rows, err := conn.Query(ctx, "-- name: MigrationsAhead\nSELECT version, name FROM schema_migrations WHERE version > $1 ORDER BY version", m.Latest())
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table
			return nil, nil
		}
		return nil, fmt.Errorf("migrate: read applied versions: %w", err)
	}
	var out []Migration
	var mig Migration
	_, err = pgx.ForEachRow(rows, []any{&mig.Version, &mig.Name}, func() error {
		out = append(out, mig)
		return nil
	})
	return out, err
}

// aheadMessage says which versions a newer release applied, for logs.
func aheadMessage(ahead []Migration, latest int) string {
	first, last := ahead[0], ahead[len(ahead)-1]
	return fmt.Sprintf("the database has %d migration(s) this binary does not know, %04d_%s to %04d_%s (this binary's latest is %04d): "+
		"a newer release applied them and this one runs after a rollback, which is safe only if they follow the expand/contract rule; "+
		"nothing is undone", len(ahead), first.Version, first.Name, last.Version, last.Name, latest)
}

// SchemaCheck is a readiness probe: it fails while migrations are pending.
// A schema ahead of the binary (after a rollback) does not fail it, since
// expand/contract migrations keep the previous release working, but it is
// logged by Up, which `paygate migrate` and the migration hook run.
func (m *Migrator) SchemaCheck(ctx context.Context) error {
	pending, err := m.Pending(ctx)
	if err != nil {
		return fmt.Errorf("cannot read schema version: %w", err)
	}
	if len(pending) > 0 {
		return fmt.Errorf("%d migration(s) pending, first %04d_%s", len(pending), pending[0].Version, pending[0].Name)
	}
	return nil
}

func appliedChecksums(ctx context.Context, conn *pgx.Conn) (map[int]string, error) {
	rows, err := conn.Query(ctx, "-- name: AppliedMigrations\nSELECT version, checksum FROM schema_migrations")
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	var v int
	var sum string
	_, err = pgx.ForEachRow(rows, []any{&v, &sum}, func() error {
		out[v] = sum
		return nil
	})
	return out, err
}
