package auth_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/users"
)

func register(t *testing.T, e *apptest.Env, body map[string]any) *apptest.Response {
	t.Helper()
	return e.Post(t, "/v1/auth/register", "", body)
}

func regBody(email string) map[string]any {
	return map[string]any{"firstname": "Ada", "lastname": "Lovelace", "email": email, "password": "correct-horse", "confirm_password": "correct-horse"}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	resp := register(t, e, regBody("  Ada.Lovelace@Example.COM "))
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	m := resp.Map(t)
	for _, k := range []string{"id", "firstname", "lastname", "email", "account_number", "role", "created_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("response lacks %s: %s", k, resp.Body)
		}
	}
	for k := range m {
		if regexp.MustCompile(`(?i)pass|hash`).MatchString(k) {
			t.Errorf("response exposes %s", k)
		}
	}
	if m["email"] != "ada.lovelace@example.com" || m["role"] != "user" {
		t.Fatalf("email/role = %v/%v", m["email"], m["role"])
	}
	if !users.ValidAccountNumber(m["account_number"].(string)) {
		t.Fatalf("account number %v is not Luhn-valid", m["account_number"])
	}
	if _, err := time.Parse(time.RFC3339, m["created_at"].(string)); err != nil {
		t.Fatalf("created_at: %v", err)
	}

	// The registration event was written in the same transaction.
	var n int
	if err := e.Pool.QueryRow(context.Background(),
		"SELECT count(*) FROM outbox WHERE event_type = 'paygate.user.registered' AND event_key = $1", m["id"]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("user.registered events = %d (%v)", n, err)
	}

	// Duplicate email, whatever its case.
	dup := register(t, e, regBody("ADA.LOVELACE@example.com"))
	if dup.Status != http.StatusConflict || dup.Code() != "EMAIL_TAKEN" {
		t.Fatalf("duplicate: %d %s", dup.Status, dup.Body)
	}
}

func TestRegisterValidation(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	cases := []struct {
		name  string
		mut   func(m map[string]any)
		field string
	}{
		{"short password", func(m map[string]any) { m["password"], m["confirm_password"] = "short", "short" }, "password"},
		{"long password", func(m map[string]any) {
			p := strings.Repeat("x", 129)
			m["password"], m["confirm_password"] = p, p
		}, "password"},
		{"confirm mismatch", func(m map[string]any) { m["confirm_password"] = "something-else" }, "confirm_password"},
		{"bad email", func(m map[string]any) { m["email"] = "not-an-email" }, "email"},
		{"empty firstname", func(m map[string]any) { m["firstname"] = "  " }, "firstname"},
		{"long lastname", func(m map[string]any) {
			m["lastname"] = strings.Repeat("y", 101)
		}, "lastname"},
		{"role (mass assignment)", func(m map[string]any) { m["role"] = "admin" }, "role"},
		{"balance (mass assignment)", func(m map[string]any) { m["balance"] = 1000000 }, "balance"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := regBody("v" + strconv.Itoa(i) + "@example.com")
			c.mut(body)
			resp := register(t, e, body)
			if resp.Status != http.StatusBadRequest || resp.Code() != "VALIDATION_FAILED" {
				t.Fatalf("got %d %s", resp.Status, resp.Body)
			}
			var p struct {
				Errors []struct{ Field string } `json:"errors"`
			}
			resp.JSON(t, &p)
			if !slices.ContainsFunc(p.Errors, func(f struct{ Field string }) bool { return f.Field == c.field }) {
				t.Fatalf("errors %s do not name %s", resp.Body, c.field)
			}
		})
	}
	var n int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE email LIKE 'v%@example.com'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d users written by invalid registrations (%v)", n, err)
	}
}

func TestConcurrentDoubleRegisterExactlyOneWins(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = register(t, e, regBody("race@example.com")).Status })
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
			conflicts++
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Fatalf("codes %v: want one 201 and %d 409", codes, n-1)
	}
	// The losers left nothing behind: one user, one wallet, one event.
	var users, wallets, events int
	if err := e.Pool.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM users WHERE email = 'race@example.com'),
       (SELECT count(*) FROM ledger_accounts a JOIN users u ON u.id = a.owner_user_id
         WHERE a.kind = 'wallet' AND u.email = 'race@example.com'),
       (SELECT count(*) FROM outbox o JOIN users u ON o.event_key = u.id::text
         WHERE o.event_type = 'paygate.user.registered' AND u.email = 'race@example.com')`).Scan(&users, &wallets, &events); err != nil {
		t.Fatal(err)
	}
	if users != 1 || wallets != 1 || events != 1 {
		t.Fatalf("after %d racing registrations: %d users, %d wallets, %d registration events; want 1 each", n, users, wallets, events)
	}
	// And nothing with another owner: the only wallets are the bootstrap
	// administrator's and the winner's, the only events theirs.
	if err := e.Pool.QueryRow(context.Background(), `
SELECT (SELECT count(*) FROM ledger_accounts WHERE kind = 'wallet'),
       (SELECT count(*) FROM outbox WHERE event_type = 'paygate.user.registered')`).Scan(&wallets, &events); err != nil {
		t.Fatal(err)
	}
	if wallets != 2 || events != 2 {
		t.Fatalf("%d wallets and %d registration events in all, want 2 each (the administrator's and the winner's)", wallets, events)
	}
}

func TestLoginAnswersAndTokens(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	resp := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password})
	m := resp.Map(t)
	if resp.Status != 200 || m["token_type"] != "Bearer" || m["expires_in"] != float64(900) || m["refresh_expires_in"] != float64(30*24*3600) {
		t.Fatalf("login: %d %s", resp.Status, resp.Body)
	}
	me := e.Get(t, "/v1/auth/me", m["access_token"].(string))
	if me.Status != 200 || me.Map(t)["id"] != u.ID {
		t.Fatalf("me: %d %s", me.Status, me.Body)
	}

	wrong := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": "wrong-password"})
	unknown := e.Post(t, "/v1/auth/login", "", map[string]string{"email": "nobody@example.com", "password": "wrong-password"})
	if wrong.Status != 401 || unknown.Status != 401 || wrong.Code() != unknown.Code() {
		t.Fatalf("wrong: %d %s; unknown: %d %s", wrong.Status, wrong.Body, unknown.Status, unknown.Body)
	}
	strip := regexp.MustCompile(`"(request_id|instance)":"[^"]*"`)
	if string(strip.ReplaceAll(wrong.Body, nil)) != string(strip.ReplaceAll(unknown.Body, nil)) {
		t.Fatalf("bodies differ:\n%s\n%s", wrong.Body, unknown.Body)
	}

	// Missing fields are a 400 that names each of them.
	for _, c := range []struct {
		body map[string]string
		want []string
	}{
		{map[string]string{}, []string{"email", "password"}},
		{map[string]string{"email": u.Email}, []string{"password"}},
		{map[string]string{"password": u.Password}, []string{"email"}},
	} {
		r := e.Post(t, "/v1/auth/login", "", c.body)
		var p struct {
			Code   string `json:"code"`
			Errors []struct {
				Field string `json:"field"`
			} `json:"errors"`
		}
		r.JSON(t, &p)
		var fields []string
		for _, fe := range p.Errors {
			fields = append(fields, fe.Field)
		}
		if r.Status != 400 || p.Code != "VALIDATION_FAILED" || strings.Join(fields, ",") != strings.Join(c.want, ",") {
			t.Fatalf("login with %v: %d %s; want fields %v", c.body, r.Status, r.Body, c.want)
		}
	}
}

// TestUnknownEmailCostsAPasswordHash checks that an unknown email is not
// answered faster than a wrong password: both run one argon2id
// verification. Costs are raised so the hash dominates the timing.
func TestUnknownEmailCostsAPasswordHash(t *testing.T) {
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Auth.Argon2MemoryKiB, c.Auth.Argon2Time = 32*1024, 3
		c.Auth.LoginMaxFailuresPerEmail, c.Auth.LoginMaxFailuresPerIP = 1000, 1000
	}))
	u := e.NewUser(t)
	measure := func(email string) time.Duration {
		var ds []time.Duration
		for range 5 {
			start := time.Now()
			if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": email, "password": "wrong-password"}); r.Status != 401 {
				t.Fatalf("login: %d", r.Status)
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	wrong, unknown := measure(u.Email), measure("nobody@example.com")
	t.Logf("median wrong password %v, unknown email %v", wrong, unknown)
	if unknown < wrong/3 {
		t.Fatalf("unknown email answered in %v, wrong password in %v: the difference reveals which emails exist", unknown, wrong)
	}
}

// signer makes tokens the way an attacker or a misconfigured issuer would.
type signer struct {
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T, e *apptest.Env) signer {
	t.Helper()
	priv, err := config.ParseEd25519PrivateKey(e.Config.Auth.JWTPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return signer{priv: priv}
}

func (s signer) claims(sub, sid string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": "paygate", "aud": []string{"paygate-api"}, "sub": sub, "sid": sid, "role": "user",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": uuid.NewString()}
}

func (s signer) ed(t *testing.T, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTokenRejections(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	s := newSigner(t, e)
	claims, _, _ := jwt.NewParser().ParseUnverified(u.Token, jwt.MapClaims{})
	sid := claims.Claims.(jwt.MapClaims)["sid"].(string)
	kid := e.Config.Auth.JWTKeyID

	// A token we sign correctly is accepted: the rejections below are
	// about the one thing each case changes.
	if r := e.Get(t, "/v1/auth/me", s.ed(t, s.claims(u.ID, sid), kid)); r.Status != 200 {
		t.Fatalf("control token refused: %d %s", r.Status, r.Body)
	}

	pub := s.priv.Public().(ed25519.PublicKey)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, s.claims(u.ID, sid))
	hs.Header["kid"] = kid
	hmacWithPublicKey, _ := hs.SignedString([]byte(pub))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, s.claims(u.ID, sid))
	none.Header["kid"] = kid
	algNone, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	good := s.ed(t, s.claims(u.ID, sid), kid)
	tampered := good[:len(good)-4] + "AAAA"
	if tampered == good {
		tampered = good[:len(good)-4] + "BBBB"
	}
	_, other, _ := ed25519.GenerateKey(nil)
	foreign := signer{priv: other}.ed(t, s.claims(u.ID, sid), kid)

	mod := func(f func(jwt.MapClaims)) string {
		c := s.claims(u.ID, sid)
		f(c)
		return s.ed(t, c, kid)
	}
	cases := map[string]string{
		"no token":              "",
		"garbage":               "not.a.jwt",
		"alg none":              algNone,
		"hmac with public key":  hmacWithPublicKey,
		"bad signature":         tampered,
		"signed by another key": foreign,
		"unknown kid":           s.ed(t, s.claims(u.ID, sid), "k-unknown"),
		"expired":               mod(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"not yet valid":         mod(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"no expiry":             mod(func(c jwt.MapClaims) { delete(c, "exp") }),
		"wrong issuer":          mod(func(c jwt.MapClaims) { c["iss"] = "evil" }),
		"wrong audience":        mod(func(c jwt.MapClaims) { c["aud"] = []string{"other-api"} }),
		"unknown session":       mod(func(c jwt.MapClaims) { c["sid"] = uuid.NewString() }),
		"unknown user":          mod(func(c jwt.MapClaims) { c["sub"] = uuid.NewString() }),
	}
	for name, tok := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.Get(t, "/v1/auth/me", tok)
			if r.Status != 401 || r.Code() != "UNAUTHENTICATED" {
				t.Fatalf("got %d %s", r.Status, r.Body)
			}
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("no WWW-Authenticate challenge")
			}
		})
	}

	t.Run("deactivated user", func(t *testing.T) {
		admin := e.Admin(t)
		victim := e.NewUser(t)
		if r := e.Get(t, "/v1/auth/me", victim.Token); r.Status != 200 {
			t.Fatalf("before: %d", r.Status)
		}
		if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + victim.ID, Token: admin.Token}); r.Status != 204 {
			t.Fatalf("deactivate: %d %s", r.Status, r.Body)
		}
		// Deactivation ends the user's sessions in its own transaction: the
		// very next request with their token is refused, and so is a fresh
		// token signed for that session.
		vc, _, _ := jwt.NewParser().ParseUnverified(victim.Token, jwt.MapClaims{})
		vsid := vc.Claims.(jwt.MapClaims)["sid"].(string)
		for _, tok := range []string{victim.Token, s.ed(t, s.claims(victim.ID, vsid), kid)} {
			if r := e.Get(t, "/v1/auth/me", tok); r.Status != 401 {
				t.Fatalf("deactivated user's token: %d %s", r.Status, r.Body)
			}
		}
	})
}

func TestKeyRotationKeepsOldTokensValid(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	// A second application on the same database signs with a new key and
	// verifies the old one under its kid.
	oldPriv, _ := config.ParseEd25519PrivateKey(e.Config.Auth.JWTPrivateKey)
	oldPub := base64.StdEncoding.EncodeToString(oldPriv.Public().(ed25519.PublicKey))
	_, newPriv, _ := ed25519.GenerateKey(nil)
	rotated := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Database.URL = e.Config.Database.URL
		c.Auth.JWTPrivateKey = base64.StdEncoding.EncodeToString(newPriv.Seed())
		c.Auth.JWTKeyID = "test-k2"
		c.Auth.JWTVerifyKeys = []string{e.Config.Auth.JWTKeyID + "=" + oldPub}
		c.Auth.BootstrapAdminEmail, c.Auth.BootstrapAdminPassword = "", ""
	}))
	if r := rotated.Get(t, "/v1/auth/me", u.Token); r.Status != 200 {
		t.Fatalf("old-key token after rotation: %d %s", r.Status, r.Body)
	}
	access, _ := rotated.Login(t, u.Email, u.Password)
	if r := e.Get(t, "/v1/auth/me", access); r.Status != 401 {
		t.Fatalf("new-key token on a deployment that does not know the key: %d", r.Status)
	}
}

func refresh(t *testing.T, e *apptest.Env, token string) *apptest.Response {
	t.Helper()
	return e.Post(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": token})
}

func TestRefreshRotatesAndReuseRevokesTheFamily(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	first := refresh(t, e, u.Refresh)
	if first.Status != 200 {
		t.Fatalf("refresh: %d %s", first.Status, first.Body)
	}
	next := first.Map(t)
	if next["refresh_token"] == u.Refresh {
		t.Fatal("refresh token was not rotated")
	}
	newAccess := next["access_token"].(string)
	if r := e.Get(t, "/v1/auth/me", newAccess); r.Status != 200 {
		t.Fatalf("new access token: %d", r.Status)
	}

	// The rotated token presented again after the retry grace window:
	// theft. The whole family dies.
	if _, err := e.Pool.Exec(context.Background(),
		"UPDATE auth_refresh_tokens SET used_at = used_at - interval '1 minute' WHERE used_at IS NOT NULL"); err != nil {
		t.Fatal(err)
	}
	if r := refresh(t, e, u.Refresh); r.Status != 401 || r.Code() != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("reused token: %d %s", r.Status, r.Body)
	}
	if r := refresh(t, e, next["refresh_token"].(string)); r.Status != 401 {
		t.Fatalf("successor of a reused token still works: %d", r.Status)
	}
	if r := e.Get(t, "/v1/auth/me", newAccess); r.Status != 401 {
		t.Fatalf("access token of a revoked family still works: %d", r.Status)
	}
	if r := refresh(t, e, "pgr_unknown"); r.Status != 401 {
		t.Fatalf("unknown refresh token: %d", r.Status)
	}
}

// TestConcurrentRefreshOfOneTokenLeavesOneLiveToken sends one refresh
// token several times at once. Without a grace window exactly one
// rotation succeeds (and the others, reuse, revoke the session). With
// one, the others count as retries of a lost response and get pairs too,
// but each supersedes the previous successor: the session keeps exactly
// one live refresh token, and it works.
func TestConcurrentRefreshOfOneTokenLeavesOneLiveToken(t *testing.T) {
	t.Parallel()
	for _, grace := range []time.Duration{0, 10 * time.Second} {
		t.Run("grace "+grace.String(), func(t *testing.T) {
			t.Parallel()
			e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Auth.RefreshReuseGrace = grace }))
			u := e.NewUser(t)
			const n = 6
			rs := make([]*apptest.Response, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() { rs[i] = refresh(t, e, u.Refresh) })
			}
			wg.Wait()
			var codes []int
			var tokens []string
			for _, r := range rs {
				codes = append(codes, r.Status)
				if r.Status == 200 {
					tokens = append(tokens, r.Map(t)["refresh_token"].(string))
				}
			}
			if grace == 0 {
				if len(tokens) != 1 {
					t.Fatalf("codes %v: want exactly one successful rotation", codes)
				}
				return
			}
			var live int
			if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM auth_refresh_tokens t
JOIN auth_refresh_tokens o ON o.session_id = t.session_id AND o.token_hash = sha256($1::text::bytea)
WHERE t.used_at IS NULL AND t.revoked_at IS NULL`, u.Refresh).Scan(&live); err != nil {
				t.Fatal(err)
			}
			if live != 1 {
				t.Fatalf("codes %v: %d live refresh tokens in the session, want 1", codes, live)
			}
			ok := 0
			for _, tok := range tokens {
				if refresh(t, e, tok).Status == 200 {
					ok++
				}
			}
			if ok > 1 {
				t.Fatalf("%d of the refresh tokens handed out rotated", ok)
			}
		})
	}
}

func TestLogoutRevokesTheFamily(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	other := e.NewUser(t)
	if r := e.Post(t, "/v1/auth/logout", other.Token, map[string]string{"refresh_token": u.Refresh}); r.Status != 401 {
		t.Fatalf("logging out someone else's session: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/auth/logout", u.Token, map[string]string{"refresh_token": u.Refresh}); r.Status != 204 {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	if r := refresh(t, e, u.Refresh); r.Status != 401 {
		t.Fatalf("refresh after logout: %d", r.Status)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 401 {
		t.Fatalf("access after logout: %d", r.Status)
	}
	if r := e.Get(t, "/v1/auth/me", other.Token); r.Status != 200 {
		t.Fatalf("another user's session was affected: %d", r.Status)
	}
}

func TestPasswordChange(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	otherAccess, otherRefresh := e.Login(t, u.Email, u.Password)

	if r := e.Post(t, "/v1/auth/password", u.Token, map[string]string{"current_password": "wrong-one", "new_password": "new-password-1"}); r.Status != 422 {
		t.Fatalf("wrong current password: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/auth/password", u.Token, map[string]string{"current_password": u.Password, "new_password": "short"}); r.Status != 400 {
		t.Fatalf("weak new password: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/auth/password", u.Token, map[string]string{"current_password": u.Password, "new_password": "new-password-1"}); r.Status != 204 {
		t.Fatalf("change: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 200 {
		t.Fatalf("the session that changed the password was revoked: %d", r.Status)
	}
	if r := e.Get(t, "/v1/auth/me", otherAccess); r.Status != 401 {
		t.Fatalf("other session survived the password change: %d", r.Status)
	}
	if r := refresh(t, e, otherRefresh); r.Status != 401 {
		t.Fatalf("other session's refresh token survived: %d", r.Status)
	}
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}); r.Status != 401 {
		t.Fatalf("old password still logs in: %d", r.Status)
	}
	e.Login(t, u.Email, "new-password-1")
	var n int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE event_type = 'paygate.user.password_changed' AND event_key = $1", u.ID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("password_changed events = %d (%v), want 1", n, err)
	}
}

func TestFailedLoginsAreThrottledPerEmailAndPerIP(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Auth.LoginMaxFailuresPerEmail, c.Auth.LoginMaxFailuresPerIP = 3, 5
		c.Auth.TrustedProxies = []string{"127.0.0.1"}
	}))
	u := e.NewUser(t)
	login := func(email, pw, ip string) *apptest.Response {
		return e.Post(t, "/v1/auth/login", "", map[string]string{"email": email, "password": pw}, "X-Forwarded-For", ip)
	}
	for i := range 3 {
		if r := login(u.Email, "wrong-password", "10.0.0."+strconv.Itoa(i+1)); r.Status != 401 {
			t.Fatalf("failure %d: %d", i, r.Status)
		}
	}
	// Per email, whatever the IP, and even with the right password.
	r := login(u.Email, u.Password, "10.0.0.9")
	if r.Status != 429 || r.Code() != "RATE_LIMITED" {
		t.Fatalf("over the email limit: %d %s", r.Status, r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 15*60 {
		t.Fatalf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
	// Per IP, across emails.
	for i := range 5 {
		login("someone"+strconv.Itoa(i)+"@example.com", "wrong-password", "192.0.2.7")
	}
	other := e.NewUser(t)
	if r := login(other.Email, other.Password, "192.0.2.7"); r.Status != 429 {
		t.Fatalf("over the IP limit: %d %s", r.Status, r.Body)
	}
	if r := login(other.Email, other.Password, "192.0.2.8"); r.Status != 200 {
		t.Fatalf("another IP is throttled too: %d %s", r.Status, r.Body)
	}
}

func TestBootstrapAdmin(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	if admin.Role != "admin" {
		t.Fatalf("bootstrap admin role = %q", admin.Role)
	}
}

// TestRevokedSessionIsRefusedOnTheVeryNextRequest logs out on one replica
// and sends the very next request to another: refused, since every
// request reads its session (one read: the session carries its role).
// A session begun before sessions carried a role is still checked against
// its user.
func TestRevokedSessionIsRefusedOnTheVeryNextRequest(t *testing.T) {
	t.Parallel()
	a := apptest.Start(t)
	b := apptest.StartWithBroker(t, a.Broker, apptest.WithConfig(func(c *config.Config) {
		c.Database.URL, c.Auth.JWTPrivateKey = a.Config.Database.URL, a.Config.Auth.JWTPrivateKey
	}))
	u := a.NewUser(t)
	if r := b.Get(t, "/v1/auth/me", u.Token); r.Status != 200 {
		t.Fatalf("replica b before the logout: %d", r.Status)
	}
	if r := a.Post(t, "/v1/auth/logout", u.Token, map[string]string{"refresh_token": u.Refresh}); r.Status != 204 {
		t.Fatalf("logout on a: %d %s", r.Status, r.Body)
	}
	if r := b.Get(t, "/v1/auth/me", u.Token); r.Status != 401 {
		t.Fatalf("replica b right after the logout on a: %d", r.Status)
	}

	old := a.NewUser(t)
	if _, err := a.Pool.Exec(context.Background(), "UPDATE auth_sessions SET role = NULL WHERE user_id = $1", old.ID); err != nil {
		t.Fatal(err)
	}
	if r := b.Get(t, "/v1/auth/me", old.Token); r.Status != 200 || r.Map(t)["role"] != "user" {
		t.Fatalf("a session without a role: %d %s", r.Status, r.Body)
	}
	if _, err := a.Pool.Exec(context.Background(), "UPDATE users SET active = false WHERE id = $1", old.ID); err != nil {
		t.Fatal(err)
	}
	if r := b.Get(t, "/v1/auth/me", old.Token); r.Status != 401 {
		t.Fatalf("a session without a role, of a deactivated user: %d", r.Status)
	}
}
