package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// tripCounter counts the round trips of a connection: a statement sent
// alone or a batch.
type tripCounter struct{ trips []string }

func (c *tripCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.trips = append(c.trips, strings.Fields(d.SQL)[0])
	return ctx
}
func (c *tripCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *tripCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips = append(c.trips, "batch")
	return ctx
}
func (c *tripCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *tripCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// pipelineFixture is a database with a table whose rows must come in
// pairs by COMMIT (a deferred constraint trigger, as the ledger's balance
// check), and a traced connection to it.
func pipelineFixture(t *testing.T) (*pgx.Conn, *tripCounter, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if _, err := admin.Exec(ctx, `
CREATE TABLE pairs (pair int NOT NULL, n int NOT NULL);
CREATE FUNCTION pairs_complete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM pairs WHERE pair = NEW.pair) <> 2 THEN
        RAISE EXCEPTION 'pair % is incomplete', NEW.pair USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER pairs_complete AFTER INSERT ON pairs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pairs_complete();`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tripCounter{}
	cfg.Tracer = tc
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, tc, admin
}

func insertPair(b *pgx.Batch, pair, n int) {
	b.Queue("INSERT INTO pairs (pair, n) VALUES ($1, $2)", pair, n)
}

func countPairs(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pairs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAPipelinedTransactionCostsOneRoundTripPerBatch: a transaction of two
// batches, the second with the COMMIT, is two round trips, and reads its
// own writes between them; another session sees nothing before the
// COMMIT and everything after; the connection is idle again.
func TestAPipelinedTransactionCostsOneRoundTripPerBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, tc, admin := pipelineFixture(t)
	err := postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 1, 1)
		var seen int
		b.Queue("SELECT count(*) FROM pairs").QueryRow(func(r pgx.Row) error { return r.Scan(&seen) })
		if err := p.Send(ctx, b); err != nil {
			return err
		}
		if seen != 1 {
			t.Errorf("the transaction saw %d of its rows, want 1", seen)
		}
		if n := countPairs(t, admin); n != 0 {
			t.Errorf("another session saw %d uncommitted rows", n)
		}
		b = &pgx.Batch{}
		insertPair(b, 1, 2)
		return p.SendAndCommit(ctx, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tc.trips, ","); got != "batch,batch" {
		t.Fatalf("round trips %s, want batch,batch", got)
	}
	if n := countPairs(t, admin); n != 2 {
		t.Fatalf("%d rows committed, want 2", n)
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("connection left in state %c", s)
	}
	// fn that returns without SendAndCommit is committed for it.
	err = postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 2, 1)
		insertPair(b, 2, 2)
		return p.Send(ctx, b)
	})
	if err != nil || countPairs(t, admin) != 4 {
		t.Fatalf("an implicit commit: %v, %d rows", err, countPairs(t, admin))
	}
}

// TestAPipelinedTransactionIsAllOrNothing: a COMMIT refused by a deferred
// constraint, a failed statement in an early batch, and an error of fn
// after a batch each leave nothing, leave the connection idle and usable,
// and end the pipeline: a later send fails without reaching the server.
func TestAPipelinedTransactionIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, _, admin := pipelineFixture(t)
	var pgErr *pgconn.PgError
	// The deferred check fails at COMMIT: half a pair.
	err := postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 1, 1)
		if err := p.SendAndCommit(ctx, b); err != nil {
			return err
		}
		t.Error("the commit of half a pair succeeded")
		return nil
	})
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Fatalf("half a pair: %v, want check_violation", err)
	}
	// A statement of the first batch fails; the second is never sent.
	err = postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 2, 1)
		b.Queue("SELECT 1/0")
		insertPair(b, 2, 2)
		if err := p.Send(ctx, b); err == nil {
			t.Error("a division by zero succeeded")
		}
		if err := p.SendAndCommit(ctx, &pgx.Batch{}); !errors.Is(err, postgres.ErrPipelineOver) {
			t.Errorf("a send after a failed batch: %v", err)
		}
		return errors.New("given up")
	})
	if err == nil || err.Error() != "given up" {
		t.Fatalf("a failed batch: %v", err)
	}
	// fn fails after a batch that succeeded: rolled back.
	err = postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 3, 1)
		insertPair(b, 3, 2)
		if err := p.Send(ctx, b); err != nil {
			return err
		}
		return errors.New("crash before the commit")
	})
	if err == nil {
		t.Fatal("fn's error was lost")
	}
	if n := countPairs(t, admin); n != 0 {
		t.Fatalf("%d rows left by failed transactions", n)
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("connection left in state %c", s)
	}
	if n := countPairs(t, conn); n != 0 {
		t.Fatalf("the connection, reused, sees %d rows", n)
	}
}

// TestACallbackOfTheCommittingBatchCannotUndoIt pins what SendAndCommit's
// documentation warns of: the server has committed by the time the
// client reads the batch's results, so a callback's error is returned
// but the rows stay, and the connection is idle.
func TestACallbackOfTheCommittingBatchCannotUndoIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, _, admin := pipelineFixture(t)
	refused := errors.New("refused by a callback")
	err := postgres.RunPipelined(ctx, conn, func(ctx context.Context, p postgres.Pipeline) error {
		b := &pgx.Batch{}
		insertPair(b, 1, 1)
		b.Queue("INSERT INTO pairs (pair, n) VALUES (1, 2)").Exec(func(pgconn.CommandTag) error { return refused })
		return p.SendAndCommit(ctx, b)
	})
	if !errors.Is(err, refused) {
		t.Fatalf("the callback's error: %v", err)
	}
	if n := countPairs(t, admin); n != 2 {
		t.Fatalf("%d rows after a committed batch whose callback failed, want 2", n)
	}
	if s := conn.PgConn().TxStatus(); s != 'I' {
		t.Fatalf("connection left in state %c", s)
	}
}
