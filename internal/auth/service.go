// Package auth authenticates paygate's users: registration, login with
// argon2id passwords, EdDSA JWT access tokens, rotating refresh tokens with
// theft detection, password changes, login throttling kept in Postgres, and
// the middleware that verifies the token on every request.
package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/platform/postgres"
	"github.com/paygate/paygate/internal/users"
)

// Errors of the auth domain.
var (
	ErrInvalidCredentials  = apperr.New(apperr.KindUnauthenticated, "INVALID_CREDENTIALS", "The email or password is wrong.")
	ErrInvalidRefreshToken = apperr.New(apperr.KindUnauthenticated, "INVALID_REFRESH_TOKEN", "The refresh token is invalid, expired or revoked.")
	ErrRateLimited         = apperr.New(apperr.KindRateLimited, "RATE_LIMITED", "Too many failed logins; try again later.")
	ErrWrongPassword       = apperr.New(apperr.KindBusinessRule, "WRONG_PASSWORD", "The current password is wrong.")
)

// AccountHook runs inside the transaction that creates a user, so that
// what every user must have (a wallet) exists exactly when the user does.
type AccountHook interface {
	OnAccountCreated(ctx context.Context, tx pgx.Tx, u users.User) error
}

// TokenPair is the body of a successful login or refresh.
type TokenPair struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token"`
	RefreshExpiresIn int64  `json:"refresh_expires_in"`
}

// Service implements the auth use cases.
type Service struct {
	db      *postgres.DB
	users   *users.Store
	store   *Store
	hasher  *Hasher
	tokens  *Tokens
	cfg     config.Auth
	topic   string
	hooks   []AccountHook
	metrics *metrics
	log     *zap.Logger
	now     func() time.Time
}

// Options are the collaborators of a Service.
type Options struct {
	DB     *postgres.DB
	Users  *users.Store
	Store  *Store
	Hasher *Hasher
	Tokens *Tokens
	Config config.Auth
	Topic  string // Kafka topic of user events
	Hooks  []AccountHook
	Log    *zap.Logger
}

// NewService returns the service; m may be nil (no metrics).
func NewService(o Options, m *metrics) *Service {
	return &Service{db: o.DB, users: o.Users, store: o.Store, hasher: o.Hasher, tokens: o.Tokens, cfg: o.Config,
		topic: o.Topic, hooks: o.Hooks, metrics: m, log: o.Log, now: time.Now}
}

func (s *Service) validatePassword(field, pw string) *apperr.FieldError {
	n := utf8.RuneCountInString(pw)
	if n < s.cfg.PasswordMinLength || n > s.cfg.PasswordMaxLength {
		return &apperr.FieldError{Field: field, Message: fmt.Sprintf("must be %d to %d characters", s.cfg.PasswordMinLength, s.cfg.PasswordMaxLength)}
	}
	return nil
}

// CreateAccount validates na, then creates in one transaction the user,
// their credentials, whatever the account hooks add (the wallet) and the
// user.registered event. The password is hashed before the transaction
// opens, so no row lock is held during the deliberately slow hash.
func (s *Service) CreateAccount(ctx context.Context, na users.NewAccount) (users.User, error) {
	var fields []apperr.FieldError
	first, fe := users.ValidateName("firstname", na.Firstname)
	if fe != nil {
		fields = append(fields, *fe)
	}
	last, fe := users.ValidateName("lastname", na.Lastname)
	if fe != nil {
		fields = append(fields, *fe)
	}
	email, fe := users.ValidateEmail(na.Email)
	if fe != nil {
		fields = append(fields, *fe)
	}
	if fe := s.validatePassword("password", na.Password); fe != nil {
		fields = append(fields, *fe)
	}
	if !na.Role.Valid() {
		fields = append(fields, apperr.FieldError{Field: "role", Message: "must be user or admin"})
	}
	if len(fields) > 0 {
		return users.User{}, apperr.Validation("The request has invalid fields.", fields...)
	}
	hash, err := s.hasher.Hash(ctx, na.Password)
	if err != nil {
		return users.User{}, err
	}
	var u users.User
	err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		u, err = s.users.Create(ctx, tx, users.NewUser{Firstname: first, Lastname: last, Email: email, Role: na.Role})
		if err != nil {
			return err
		}
		if err := s.store.SetPassword(ctx, tx, u.ID, hash); err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		for _, h := range s.hooks {
			if err := h.OnAccountCreated(ctx, tx, u); err != nil {
				return err
			}
		}
		_, err = outbox.Enqueue(ctx, tx, outbox.Event{
			Topic: s.topic, Key: u.ID.String(), Type: events.TypeUserRegistered, Subject: "users/" + u.ID.String(),
			Data: events.UserRegistered{UserID: u.ID, Email: u.Email, Firstname: u.Firstname, Lastname: u.Lastname,
				AccountNumber: u.AccountNumber, Role: string(u.Role), RegisteredAt: u.CreatedAt},
		})
		return err
	})
	if err != nil {
		return users.User{}, err
	}
	s.metrics.registered(ctx)
	return u, nil
}

// RegisterInput is the body of POST /v1/auth/register.
type RegisterInput struct {
	Firstname       string `json:"firstname"`
	Lastname        string `json:"lastname"`
	Email           string `json:"email"`
	Password        string `json:"password"`
	ConfirmPassword string `json:"confirm_password"`
}

// Register creates a user account with the user role.
func (s *Service) Register(ctx context.Context, in RegisterInput) (users.User, error) {
	if in.Password != in.ConfirmPassword {
		return users.User{}, apperr.Validation("The request has invalid fields.",
			apperr.FieldError{Field: "confirm_password", Message: "must match password"})
	}
	return s.CreateAccount(ctx, users.NewAccount{Firstname: in.Firstname, Lastname: in.Lastname, Email: in.Email,
		Password: in.Password, Role: authn.RoleUser})
}

// Login checks the credentials and starts a session. An unknown email, a
// wrong password and a deactivated user all answer ErrInvalidCredentials
// after one full password verification, so neither the answer nor its
// timing tells which. Failures are counted per email and per client IP;
// over either limit the answer is ErrRateLimited with a Retry-After.
func (s *Service) Login(ctx context.Context, email, password, clientIP string) (TokenPair, error) {
	email = users.NormalizeEmail(email)
	now := s.now()
	since := now.Add(-s.cfg.LoginFailureWindow)
	c, err := s.store.CountFailures(ctx, s.db.Pool, email, clientIP, since)
	if err != nil {
		return TokenPair{}, fmt.Errorf("count failures: %w", err)
	}
	if c.Email >= s.cfg.LoginMaxFailuresPerEmail || c.IP >= s.cfg.LoginMaxFailuresPerIP {
		oldest := c.OldestEmail
		if c.IP >= s.cfg.LoginMaxFailuresPerIP && (oldest.IsZero() || c.OldestIP.Before(oldest) || c.Email < s.cfg.LoginMaxFailuresPerEmail) {
			oldest = c.OldestIP
		}
		e := *ErrRateLimited
		e.RetryAfter = max(oldest.Add(s.cfg.LoginFailureWindow).Sub(now), time.Second)
		s.metrics.login(ctx, "rate_limited")
		return TokenPair{}, &e
	}

	u, err := s.users.GetByEmail(ctx, s.db.Pool, email)
	var hash string
	if err == nil {
		hash, err = s.store.PasswordHash(ctx, s.db.Pool, u.ID)
	}
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		return TokenPair{}, err
	}
	ok, rehash := false, false
	if hash == "" {
		s.hasher.VerifyDummy(ctx, password)
	} else if ok, rehash, err = s.hasher.Verify(ctx, password, hash); err != nil {
		return TokenPair{}, err
	}
	if !ok || !u.Active {
		if err := s.store.RecordFailure(ctx, s.db.Pool, email, clientIP); err != nil {
			return TokenPair{}, fmt.Errorf("record failure: %w", err)
		}
		s.metrics.login(ctx, "invalid_credentials")
		return TokenPair{}, ErrInvalidCredentials
	}

	var newHash string
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, password); err != nil {
			return TokenPair{}, err
		}
	}
	var pair TokenPair
	err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if newHash != "" {
			if err := s.store.SetPassword(ctx, tx, u.ID, newHash); err != nil {
				return err
			}
		}
		if err := s.store.ClearFailures(ctx, tx, email); err != nil {
			return err
		}
		sid, err := s.store.CreateSession(ctx, tx, u.ID)
		if err != nil {
			return err
		}
		pair, err = s.issue(ctx, tx, u, sid)
		return err
	})
	if err != nil {
		return TokenPair{}, err
	}
	s.metrics.login(ctx, "success")
	return pair, nil
}

func (s *Service) issue(ctx context.Context, tx pgx.Tx, u users.User, sessionID uuid.UUID) (TokenPair, error) {
	access, err := s.tokens.Issue(u.ID, u.Role, sessionID)
	if err != nil {
		return TokenPair{}, fmt.Errorf("sign token: %w", err)
	}
	refresh, err := s.store.IssueRefreshToken(ctx, tx, sessionID, s.now().Add(s.cfg.RefreshTTL))
	if err != nil {
		return TokenPair{}, fmt.Errorf("refresh token: %w", err)
	}
	return TokenPair{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(s.tokens.TTL().Seconds()),
		RefreshToken: refresh, RefreshExpiresIn: int64(s.cfg.RefreshTTL.Seconds())}, nil
}

// Refresh rotates a refresh token: the presented token stops working and a
// new pair is issued in the same session. A token that was already rotated
// being presented again means two parties hold it, so the whole session
// (family) is revoked: the thief and the victim both have to log in again.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	var pair TokenPair
	reused := false
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rec, err := s.store.LockRefreshToken(ctx, tx, token)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrInvalidRefreshToken
		}
		if err != nil {
			return err
		}
		if rec.Revoked {
			return ErrInvalidRefreshToken
		}
		if rec.Used {
			reused = true
			return s.store.RevokeSession(ctx, tx, rec.SessionID, "refresh token reuse")
		}
		if !rec.ExpiresAt.After(s.now()) {
			return ErrInvalidRefreshToken
		}
		u, err := s.users.Get(ctx, tx, rec.UserID)
		if err != nil {
			return err
		}
		if !u.Active {
			return ErrInvalidRefreshToken
		}
		if err := s.store.MarkRefreshTokenUsed(ctx, tx, rec.ID); err != nil {
			return err
		}
		pair, err = s.issue(ctx, tx, u, rec.SessionID)
		return err
	})
	switch {
	case reused && err == nil:
		s.log.Warn("refresh token reuse detected; session revoked")
		s.metrics.refresh(ctx, "reused")
		return TokenPair{}, ErrInvalidRefreshToken
	case err != nil:
		if errors.Is(err, ErrInvalidRefreshToken) {
			s.metrics.refresh(ctx, "invalid")
		}
		return TokenPair{}, err
	}
	s.metrics.refresh(ctx, "success")
	return pair, nil
}

// Logout revokes the session of the refresh token, which must belong to
// the caller. Logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, caller authn.Principal, token string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rec, err := s.store.LockRefreshToken(ctx, tx, token)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrInvalidRefreshToken
		}
		if err != nil {
			return err
		}
		if rec.UserID != caller.UserID {
			return ErrInvalidRefreshToken
		}
		return s.store.RevokeSession(ctx, tx, rec.SessionID, "logout")
	})
}

// ChangePassword replaces the caller's password after checking the current
// one, revokes every other session of the caller and enqueues
// user.password_changed, all in one transaction.
func (s *Service) ChangePassword(ctx context.Context, caller authn.Principal, current, next string) error {
	if fe := s.validatePassword("new_password", next); fe != nil {
		return apperr.Validation("The request has invalid fields.", *fe)
	}
	u, err := s.users.Get(ctx, s.db.Pool, caller.UserID)
	if err != nil {
		return err
	}
	hash, err := s.store.PasswordHash(ctx, s.db.Pool, u.ID)
	if err != nil {
		return err
	}
	ok := false
	if hash != "" {
		if ok, _, err = s.hasher.Verify(ctx, current, hash); err != nil {
			return err
		}
	}
	if !ok {
		return ErrWrongPassword
	}
	newHash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := s.store.SetPassword(ctx, tx, u.ID, newHash); err != nil {
			return err
		}
		if err := s.store.RevokeUserSessions(ctx, tx, u.ID, caller.SessionID, "password changed"); err != nil {
			return err
		}
		_, err := outbox.Enqueue(ctx, tx, outbox.Event{
			Topic: s.topic, Key: u.ID.String(), Type: events.TypePasswordChanged, Subject: "users/" + u.ID.String(),
			Data: events.PasswordChanged{UserID: u.ID, Email: u.Email, Firstname: u.Firstname, ChangedAt: s.now().UTC()},
		})
		return err
	})
}

// RevokeUserSessions ends every session of the user; it implements
// users.SessionRevoker for deactivation.
func (s *Service) RevokeUserSessions(ctx context.Context, tx pgx.Tx, userID uuid.UUID, reason string) error {
	return s.store.RevokeUserSessions(ctx, tx, userID, uuid.Nil, reason)
}

// Authenticate verifies a bearer token and returns the caller. Beyond the
// token itself it checks, on every request, that the session was not
// revoked (logout, password change, theft detection) and the user is still
// active, so revocation takes effect at once rather than at token expiry.
func (s *Service) Authenticate(ctx context.Context, raw string) (authn.Principal, error) {
	c, err := s.tokens.Verify(raw)
	if err != nil {
		return authn.Principal{}, apperr.ErrUnauthenticated.Wrap(err)
	}
	uid, err1 := uuid.Parse(c.Subject)
	sid, err2 := uuid.Parse(c.SessionID)
	if err1 != nil || err2 != nil {
		return authn.Principal{}, apperr.ErrUnauthenticated
	}
	active, err := s.store.SessionActive(ctx, s.db.Pool, sid)
	if err != nil {
		return authn.Principal{}, err
	}
	if !active {
		return authn.Principal{}, apperr.ErrUnauthenticated.With("The session has ended; log in again.")
	}
	u, err := s.users.Get(ctx, s.db.Pool, uid)
	if errors.Is(err, users.ErrNotFound) || (err == nil && !u.Active) {
		return authn.Principal{}, apperr.ErrUnauthenticated.With("The account is not active.")
	}
	if err != nil {
		return authn.Principal{}, err
	}
	// The role comes from the database, not the token, so a demotion takes
	// effect at once.
	return authn.Principal{UserID: u.ID, Role: u.Role, SessionID: sid}, nil
}

// Me returns the caller's user record.
func (s *Service) Me(ctx context.Context, caller authn.Principal) (users.User, error) {
	return s.users.Get(ctx, s.db.Pool, caller.UserID)
}

// EnsureAdmin creates an administrator with the email unless a user has
// it already. It backs PAYGATE_BOOTSTRAP_ADMIN_EMAIL and `paygate users
// create-admin`. It reports whether it created one.
func (s *Service) EnsureAdmin(ctx context.Context, email, password, firstname, lastname string) (bool, error) {
	_, err := s.users.GetByEmail(ctx, s.db.Pool, email)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, users.ErrNotFound) {
		return false, err
	}
	_, err = s.CreateAccount(ctx, users.NewAccount{Firstname: firstname, Lastname: lastname, Email: email, Password: password, Role: authn.RoleAdmin})
	if errors.Is(err, users.ErrEmailTaken) {
		return false, nil // created concurrently by another replica
	}
	return err == nil, err
}
