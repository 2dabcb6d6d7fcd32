package auth

import (
	"crypto/ed25519"
	"errors"
	"fmt"
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
	now      func() time.Time
}

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
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(cfg.JWTIssuer),
		jwt.WithAudience(cfg.JWTAudience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
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
