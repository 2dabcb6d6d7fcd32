package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
)

// Claims are the claims of an access token.
type Claims struct {
	jwt.RegisteredClaims
	Role      authn.Role `json:"role"`
	SessionID string     `json:"sid"`
}

// Tokens issues and verifies access tokens: EdDSA (Ed25519) JWTs with a
// kid header. Verification accepts the signing key and any configured
// previous keys, so keys rotate without logging everyone out.
type Tokens struct {
	signKey  ed25519.PrivateKey
	kid      string
	keys     map[string]ed25519.PublicKey
	issuer   string
	audience string
	ttl      time.Duration
	parser   *jwt.Parser
	// validator repeats the parser's claim checks (issuer, audience,
	// validity window) for a token found in verified.
	validator *jwt.Validator
	now       func() time.Time

	// verified remembers the claims of tokens whose signature checked out,
	// so that a client's every request does not pay for an Ed25519
	// verification again (7% of the gateway's CPU in the transfer
	// benchmark). It is exact, not a trust shortcut: a token is the same
	// bytes the signature covered, the keys are fixed for the process's
	// life, and the time-dependent checks run on every use. Revocation is
	// not a property of the token and is checked per request elsewhere.
	mu        sync.Mutex
	verified  map[string]Claims
	cacheSize int // verifiedCacheSize; a test may lower it
}

// verifiedCacheSize bounds the verified tokens remembered: a few MiB,
// about one token per client active within a token's lifetime.
const verifiedCacheSize = 8192

// NewTokens builds the issuer/verifier from configuration.
func NewTokens(cfg config.Auth) (*Tokens, error) {
	priv, err := config.ParseEd25519PrivateKey(cfg.JWTPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("PAYGATE_JWT_PRIVATE_KEY %w", err)
	}
	keys, err := config.ParseVerifyKeys(cfg.JWTVerifyKeys)
	if err != nil {
		return nil, fmt.Errorf("PAYGATE_JWT_VERIFY_KEYS: %w", err)
	}
	keys[cfg.JWTKeyID] = priv.Public().(ed25519.PublicKey)
	t := &Tokens{signKey: priv, kid: cfg.JWTKeyID, keys: keys, issuer: cfg.JWTIssuer, audience: cfg.JWTAudience, ttl: cfg.AccessTTL, now: time.Now}
	// Only EdDSA is accepted: "none", HMAC (a classic forgery uses the
	// public key as an HMAC secret) and RSA tokens are refused before any
	// key is looked at.
	claimChecks := []jwt.ParserOption{
		jwt.WithIssuer(cfg.JWTIssuer),
		jwt.WithAudience(cfg.JWTAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5 * time.Second),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	}
	t.parser = jwt.NewParser(append([]jwt.ParserOption{jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()})}, claimChecks...)...)
	t.validator = jwt.NewValidator(claimChecks...)
	t.verified, t.cacheSize = make(map[string]Claims), verifiedCacheSize
	return t, nil
}

// TTL returns the lifetime of access tokens.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// Issue signs an access token for the user's session.
func (t *Tokens) Issue(userID uuid.UUID, role authn.Role, sessionID uuid.UUID) (string, error) {
	now := t.now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   userID.String(),
			Audience:  jwt.ClaimStrings{t.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        uuid.NewString(),
		},
		Role:      role,
		SessionID: sessionID.String(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = t.kid
	return tok.SignedString(t.signKey)
}

var errUnknownKey = errors.New("unknown key id")

// Verify checks the token's signature, algorithm, key id, issuer,
// audience and validity window, and returns its claims.
func (t *Tokens) Verify(raw string) (Claims, error) {
	t.mu.Lock()
	c, ok := t.verified[raw]
	t.mu.Unlock()
	if ok {
		if err := t.validator.Validate(&c); err != nil {
			t.mu.Lock()
			delete(t.verified, raw)
			t.mu.Unlock()
			return Claims{}, err
		}
		return c, nil
	}
	c, err := t.verify(raw)
	if err != nil {
		return Claims{}, err
	}
	t.mu.Lock()
	if len(t.verified) >= t.cacheSize {
		// Forget one at random (map order): a full cache costs a
		// verification now and then, never memory.
		for k := range t.verified {
			delete(t.verified, k)
			break
		}
	}
	t.verified[raw] = c
	t.mu.Unlock()
	return c, nil
}

// verify parses raw and checks its signature and claims.
func (t *Tokens) verify(raw string) (Claims, error) {
	var c Claims
	_, err := t.parser.ParseWithClaims(raw, &c, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		key, ok := t.keys[kid]
		if !ok {
			return nil, errUnknownKey
		}
		return key, nil
	})
	if err != nil {
		return Claims{}, err
	}
	if !c.Role.Valid() {
		return Claims{}, errors.New("invalid role claim")
	}
	return c, nil
}
