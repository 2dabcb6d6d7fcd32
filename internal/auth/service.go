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
	ErrInvalidCredentials   = apperr.New(apperr.KindUnauthenticated, "INVALID_CREDENTIALS", "The email or password is wrong.")
	ErrInvalidRefreshToken  = apperr.New(apperr.KindUnauthenticated, "INVALID_REFRESH_TOKEN", "The refresh token is invalid, expired or revoked.")
	ErrRateLimited          = apperr.New(apperr.KindRateLimited, "RATE_LIMITED", "Too many failed logins; try again later.")
	ErrWrongPassword        = apperr.New(apperr.KindBusinessRule, "WRONG_PASSWORD", "The current password is wrong.")
	ErrTooManyRegistrations = apperr.New(apperr.KindRateLimited, "RATE_LIMITED", "Too many registrations from this address; try again later.")
	// ErrBusy sheds a request that found the password hashing queue full
	// or waited too long for a slot; it carries a Retry-After.
	ErrBusy = apperr.New(apperr.KindUnavailable, "UNAVAILABLE", "Too many password checks at once; try again shortly.")
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
	return s.createAccount(ctx, na, nil, nil)
}

// createAccount is CreateAccount with two extra steps: before runs after
// validation and before the hash (a throttle), inTx inside the
// transaction after the user was created. Either may be nil. When the
// hash does not run (shed or cancelled), the undo that before returned
// (if any) gives its reservation back.
func (s *Service) createAccount(ctx context.Context, na users.NewAccount, before func(context.Context) (undo func(), err error),
	inTx func(context.Context, pgx.Tx, users.User) error) (users.User, error) {
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
	undo := func() {}
	if before != nil {
		u, err := before(ctx)
		if err != nil {
			return users.User{}, err
		}
		if u != nil {
			undo = u
		}
	}
	hash, err := s.hasher.Hash(ctx, na.Password)
	if err != nil {
		undo()
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
		if inTx != nil {
			if err := inTx(ctx, tx, u); err != nil {
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

// Register creates a user account with the user role. Registrations are
// counted per client IP (PAYGATE_REGISTER_MAX_PER_IP over
// PAYGATE_REGISTER_WINDOW) once the input is valid and before the
// password is hashed; over the limit the answer is ErrTooManyRegistrations
// with a Retry-After.
func (s *Service) Register(ctx context.Context, in RegisterInput, clientIP string) (users.User, error) {
	if in.Password != in.ConfirmPassword {
		return users.User{}, apperr.Validation("The request has invalid fields.",
			apperr.FieldError{Field: "confirm_password", Message: "must match password"})
	}
	return s.createAccount(ctx, users.NewAccount{Firstname: in.Firstname, Lastname: in.Lastname, Email: in.Email,
		Password: in.Password, Role: authn.RoleUser}, func(ctx context.Context) (func(), error) {
		if err := s.hasher.Admit(true); err != nil {
			return nil, err
		}
		return s.reserveRegistration(ctx, clientIP)
	}, nil)
}

// reserveRegistration counts a registration from the client IP, or
// refuses it over the limit; the returned undo gives the count back for
// a registration whose password was never hashed (shed by the queue), so
// a client told to retry does not use up its allowance.
func (s *Service) reserveRegistration(ctx context.Context, clientIP string) (undo func(), err error) {
	now := s.now()
	var id int64
	var oldest time.Time
	err = s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		id, oldest, err = s.store.ReserveRegistration(ctx, tx, clientIP, now.Add(-s.cfg.RegisterWindow), s.cfg.RegisterMaxPerIP)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reserve registration: %w", err)
	}
	if id != 0 {
		return func() {
			if err := s.store.ReleaseRegistration(context.WithoutCancel(ctx), s.db.Pool, id); err != nil {
				s.log.Warn("releasing a registration attempt failed", zap.Error(err))
			}
		}, nil
	}
	s.metrics.throttled(ctx, OpRegister, ScopeIP)
	e := ErrTooManyRegistrations.With(ErrTooManyRegistrations.Detail)
	e.RetryAfter = max(oldest.Add(s.cfg.RegisterWindow).Sub(now), time.Second)
	return nil, e
}

// reserveCheck reserves one password check of the email's password from
// the client IP (Store.ReserveAttempt): it returns the reservation, or
// ErrRateLimited with a Retry-After when the email or the IP is over its
// limit of failures within the window. Logins and password changes share
// the count.
func (s *Service) reserveCheck(ctx context.Context, op, email, clientIP string) (int64, error) {
	now := s.now()
	var id int64
	var c failureCounts
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		id, c, err = s.store.ReserveAttempt(ctx, tx, email, clientIP, now.Add(-s.cfg.LoginFailureWindow),
			s.cfg.LoginMaxFailuresPerEmail, s.cfg.LoginMaxFailuresPerIP)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reserve attempt: %w", err)
	}
	if id != 0 {
		return id, nil
	}
	// The wait is until the limit that refuses frees a slot; when both
	// do, until the later of the two.
	var wait time.Duration
	scope := ScopeEmail
	if c.Email >= s.cfg.LoginMaxFailuresPerEmail {
		wait = c.OldestEmail.Add(s.cfg.LoginFailureWindow).Sub(now)
	}
	if c.IP >= s.cfg.LoginMaxFailuresPerIP {
		if w := c.OldestIP.Add(s.cfg.LoginFailureWindow).Sub(now); w > wait {
			wait, scope = w, ScopeIP
		}
	}
	s.metrics.throttled(ctx, op, scope)
	e := ErrRateLimited.With(ErrRateLimited.Detail)
	e.RetryAfter = max(wait, time.Second)
	return 0, e
}

// releaseCheck gives a reserved check back when the password was not
// checked after all (the hash was shed, the request cancelled, a read
// failed), so that only real checks count.
func (s *Service) releaseCheck(ctx context.Context, id int64) {
	if err := s.store.ReleaseAttempt(context.WithoutCancel(ctx), s.db.Pool, id); err != nil {
		s.log.Warn("releasing a reserved login attempt failed", zap.Error(err))
	}
}

// Login checks the credentials and starts a session. An unknown email, a
// wrong password and a deactivated user all answer ErrInvalidCredentials
// after one full password verification, so neither the answer nor its
// timing tells which. Each check is reserved before the hash runs
// (reserveCheck): over the limit of failures per email or per client IP
// the answer is ErrRateLimited with a Retry-After, even for the right
// password, and concurrent guesses cannot overrun the limit. A success
// clears the email's failures.
func (s *Service) Login(ctx context.Context, email, password, clientIP string) (TokenPair, error) {
	email = users.NormalizeEmail(email)
	if err := s.hasher.Admit(false); err != nil {
		s.metrics.login(ctx, "shed")
		return TokenPair{}, err
	}
	reservation, err := s.reserveCheck(ctx, OpLogin, email, clientIP)
	if err != nil {
		if errors.Is(err, ErrRateLimited) {
			s.metrics.login(ctx, "rate_limited")
		}
		return TokenPair{}, err
	}
	u, ok, rehash, err := s.checkLogin(ctx, email, password)
	if err != nil {
		s.releaseCheck(ctx, reservation)
		if errors.Is(err, ErrBusy) {
			s.metrics.login(ctx, "shed")
		}
		return TokenPair{}, err
	}
	if !ok || !u.Active {
		// The reservation stays: it is the recorded failure.
		s.metrics.login(ctx, "invalid_credentials")
		return TokenPair{}, ErrInvalidCredentials
	}

	var newHash string
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, password); err != nil {
			newHash = "" // the upgrade waits for another login
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
		created := s.now()
		sid, err := s.store.CreateSession(ctx, tx, u.ID, u.Role, created)
		if err != nil {
			return err
		}
		pair, _, err = s.issue(ctx, tx, u, sid, created)
		return err
	})
	if err != nil {
		return TokenPair{}, err
	}
	s.metrics.login(ctx, "success")
	return pair, nil
}

// checkLogin verifies the password of the email's user, or a dummy hash
// when there is none, so every login costs one verification.
func (s *Service) checkLogin(ctx context.Context, email, password string) (u users.User, ok, rehash bool, err error) {
	var hash string
	u, err = s.users.GetByEmail(ctx, s.db.Pool, email)
	if err == nil {
		hash, err = s.store.PasswordHash(ctx, s.db.Pool, u.ID)
	}
	if err != nil && !errors.Is(err, users.ErrNotFound) {
		return u, false, false, err
	}
	if hash == "" {
		return u, false, false, s.hasher.VerifyDummy(ctx, password)
	}
	ok, rehash, err = s.hasher.Verify(ctx, password, hash)
	return u, ok, rehash, err
}

// issue signs an access token and stores a new refresh token of the
// session started at sessionCreated; it returns the pair and the new
// refresh token's id. The refresh token never outlives the session's
// absolute lifetime (PAYGATE_SESSION_MAX_LIFETIME).
func (s *Service) issue(ctx context.Context, tx pgx.Tx, u users.User, sessionID uuid.UUID, sessionCreated time.Time) (TokenPair, uuid.UUID, error) {
	access, err := s.tokens.Issue(u.ID, u.Role, sessionID)
	if err != nil {
		return TokenPair{}, uuid.Nil, fmt.Errorf("sign token: %w", err)
	}
	now := s.now()
	expires := now.Add(s.cfg.RefreshTTL)
	if end := sessionCreated.Add(s.cfg.SessionMaxLifetime); end.Before(expires) {
		expires = end
	}
	refresh, id, err := s.store.IssueRefreshToken(ctx, tx, sessionID, expires)
	if err != nil {
		return TokenPair{}, uuid.Nil, fmt.Errorf("refresh token: %w", err)
	}
	return TokenPair{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(s.tokens.TTL().Seconds()),
		RefreshToken: refresh, RefreshExpiresIn: int64(expires.Sub(now).Round(time.Second).Seconds())}, id, nil
}

// Refresh rotates a refresh token: the presented token stops working and a
// new pair is issued in the same session. A token that was already rotated
// being presented again means two parties hold it, so the whole session
// (family) is revoked: the thief and the victim both have to log in again.
//
// One exception: a client whose refresh response was lost retries with the
// same token. Within PAYGATE_REFRESH_REUSE_GRACE of the rotation, and only
// while the successor the lost response carried was never used, the retry
// gets a fresh pair and that successor is revoked, so the family keeps a
// single live token; that successor presented later means someone else
// had it after all, and revokes the session like any reuse. A session
// past its absolute lifetime
// (PAYGATE_SESSION_MAX_LIFETIME) refreshes no more.
func (s *Service) Refresh(ctx context.Context, token string) (TokenPair, error) {
	var pair TokenPair
	reused, retried := false, false
	err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		reused, retried = false, false
		rec, err := s.store.LockRefreshToken(ctx, tx, token, s.cfg.RefreshReuseGrace)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrInvalidRefreshToken
		}
		if err != nil {
			return err
		}
		if rec.Revoked || !rec.SessionCreated.Add(s.cfg.SessionMaxLifetime).After(s.now()) {
			return ErrInvalidRefreshToken
		}
		if rec.TokenRevoked {
			// A successor superseded by a retry was never delivered: whoever
			// presents it got it elsewhere. Theft, as for reuse.
			reused = true
			return s.store.RevokeSession(ctx, tx, rec.SessionID, "superseded refresh token presented")
		}
		if rec.Used {
			if rec.WithinGrace && rec.ReplacedBy != uuid.Nil {
				superseded, err := s.store.RevokeUnusedToken(ctx, tx, rec.ReplacedBy)
				if err != nil {
					return err
				}
				retried = superseded
			}
			if !retried {
				reused = true
				return s.store.RevokeSession(ctx, tx, rec.SessionID, "refresh token reuse")
			}
		} else if !rec.ExpiresAt.After(s.now()) {
			return ErrInvalidRefreshToken
		}
		u, err := s.users.Get(ctx, tx, rec.UserID)
		if err != nil {
			return err
		}
		if !u.Active {
			return ErrInvalidRefreshToken
		}
		var next uuid.UUID
		pair, next, err = s.issue(ctx, tx, u, rec.SessionID, rec.SessionCreated)
		if err != nil {
			return err
		}
		return s.store.MarkRefreshTokenUsed(ctx, tx, rec.ID, next)
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
	case retried:
		s.metrics.refresh(ctx, "retried")
	default:
		s.metrics.refresh(ctx, "success")
	}
	return pair, nil
}

// Logout revokes the session of the refresh token, which must belong to
// the caller. Logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, caller authn.Principal, token string) error {
	return s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		rec, err := s.store.LockRefreshToken(ctx, tx, token, 0)
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
// user.password_changed, all in one transaction. The check of the current
// password is throttled and counted with the logins of the caller's email
// and the client IP (reserveCheck): a stolen access token does not make a
// password oracle.
func (s *Service) ChangePassword(ctx context.Context, caller authn.Principal, current, next, clientIP string) error {
	if fe := s.validatePassword("new_password", next); fe != nil {
		return apperr.Validation("The request has invalid fields.", *fe)
	}
	u, err := s.users.Get(ctx, s.db.Pool, caller.UserID)
	if err != nil {
		return err
	}
	reservation, err := s.reserveCheck(ctx, OpPasswordChange, u.Email, clientIP)
	if err != nil {
		return err
	}
	hash, err := s.store.PasswordHash(ctx, s.db.Pool, u.ID)
	ok := false
	if err == nil {
		if hash == "" {
			err = s.hasher.VerifyDummy(ctx, current)
		} else {
			ok, _, err = s.hasher.Verify(ctx, current, hash)
		}
	}
	if err != nil {
		s.releaseCheck(ctx, reservation)
		return err
	}
	if !ok {
		return ErrWrongPassword // the reservation stays as the failure
	}
	newHash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		s.releaseCheck(ctx, reservation)
		return err
	}
	return s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		if err := s.store.SetPassword(ctx, tx, u.ID, newHash); err != nil {
			return err
		}
		if err := s.store.ClearFailures(ctx, tx, u.Email); err != nil {
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

// PruneSessions deletes ended sessions and their refresh tokens (see
// Store.PruneSessions), in batches, and returns how many it deleted. The
// periodic job runs it hourly.
func (s *Service) PruneSessions(ctx context.Context) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.db.InTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			n, err = s.store.PruneSessions(ctx, tx, s.cfg.SessionMaxLifetime, 1000)
			return err
		})
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
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
	st, err := s.store.Session(ctx, s.db.Pool, sid, s.cfg.SessionMaxLifetime)
	if err != nil {
		if postgres.Unavailable(err) {
			return authn.Principal{}, postgres.Unreachable(err)
		}
		return authn.Principal{}, err
	}
	if !st.Active || st.UserID != uid {
		return authn.Principal{}, apperr.ErrUnauthenticated.With("The session has ended; log in again.")
	}
	// One read of the session answers for the user too: every change of a
	// user's role or active flag revokes their sessions in its own
	// transaction (internal/users), so an active session's role is the
	// user's current one and its user is active. Only a session begun
	// before sessions carried a role is checked against the user.
	if st.Role != "" {
		return authn.Principal{UserID: uid, Role: st.Role, SessionID: sid}, nil
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
// it already. It backs `paygate users create-admin`. It reports whether
// it created one.
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

// errBootstrapped rolls back the creation of a bootstrap administrator
// that another replica created first.
var errBootstrapped = errors.New("bootstrap administrator exists")

// EnsureBootstrapAdmin backs PAYGATE_BOOTSTRAP_ADMIN_EMAIL: it creates the
// administrator once in the life of the database, and records its user id
// as the bootstrap administrator in the same transaction. From then on the
// record, not the email, says it exists: an administrator who changes the
// bootstrap account's email does not bring back a second administrator
// with the bootstrap password at the next start. A database from before
// the record, whose user with the email exists, has that user adopted as
// the bootstrap administrator. It reports whether it created one.
func (s *Service) EnsureBootstrapAdmin(ctx context.Context, email, password, firstname, lastname string) (bool, error) {
	exists, err := s.store.BootstrapAdminRecorded(ctx, s.db.Pool)
	if err != nil || exists {
		return false, err
	}
	u, err := s.users.GetByEmail(ctx, s.db.Pool, email)
	if err == nil {
		_, err := s.store.RecordBootstrapAdmin(ctx, s.db.Pool, u.ID)
		return false, err
	}
	if !errors.Is(err, users.ErrNotFound) {
		return false, err
	}
	_, err = s.createAccount(ctx, users.NewAccount{Firstname: firstname, Lastname: lastname, Email: email, Password: password, Role: authn.RoleAdmin},
		nil, func(ctx context.Context, tx pgx.Tx, u users.User) error {
			recorded, err := s.store.RecordBootstrapAdmin(ctx, tx, u.ID)
			if err == nil && !recorded {
				return errBootstrapped
			}
			return err
		})
	if errors.Is(err, users.ErrEmailTaken) || errors.Is(err, errBootstrapped) {
		return false, nil // created concurrently by another replica
	}
	return err == nil, err
}
