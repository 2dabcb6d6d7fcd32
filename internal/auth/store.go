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

	"github.com/paygate/paygate/internal/platform/authn"
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

// CreateSession starts a session (a refresh token family) for a user at
// created and returns its id.
func (s *Store) CreateSession(ctx context.Context, tx pgx.Tx, userID uuid.UUID, role authn.Role, created time.Time) (uuid.UUID, error) {
	id := uuid.New()
	_, err := tx.Exec(ctx, `-- name: CreateSession
INSERT INTO auth_sessions (id, user_id, role, created_at) VALUES ($1, $2, $3, $4)`, id, userID, string(role), created)
	return id, err
}

// refreshTokenPrefix marks paygate refresh tokens, so secret scanners can
// recognise a leaked one.
const refreshTokenPrefix = "pgr_"

// IssueRefreshToken stores a new refresh token of the session and returns
// it with its id. Only its SHA-256 hash is stored: a database leak yields
// no usable token. The token has 256 random bits, so a fast hash is
// enough.
func (s *Store) IssueRefreshToken(ctx context.Context, tx pgx.Tx, sessionID uuid.UUID, expires time.Time) (string, uuid.UUID, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", uuid.Nil, fmt.Errorf("refresh token: %w", err)
	}
	token := refreshTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	id := uuid.New()
	_, err := tx.Exec(ctx, `-- name: InsertRefreshToken
INSERT INTO auth_refresh_tokens (id, session_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)`,
		id, sessionID, hashToken(token), expires)
	return token, id, err
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// refreshRecord is a refresh token row with its session.
type refreshRecord struct {
	ID             uuid.UUID
	SessionID      uuid.UUID
	UserID         uuid.UUID
	SessionCreated time.Time
	ExpiresAt      time.Time
	Used           bool
	// WithinGrace is true when the token was rotated less than the grace
	// window ago.
	WithinGrace bool
	// ReplacedBy is the token its rotation issued (uuid.Nil before one).
	ReplacedBy uuid.UUID
	// Revoked is the session's revocation, TokenRevoked this token's own.
	Revoked      bool
	TokenRevoked bool
}

// LockRefreshToken finds the token and locks its row and its session's, so
// that two concurrent refreshes of one token serialise: exactly one rotates
// it and the other sees it used.
func (s *Store) LockRefreshToken(ctx context.Context, tx pgx.Tx, token string, grace time.Duration) (refreshRecord, error) {
	var r refreshRecord
	var replaced *uuid.UUID
	err := tx.QueryRow(ctx, `-- name: LockRefreshToken
SELECT t.id, t.session_id, s.user_id, s.created_at, t.expires_at, t.used_at IS NOT NULL,
       coalesce($2::float8 > 0 AND t.used_at > clock_timestamp() - make_interval(secs => $2::float8), false), t.replaced_by,
       s.revoked_at IS NOT NULL, t.revoked_at IS NOT NULL
FROM auth_refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id
WHERE t.token_hash = $1
FOR UPDATE OF t, s`, hashToken(token), grace.Seconds()).Scan(&r.ID, &r.SessionID, &r.UserID, &r.SessionCreated, &r.ExpiresAt,
		&r.Used, &r.WithinGrace, &replaced, &r.Revoked, &r.TokenRevoked)
	if replaced != nil {
		r.ReplacedBy = *replaced
	}
	return r, err
}

// MarkRefreshTokenUsed records that the token was rotated into next. The
// first rotation's time stays: the grace window counts from it.
func (s *Store) MarkRefreshTokenUsed(ctx context.Context, tx pgx.Tx, id, next uuid.UUID) error {
	_, err := tx.Exec(ctx, `-- name: MarkRefreshTokenUsed
UPDATE auth_refresh_tokens SET used_at = coalesce(used_at, now()), replaced_by = $2 WHERE id = $1`, id, next)
	return err
}

// RevokeUnusedToken revokes the token unless it was used or revoked
// already, and reports whether it did.
func (s *Store) RevokeUnusedToken(ctx context.Context, tx pgx.Tx, id uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, `-- name: RevokeUnusedRefreshToken
UPDATE auth_refresh_tokens SET revoked_at = now() WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL`, id)
	return tag.RowsAffected() == 1, err
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

// SessionActive reports whether the session exists, is not revoked and is
// younger than lifetime.
func (s *Store) SessionActive(ctx context.Context, q postgres.Querier, sessionID uuid.UUID, lifetime time.Duration) (bool, error) {
	st, err := s.Session(ctx, q, sessionID, lifetime)
	return st.Active, err
}

// SessionState is what the per-request check reads of a session.
type SessionState struct {
	Active bool
	UserID uuid.UUID
	// Role is the session's role; empty for a session begun before
	// sessions carried one.
	Role authn.Role
}

// Session returns the state of a session: active while not revoked and
// younger than lifetime.
func (s *Store) Session(ctx context.Context, q postgres.Querier, sessionID uuid.UUID, lifetime time.Duration) (SessionState, error) {
	var st SessionState
	var role *string
	err := q.QueryRow(ctx, `-- name: Session
SELECT revoked_at IS NULL AND created_at > now() - make_interval(secs => $2), user_id, role
FROM auth_sessions WHERE id = $1`, sessionID, lifetime.Seconds()).Scan(&st.Active, &st.UserID, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return SessionState{}, nil
	}
	if role != nil {
		st.Role = authn.Role(*role)
	}
	return st, err
}

// PruneSessions deletes the sessions that ended, with their refresh
// tokens: those past their absolute lifetime, those revoked more than a
// day ago, and those whose every refresh token expired more than a day
// ago. It deletes at most batch sessions and returns how many it did.
func (s *Store) PruneSessions(ctx context.Context, tx pgx.Tx, lifetime time.Duration, batch int) (int64, error) {
	rows, err := tx.Query(ctx, `-- name: EndedSessions
SELECT s.id FROM auth_sessions s
WHERE s.created_at < now() - make_interval(secs => $1)
   OR s.revoked_at < now() - interval '1 day'
   OR NOT EXISTS (SELECT 1 FROM auth_refresh_tokens t WHERE t.session_id = s.id AND t.expires_at > now() - interval '1 day')
LIMIT $2
FOR UPDATE SKIP LOCKED`, lifetime.Seconds(), batch)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `-- name: PruneRefreshTokens
DELETE FROM auth_refresh_tokens WHERE session_id = ANY($1)`, ids); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `-- name: PruneSessions
DELETE FROM auth_sessions WHERE id = ANY($1)`, ids)
	return tag.RowsAffected(), err
}

// BootstrapAdminRecorded reports whether a bootstrap administrator was
// ever created or adopted.
func (s *Store) BootstrapAdminRecorded(ctx context.Context, q postgres.Querier) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `-- name: BootstrapAdminRecorded
SELECT EXISTS (SELECT 1 FROM auth_bootstrap_admin)`).Scan(&ok)
	return ok, err
}

// RecordBootstrapAdmin records the user as the bootstrap administrator
// unless one is recorded already, and reports whether it did.
func (s *Store) RecordBootstrapAdmin(ctx context.Context, q postgres.Querier, userID uuid.UUID) (bool, error) {
	tag, err := q.Exec(ctx, `-- name: RecordBootstrapAdmin
INSERT INTO auth_bootstrap_admin (user_id) VALUES ($1) ON CONFLICT DO NOTHING`, userID)
	return tag.RowsAffected() == 1, err
}

// Advisory lock classes of the throttles (pg_advisory_xact_lock(class,
// hashtext(key))). A reservation takes its email lock before its IP lock,
// and the classes never mix, so two reservations cannot deadlock.
const (
	lockClassEmail    = 0x7067_0001
	lockClassIP       = 0x7067_0002
	lockClassRegister = 0x7067_0003
)

// failureCounts are the failed logins within the window.
type failureCounts struct {
	Email, IP             int
	OldestEmail, OldestIP time.Time
}

// countFailures counts failed logins since since, for the email and for
// the client IP.
func countFailures(ctx context.Context, q postgres.Querier, email, ip string, since time.Time) (failureCounts, error) {
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

// ReserveAttempt reserves one password check for the email from the IP,
// or reports the counts that refuse it. Under advisory locks on the email
// and the IP it counts the attempts within the window and, below both
// limits, records this one as a failure before the password is checked;
// a success deletes it again (ClearFailures, or ReleaseAttempt). So N
// concurrent guesses get at most the limit of checks between them: the
// count cannot be read by all of them before any is written. id is 0 when
// the attempt is refused.
func (s *Store) ReserveAttempt(ctx context.Context, tx pgx.Tx, email, ip string, since time.Time, maxEmail, maxIP int) (id int64, c failureCounts, err error) {
	if _, err := tx.Exec(ctx, `-- name: LockLoginThrottle
SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))`,
		lockClassEmail, email, lockClassIP, ip); err != nil {
		return 0, c, err
	}
	if c, err = countFailures(ctx, tx, email, ip, since); err != nil {
		return 0, c, err
	}
	if c.Email >= maxEmail || c.IP >= maxIP {
		return 0, c, nil
	}
	err = tx.QueryRow(ctx, `-- name: ReserveLoginAttempt
INSERT INTO auth_login_failures (email, client_ip) VALUES ($1, $2) RETURNING id`, email, ip).Scan(&id)
	return id, c, err
}

// ReleaseAttempt deletes a reserved attempt whose password was never
// checked (the check was shed or cancelled), so it does not count.
func (s *Store) ReleaseAttempt(ctx context.Context, q postgres.Querier, id int64) error {
	_, err := q.Exec(ctx, `-- name: ReleaseLoginAttempt
DELETE FROM auth_login_failures WHERE id = $1`, id)
	return err
}

// ClearFailures forgets the failed logins of an email after a success.
func (s *Store) ClearFailures(ctx context.Context, q postgres.Querier, email string) error {
	_, err := q.Exec(ctx, `-- name: ClearLoginFailures
DELETE FROM auth_login_failures WHERE email = $1`, email)
	return err
}

// ReserveRegistration records a registration attempt from the IP unless
// limit of them were made since since, under an advisory lock on the IP so
// that concurrent registrations cannot all pass the count. It returns the
// id of the recorded attempt or, when refused, 0 and the time of the
// oldest counted attempt.
func (s *Store) ReserveRegistration(ctx context.Context, tx pgx.Tx, ip string, since time.Time, limit int) (int64, time.Time, error) {
	if _, err := tx.Exec(ctx, `-- name: LockRegistrationThrottle
SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClassRegister, ip); err != nil {
		return 0, time.Time{}, err
	}
	var n int
	var oldest *time.Time
	if err := tx.QueryRow(ctx, `-- name: CountRegistrations
SELECT count(*), min(attempted_at) FROM auth_registration_attempts WHERE client_ip = $1 AND attempted_at > $2`,
		ip, since).Scan(&n, &oldest); err != nil {
		return 0, time.Time{}, err
	}
	if n >= limit {
		return 0, *oldest, nil
	}
	var id int64
	err := tx.QueryRow(ctx, `-- name: RecordRegistration
INSERT INTO auth_registration_attempts (client_ip) VALUES ($1) RETURNING id`, ip).Scan(&id)
	return id, time.Time{}, err
}

// ReleaseRegistration deletes a recorded registration attempt.
func (s *Store) ReleaseRegistration(ctx context.Context, q postgres.Querier, id int64) error {
	_, err := q.Exec(ctx, `-- name: ReleaseRegistration
DELETE FROM auth_registration_attempts WHERE id = $1`, id)
	return err
}

// PruneRegistrations deletes registration attempts older than before.
func (s *Store) PruneRegistrations(ctx context.Context, q postgres.Querier, before time.Time) error {
	_, err := q.Exec(ctx, `-- name: PruneRegistrations
DELETE FROM auth_registration_attempts WHERE attempted_at < $1`, before)
	return err
}

// PruneFailures deletes failures older than before.
func (s *Store) PruneFailures(ctx context.Context, q postgres.Querier, before time.Time) error {
	_, err := q.Exec(ctx, `-- name: PruneLoginFailures
DELETE FROM auth_login_failures WHERE failed_at < $1`, before)
	return err
}
