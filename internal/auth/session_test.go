package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/platform/config"
)

// TestRefreshRetriedWithinGraceKeepsTheSession is the lost response: the
// client rotates its refresh token, never sees the answer, and retries
// with the same token. It gets a working pair and the session lives on.
// Once that client used its new token, the old one presented again is
// theft after all, and so is the successor it never saw.
func TestRefreshRetriedWithinGraceKeepsTheSession(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	t.Run("retry, then reuse", func(t *testing.T) {
		u := e.NewUser(t)
		if r := refresh(t, e, u.Refresh); r.Status != 200 {
			t.Fatalf("first refresh: %d %s", r.Status, r.Body)
		}
		retry := refresh(t, e, u.Refresh)
		if retry.Status != 200 {
			t.Fatalf("retry within the grace window: %d %s", retry.Status, retry.Body)
		}
		pair := retry.Map(t)
		if r := e.Get(t, "/v1/auth/me", pair["access_token"].(string)); r.Status != 200 {
			t.Fatalf("access token of the retry: %d %s", r.Status, r.Body)
		}
		next := refresh(t, e, pair["refresh_token"].(string))
		if next.Status != 200 {
			t.Fatalf("the session did not survive the retry: %d %s", next.Status, next.Body)
		}
		// The retry's successor was used: the original token again is reuse.
		if r := refresh(t, e, u.Refresh); r.Status != 401 {
			t.Fatalf("original token after its successor was used: %d %s", r.Status, r.Body)
		}
		if r := refresh(t, e, next.Map(t)["refresh_token"].(string)); r.Status != 401 {
			t.Fatalf("the family survived a reuse: %d %s", r.Status, r.Body)
		}
	})
	t.Run("the unseen successor presented", func(t *testing.T) {
		u := e.NewUser(t)
		lost := refresh(t, e, u.Refresh)
		retry := refresh(t, e, u.Refresh)
		if lost.Status != 200 || retry.Status != 200 {
			t.Fatalf("refresh and retry: %d, %d", lost.Status, retry.Status)
		}
		if r := refresh(t, e, lost.Map(t)["refresh_token"].(string)); r.Status != 401 {
			t.Fatalf("the superseded successor: %d %s", r.Status, r.Body)
		}
		if r := refresh(t, e, retry.Map(t)["refresh_token"].(string)); r.Status != 401 {
			t.Fatalf("the family survived the superseded successor: %d %s", r.Status, r.Body)
		}
	})
}

func sessionOf(t *testing.T, access string) string {
	t.Helper()
	c, _, err := jwt.NewParser().ParseUnverified(access, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Claims.(jwt.MapClaims)["sid"].(string)
}

// TestSessionsHaveAnAbsoluteLifetimeAndArePruned ages a session past
// PAYGATE_SESSION_MAX_LIFETIME: its tokens stop working although the
// refresh token itself has not expired, and the pruning job deletes it
// with its tokens while another session of the user lives on.
func TestSessionsHaveAnAbsoluteLifetimeAndArePruned(t *testing.T) {
	t.Parallel()
	var svc *auth.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	u := e.NewUser(t)
	oldAccess, oldRefresh := e.Login(t, u.Email, u.Password)
	old := sessionOf(t, oldAccess)
	ctx := context.Background()
	if _, err := e.Pool.Exec(ctx, "UPDATE auth_sessions SET created_at = now() - $2::interval WHERE id = $1",
		old, (e.Config.Auth.SessionMaxLifetime + 1e9).String()); err != nil {
		t.Fatal(err)
	}
	if r := refresh(t, e, oldRefresh); r.Status != 401 {
		t.Fatalf("refresh of a session past its lifetime: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/auth/me", oldAccess); r.Status != 401 {
		t.Fatalf("access token of a session past its lifetime: %d %s", r.Status, r.Body)
	}
	if _, err := svc.PruneSessions(ctx); err != nil {
		t.Fatal(err)
	}
	var sessions, tokens int
	if err := e.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM auth_sessions WHERE id = $1),
       (SELECT count(*) FROM auth_refresh_tokens WHERE session_id = $1)`, old).Scan(&sessions, &tokens); err != nil {
		t.Fatal(err)
	}
	if sessions != 0 || tokens != 0 {
		t.Fatalf("after pruning: %d sessions and %d tokens of the ended session", sessions, tokens)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 200 {
		t.Fatalf("the user's live session was pruned: %d %s", r.Status, r.Body)
	}
	if r := refresh(t, e, u.Refresh); r.Status != 200 {
		t.Fatalf("the live session's refresh: %d %s", r.Status, r.Body)
	}

	// A session an hour from its end: refreshing works, but the new
	// refresh token lives only until the session ends.
	access, refreshToken := e.Login(t, u.Email, u.Password)
	if _, err := e.Pool.Exec(ctx, "UPDATE auth_sessions SET created_at = now() - $2::interval WHERE id = $1",
		sessionOf(t, access), (e.Config.Auth.SessionMaxLifetime - time.Hour).String()); err != nil {
		t.Fatal(err)
	}
	r := refresh(t, e, refreshToken)
	if r.Status != 200 {
		t.Fatalf("refresh of a session an hour from its end: %d %s", r.Status, r.Body)
	}
	if left := r.Map(t)["refresh_expires_in"].(float64); left > 3600 || left < 3000 {
		t.Fatalf("refresh_expires_in = %v an hour before the session ends", left)
	}
}

// TestBootstrapAdminIsRecognisedByIdentity renames the bootstrap
// administrator's email and restarts with the same bootstrap settings: no
// second administrator appears, and the bootstrap password does not log
// in under the configured email.
func TestBootstrapAdminIsRecognisedByIdentity(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + admin.ID, Token: admin.Token,
		Body: map[string]string{"email": "ops@paygate.test"}})
	if r.Status != 200 {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	restarted := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Database.URL = e.Config.Database.URL }))
	if r := restarted.Post(t, "/v1/auth/login", "", map[string]string{"email": apptest.AdminEmail, "password": apptest.AdminPassword}); r.Status != 401 {
		t.Fatalf("bootstrap email and password after the rename and a restart: %d %s", r.Status, r.Body)
	}
	var admins int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE role = 'admin'").Scan(&admins); err != nil || admins != 1 {
		t.Fatalf("%d administrators (%v), want 1", admins, err)
	}
	restarted.Login(t, "ops@paygate.test", apptest.AdminPassword)
}
