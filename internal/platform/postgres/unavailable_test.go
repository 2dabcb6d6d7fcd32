package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/httpserver"
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

// TestAnUnreachableDatabaseIsA503WhereverItSurfaces: an error of a
// database that cannot be reached, returned by a read outside InTx and
// wrapped by its caller as it is (the idempotency lookup before a top-up
// did so: the chaos suite's PostgreSQL restart saw a 500), reaches the
// client as 503 DATABASE_UNAVAILABLE with a Retry-After; any other fault
// stays a 500.
func TestAnUnreachableDatabaseIsA503WhereverItSurfaces(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{fmt.Errorf("idempotency lookup: %w", refused), 503, "DATABASE_UNAVAILABLE", "2"},
		{fmt.Errorf("read: %w", &pgconn.PgError{Code: "57P03"}), 503, "DATABASE_UNAVAILABLE", "2"},
		{fmt.Errorf("read: %w", &pgconn.PgError{Code: "23505"}), 500, "INTERNAL", ""},
		{errors.New("something else"), 500, "INTERNAL", ""},
	} {
		rec := httptest.NewRecorder()
		httpserver.WriteError(rec, httptest.NewRequest("POST", "/v1/topups", nil), nil, tc.err)
		var p httpserver.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		if rec.Code != tc.status || p.Code != tc.code || rec.Header().Get("Retry-After") != tc.retryAfter {
			t.Errorf("%v: %d %s Retry-After %q, want %d %s %q", tc.err, rec.Code, p.Code, rec.Header().Get("Retry-After"),
				tc.status, tc.code, tc.retryAfter)
		}
		if strings.Contains(rec.Body.String(), "refused") || strings.Contains(rec.Body.String(), "read:") {
			t.Errorf("the cause leaked to the client: %s", rec.Body.String())
		}
	}
}
