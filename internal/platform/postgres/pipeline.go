package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Pipeline is a transaction whose statements are sent in pipelined
// batches, one round trip each.
type Pipeline interface {
	// Send sends b in the transaction and runs its callbacks.
	Send(ctx context.Context, b *pgx.Batch) error
	// SendAndCommit sends b and the transaction's COMMIT together. Nothing
	// may be sent after it. The server runs the whole pipeline before the
	// client reads a result, so b's callbacks run after the COMMIT: an
	// error a callback returns is reported but cannot undo it. A check
	// that must abort the transaction belongs in SQL (a constraint, a
	// trigger, a statement that fails), or in an earlier Send.
	SendAndCommit(ctx context.Context, b *pgx.Batch) error
}

// ErrPipelineOver is the error of a send after SendAndCommit, or after
// a batch failed: the transaction has ended, or can only be rolled back.
var ErrPipelineOver = errors.New("postgres: the pipelined transaction is over (committed, or failed)")

// InPipelinedTx runs fn in a read-committed transaction on a connection of
// the pool whose BEGIN goes out with fn's first batch and whose COMMIT
// goes out with its last (SendAndCommit): a transaction of n batches costs
// n round trips, not n + 2. That matters where a transaction holds row
// locks others queue on, from its locking statement to its commit: there
// the COMMIT's round trip is one more wait for every transaction queued
// behind it. If fn returns without having committed, its transaction is
// committed (nil error) or rolled back (an error) as InTx would, and as
// InTx it runs fn again after a serialization failure or a deadlock.
func (db *DB) InPipelinedTx(ctx context.Context, fn func(ctx context.Context, p Pipeline) error) error {
	return db.retry(ctx, func() error {
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("acquire: %w", err)
		}
		defer conn.Release()
		return RunPipelined(ctx, conn.Conn(), fn)
	})
}

// RunPipelined is InPipelinedTx on conn, which must be idle (not in a
// transaction). It leaves conn idle again, or closes it when a rollback
// could not be sent.
func RunPipelined(ctx context.Context, conn *pgx.Conn, fn func(ctx context.Context, p Pipeline) error) (err error) {
	p := &pipelinedTx{conn: conn}
	defer func() {
		if err != nil && conn.PgConn().TxStatus() != 'I' {
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "rollback"); rbErr != nil {
				_ = conn.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	if err := fn(ctx, p); err != nil {
		return err
	}
	if !p.committed {
		return p.SendAndCommit(ctx, &pgx.Batch{})
	}
	return nil
}

// pipelinedTx is RunPipelined's Pipeline.
type pipelinedTx struct {
	conn  *pgx.Conn
	begun bool
	// over: the COMMIT went out, or a batch failed; nothing more is sent.
	over bool
	// committed: fn committed the transaction with SendAndCommit.
	committed bool
}

func (p *pipelinedTx) Send(ctx context.Context, b *pgx.Batch) error {
	return p.send(ctx, b, false)
}

func (p *pipelinedTx) SendAndCommit(ctx context.Context, b *pgx.Batch) error {
	return p.send(ctx, b, true)
}

func (p *pipelinedTx) send(ctx context.Context, b *pgx.Batch, commit bool) error {
	if p.over {
		return ErrPipelineOver
	}
	out := b
	if !p.begun {
		out = &pgx.Batch{}
		out.Queue("begin isolation level read committed")
		out.QueuedQueries = append(out.QueuedQueries, b.QueuedQueries...)
	}
	if commit {
		if out == b {
			out = &pgx.Batch{QueuedQueries: append([]*pgx.QueuedQuery(nil), b.QueuedQueries...)}
		}
		// A COMMIT of a transaction that failed answers ROLLBACK, not an
		// error; within one pipeline the server skips everything after a
		// failed statement, but the tag is checked all the same.
		out.Queue("commit").Exec(func(ct pgconn.CommandTag) error {
			if ct.String() != "COMMIT" {
				return pgx.ErrTxCommitRollback
			}
			return nil
		})
	}
	p.begun, p.over, p.committed = true, commit, commit
	if err := p.conn.SendBatch(ctx, out).Close(); err != nil {
		// The transaction failed (the caller's rollback ends it) or,
		// if this was its COMMIT, ended: either way nothing more is sent.
		p.over = true
		return err
	}
	return nil
}

// TxPipeline is a Pipeline over tx, a transaction of InTx: its
// SendAndCommit only sends, leaving the commit (or a rollback) to tx's
// owner. It runs a Pipeline's user inside an ordinary transaction, as a
// test that rolls back does.
func TxPipeline(tx pgx.Tx) Pipeline { return txPipeline{tx} }

type txPipeline struct{ tx pgx.Tx }

func (t txPipeline) Send(ctx context.Context, b *pgx.Batch) error {
	return t.tx.SendBatch(ctx, b).Close()
}

func (t txPipeline) SendAndCommit(ctx context.Context, b *pgx.Batch) error {
	return t.Send(ctx, b)
}
