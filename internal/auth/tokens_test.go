package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
)

func newTestTokens(t *testing.T) *Tokens {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := NewTokens(config.Auth{JWTPrivateKey: base64.StdEncoding.EncodeToString(priv.Seed()), JWTKeyID: "k1",
		JWTIssuer: "paygate", JWTAudience: "paygate-api", AccessTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestVerifiedTokensAreRememberedButStillExpire: a verified token is
// remembered, yet every use repeats the time checks, so a remembered
// token stops working when it expires, exactly as an unremembered one.
func TestVerifiedTokensAreRememberedButStillExpire(t *testing.T) {
	t.Parallel()
	tok := newTestTokens(t)
	start := time.Now()
	now := start
	tok.now = func() time.Time { return now }
	user, sid := uuid.New(), uuid.New()
	raw, err := tok.Issue(user, authn.RoleUser, sid)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c, err := tok.Verify(raw)
		if err != nil || c.Subject != user.String() || c.SessionID != sid.String() || c.Role != authn.RoleUser {
			t.Fatalf("use %d: %+v, %v", i, c, err)
		}
	}
	if len(tok.verified) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(tok.verified))
	}
	// Within the 5 s leeway past expiry it still works; past it, not.
	now = start.Add(time.Minute + 4*time.Second)
	if _, err := tok.Verify(raw); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	now = start.Add(time.Minute + 6*time.Second)
	if _, err := tok.Verify(raw); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired remembered token was accepted (%v)", err)
	}
	if len(tok.verified) != 0 {
		t.Fatal("an expired token stayed remembered")
	}
	// Before its issue time (a clock far behind), refused too.
	now = start.Add(-time.Minute)
	if _, err := tok.Verify(raw); err == nil {
		t.Fatal("a token used a minute before it was issued was accepted")
	}
}

// TestOnlyGenuineTokensAreRemembered: a token with a forged signature or
// another issuer's key is refused and leaves nothing behind, even after
// the genuine token it was made from was verified.
func TestOnlyGenuineTokensAreRemembered(t *testing.T) {
	t.Parallel()
	tok, other := newTestTokens(t), newTestTokens(t)
	raw, err := tok.Issue(uuid.New(), authn.RoleUser, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.Verify(raw); err != nil {
		t.Fatal(err)
	}
	// The payload of an admin token with the genuine token's signature.
	admin, err := tok.Issue(uuid.New(), authn.RoleAdmin, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	forged := admin[:strings.LastIndexByte(admin, '.')] + raw[strings.LastIndexByte(raw, '.'):]
	foreign, err := other.Issue(uuid.New(), authn.RoleAdmin, uuid.New())
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{"forged signature": forged, "another key": foreign} {
		for range 2 {
			if _, err := tok.Verify(bad); err == nil {
				t.Fatalf("%s accepted", name)
			}
		}
	}
	if len(tok.verified) != 1 {
		t.Fatalf("%d tokens remembered, want only the genuine one", len(tok.verified))
	}
}

func TestRememberedTokensAreBounded(t *testing.T) {
	t.Parallel()
	tok := newTestTokens(t)
	tok.cacheSize = 16
	var last string
	for range 40 {
		raw, err := tok.Issue(uuid.New(), authn.RoleUser, uuid.New())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tok.Verify(raw); err != nil {
			t.Fatal(err)
		}
		last = raw
	}
	if n := len(tok.verified); n != 16 {
		t.Fatalf("%d tokens remembered, want the bound, 16", n)
	}
	if _, ok := tok.verified[last]; !ok {
		t.Fatal("the token verified last was not remembered")
	}
}
