package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/postgres"
)

// Store holds the SQL of the auth tables: credentials, sessions, refresh
// tokens and login failures.
type Store struct{}

// NewStore returns the auth store.
func NewStore() *Store { return &Store{} }

// SetPassword stores the password hash of a user.
func (s *Store) SetPassword(ctx context.Context, tx pgx.Tx, userID uuid.UUID, hash string) error {
	_, err := tx.Exec(ctx, `-- name: SetPassword
INSERT INTO auth_credentials (user_id, password_hash) VALUES ($1, $2)
ON CONFLICT (user_id) DO UPDATE SET password_hash = excluded.password_hash, updated_at = now()`, userID, hash)
	return err
}

// PasswordHash returns the stored hash of a user ("" when none).
func (s *Store) PasswordHash(ctx context.Context, q postgres.Querier, userID uuid.UUID) (string, error) {
	var h string
	err := q.QueryRow(ctx, `-- name: GetPasswordHash
SELECT password_hash FROM auth_credentials WHERE user_id = $1`, userID).Scan(&h)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// CreateSession starts a session (a refresh token family) for a user.
func (s *Store) CreateSession(ctx context.Context, tx pgx.Tx, userID uuid.UUID) (uuid.UUID, error) {
	id := uuid.New()
	_, err := tx.Exec(ctx, `-- name: CreateSession
INSERT INTO auth_sessions (id, user_id) VALUES ($1, $2)`, id, userID)
	return id, err
}

// refreshTokenPrefix marks paygate refresh tokens, so secret scanners can
// recognise a leaked one.
const refreshTokenPrefix = "pgr_"

// IssueRefreshToken stores a new refresh token of the session and returns
// it. Only its SHA-256 hash is stored: a database leak yields no usable
// token. The token has 256 random bits, so a fast hash is enough.
func (s *Store) IssueRefreshToken(ctx context.Context, tx pgx.Tx, sessionID uuid.UUID, expires time.Time) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("refresh token: %w", err)
	}
	token := refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	_, err := tx.Exec(ctx, `-- name: InsertRefreshToken
INSERT INTO auth_refresh_tokens (id, session_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)`,
		uuid.New(), sessionID, hashToken(token), expires)
	return token, err
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// refreshRecord is a refresh token row with its session.
type refreshRecord struct {
	ID        uuid.UUID
	SessionID uuid.UUID
	UserID    uuid.UUID
	ExpiresAt time.Time
	Used      bool
	Revoked   bool
}

// LockRefreshToken finds the token and locks its row and its session's, so
// that two concurrent refreshes of one token serialise: exactly one rotates
// it and the other sees it used.
func (s *Store) LockRefreshToken(ctx context.Context, tx pgx.Tx, token string) (refreshRecord, error) {
	var r refreshRecord
	err := tx.QueryRow(ctx, `-- name: LockRefreshToken
SELECT t.id, t.session_id, s.user_id, t.expires_at, t.used_at IS NOT NULL, s.revoked_at IS NOT NULL
FROM auth_refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id
WHERE t.token_hash = $1
FOR UPDATE OF t, s`, hashToken(token)).Scan(&r.ID, &r.SessionID, &r.UserID, &r.ExpiresAt, &r.Used, &r.Revoked)
	return r, err
}

// MarkRefreshTokenUsed records that the token was rotated.
func (s *Store) MarkRefreshTokenUsed(ctx context.Context, tx pgx.Tx, id uuid.UUID) error {
	_, err := tx.Exec(ctx, `-- name: MarkRefreshTokenUsed
UPDATE auth_refresh_tokens SET used_at = now() WHERE id = $1`, id)
	return err
}

// RevokeSession ends a session and so every token of its family.
func (s *Store) RevokeSession(ctx context.Context, q postgres.Querier, sessionID uuid.UUID, reason string) error {
	_, err := q.Exec(ctx, `-- name: RevokeSession
UPDATE auth_sessions SET revoked_at = now(), revoke_reason = $2 WHERE id = $1 AND revoked_at IS NULL`, sessionID, reason)
	return err
}

// RevokeUserSessions ends every session of the user except keep (when not
// uuid.Nil).
func (s *Store) RevokeUserSessions(ctx context.Context, q postgres.Querier, userID, keep uuid.UUID, reason string) error {
	_, err := q.Exec(ctx, `-- name: RevokeUserSessions
UPDATE auth_sessions SET revoked_at = now(), revoke_reason = $3
WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL`, userID, keep, reason)
	return err
}

// SessionActive reports whether the session exists and is not revoked.
func (s *Store) SessionActive(ctx context.Context, q postgres.Querier, sessionID uuid.UUID) (bool, error) {
	var active bool
	err := q.QueryRow(ctx, `-- name: SessionActive
SELECT EXISTS (SELECT 1 FROM auth_sessions WHERE id = $1 AND revoked_at IS NULL)`, sessionID).Scan(&active)
	return active, err
}

// failureCounts are the failed logins within the window.
type failureCounts struct {
	Email, IP             int
	OldestEmail, OldestIP time.Time
}

// CountFailures counts failed logins since since, for the email and for
// the client IP.
func (s *Store) CountFailures(ctx context.Context, q postgres.Querier, email, ip string, since time.Time) (failureCounts, error) {
	var c failureCounts
	var oe, oi *time.Time
	err := q.QueryRow(ctx, `-- name: CountLoginFailures
SELECT
  (SELECT count(*) FROM auth_login_failures WHERE email = $1 AND failed_at > $3),
  (SELECT min(failed_at) FROM auth_login_failures WHERE email = $1 AND failed_at > $3),
  (SELECT count(*) FROM auth_login_failures WHERE client_ip = $2 AND failed_at > $3),
  (SELECT min(failed_at) FROM auth_login_failures WHERE client_ip = $2 AND failed_at > $3)`,
		email, ip, since).Scan(&c.Email, &oe, &c.IP, &oi)
	if oe != nil {
		c.OldestEmail = *oe
	}
	if oi != nil {
		c.OldestIP = *oi
	}
	return c, err
}

// RecordFailure records a failed login.
func (s *Store) RecordFailure(ctx context.Context, q postgres.Querier, email, ip string) error {
	_, err := q.Exec(ctx, `-- name: RecordLoginFailure
INSERT INTO auth_login_failures (email, client_ip) VALUES ($1, $2)`, email, ip)
	return err
}

// ClearFailures forgets the failed logins of an email after a success.
func (s *Store) ClearFailures(ctx context.Context, q postgres.Querier, email string) error {
	_, err := q.Exec(ctx, `-- name: ClearLoginFailures
DELETE FROM auth_login_failures WHERE email = $1`, email)
	return err
}

// PruneFailures deletes failures older than before.
func (s *Store) PruneFailures(ctx context.Context, q postgres.Querier, before time.Time) error {
	_, err := q.Exec(ctx, `-- name: PruneLoginFailures
DELETE FROM auth_login_failures WHERE failed_at < $1`, before)
	return err
}
