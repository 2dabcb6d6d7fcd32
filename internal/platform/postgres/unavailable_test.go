package postgres_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/postgres"
)

// TestADatabaseThatCannotBeReachedIsUnavailableNotInternal: a transaction
// against a server that refuses connections fails with
// DATABASE_UNAVAILABLE (503, with a Retry-After), not an internal error;
// the server's shutdown codes count too, and an ordinary SQL error does
// not.
func TestADatabaseThatCannotBeReachedIsUnavailableNotInternal(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	cfg, err := pgxpool.ParseConfig("postgres://nobody@" + addr + "/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = postgres.NewDB(pool, 3, nil).InTx(ctx, func(context.Context, pgx.Tx) error { return nil })
	var ae *apperr.Error
	if !errors.Is(err, postgres.ErrDatabaseUnavailable) || !errors.As(err, &ae) || ae.Kind != apperr.KindUnavailable || ae.RetryAfter <= 0 {
		t.Fatalf("err = %v, want DATABASE_UNAVAILABLE with a Retry-After", err)
	}
	for code, want := range map[string]bool{"57P01": true, "57P03": true, "08006": true, "23505": false, "40001": false} {
		if got := postgres.Unavailable(&pgconn.PgError{Code: code}); got != want {
			t.Errorf("SQLSTATE %s: unavailable %v, want %v", code, got, want)
		}
	}
}
