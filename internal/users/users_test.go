package users_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/paygate/paygate/internal/apptest"
)

// TestNoUserReachesAnotherUser tries every users route with another
// user's id: each answers 404, exactly as for an id that does not exist.
func TestNoUserReachesAnotherUser(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	alice, bob := e.NewUser(t), e.NewUser(t)
	missing := "00000000-0000-4000-8000-000000000000"
	for _, target := range []string{bob.ID, missing, "not-a-uuid"} {
		for _, req := range []apptest.Request{
			{Method: "GET", Path: "/v1/users/" + target},
			{Method: "PATCH", Path: "/v1/users/" + target, Body: map[string]string{"firstname": "Mallory"}},
			{Method: "DELETE", Path: "/v1/users/" + target},
		} {
			req.Token = alice.Token
			r := e.Do(t, req)
			if r.Status != http.StatusNotFound || r.Code() != "NOT_FOUND" {
				t.Errorf("%s %s: %d %s", req.Method, req.Path, r.Status, r.Body)
			}
		}
	}
	if r := e.Get(t, "/v1/users", alice.Token); r.Status != http.StatusForbidden {
		t.Errorf("non-admin list: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/users", alice.Token, map[string]string{"firstname": "X", "lastname": "Y", "email": "x@example.com", "password": "password-123"}); r.Status != http.StatusForbidden {
		t.Errorf("non-admin create: %d %s", r.Status, r.Body)
	}
	// Bob is untouched.
	admin := e.Admin(t)
	r := e.Get(t, "/v1/users/"+bob.ID, admin.Token)
	if m := r.Map(t); r.Status != 200 || m["firstname"] != "Test" || m["active"] != true {
		t.Fatalf("bob after the attempts: %d %s", r.Status, r.Body)
	}
	// Every route needs a token.
	for _, req := range []apptest.Request{{Method: "GET", Path: "/v1/users"}, {Method: "GET", Path: "/v1/users/" + bob.ID}, {Method: "GET", Path: "/v1/auth/me"}} {
		if r := e.Do(t, req); r.Status != http.StatusUnauthorized {
			t.Errorf("%s %s without token: %d", req.Method, req.Path, r.Status)
		}
	}
}

func TestSelfServiceProfileAndMassAssignment(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	u := e.NewUser(t)
	patch := func(body any) *apptest.Response {
		return e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: u.Token, Body: body})
	}
	r := patch(map[string]string{"firstname": "  Grace "})
	if m := r.Map(t); r.Status != 200 || m["firstname"] != "Grace" || m["lastname"] == "" {
		t.Fatalf("self patch: %d %s", r.Status, r.Body)
	}
	for _, body := range []map[string]any{{"role": "admin"}, {"active": true}, {"firstname": "G", "role": "admin"}, {"account_number": "4539578763621486"}} {
		if r := patch(body); r.Status != http.StatusBadRequest {
			t.Fatalf("self patch %v: %d %s", body, r.Status, r.Body)
		}
	}
	me := e.Get(t, "/v1/auth/me", u.Token).Map(t)
	if me["role"] != "user" || me["firstname"] != "Grace" {
		t.Fatalf("after refused patches: %v", me)
	}
	if r := patch(map[string]string{"email": "not-an-email"}); r.Status != 400 {
		t.Fatalf("bad email: %d", r.Status)
	}
}

func TestAdminManagesUsers(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	r := e.Post(t, "/v1/users", admin.Token, map[string]string{"firstname": "Op", "lastname": "Erator", "email": "Op@Example.com", "password": "password-123", "role": "admin"})
	if r.Status != 201 || r.Map(t)["role"] != "admin" || r.Map(t)["email"] != "op@example.com" {
		t.Fatalf("admin create: %d %s", r.Status, r.Body)
	}
	op := e.Post(t, "/v1/auth/login", "", map[string]string{"email": "op@example.com", "password": "password-123"})
	if op.Status != 200 {
		t.Fatalf("created admin cannot log in: %d", op.Status)
	}

	var created []string
	for i := range 5 {
		u := e.NewUser(t)
		created = append(created, u.ID)
		_ = i
	}
	// Pagination: newest first, no repeats, complete.
	seen := map[string]bool{}
	cursor := ""
	pages := 0
	for {
		path := "/v1/users?limit=2"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := e.Get(t, path, admin.Token)
		var page struct {
			Data []struct {
				ID        string `json:"id"`
				CreatedAt string `json:"created_at"`
			} `json:"data"`
			NextCursor *string `json:"next_cursor"`
		}
		r.JSON(t, &page)
		if r.Status != 200 || len(page.Data) > 2 {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		}
		for i, u := range page.Data {
			if seen[u.ID] {
				t.Fatalf("user %s on two pages", u.ID)
			}
			seen[u.ID] = true
			if i > 0 && page.Data[i-1].CreatedAt < u.CreatedAt {
				t.Fatal("page not newest first")
			}
		}
		pages++
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if len(seen) != 7 || pages != 4 { // bootstrap admin + op + 5 users
		t.Fatalf("listed %d users in %d pages, want 7 in 4", len(seen), pages)
	}
	if r := e.Get(t, "/v1/users?limit=0", admin.Token); r.Status != 400 {
		t.Fatalf("limit=0: %d", r.Status)
	}
	if r := e.Get(t, "/v1/users?limit=101", admin.Token); r.Status != 400 {
		t.Fatalf("limit=101: %d", r.Status)
	}
	if r := e.Get(t, "/v1/users?cursor=garbage", admin.Token); r.Status != 400 {
		t.Fatalf("bad cursor: %d", r.Status)
	}

	// Filters.
	one := e.Get(t, "/v1/users/"+created[2], admin.Token).Map(t)
	r = e.Get(t, "/v1/users?email="+fmt.Sprint(one["email"]), admin.Token)
	var filtered struct{ Data []map[string]any }
	r.JSON(t, &filtered)
	if len(filtered.Data) != 1 || filtered.Data[0]["id"] != created[2] {
		t.Fatalf("email filter: %s", r.Body)
	}
	r = e.Get(t, "/v1/users?q="+fmt.Sprint(one["lastname"]), admin.Token)
	r.JSON(t, &filtered)
	if len(filtered.Data) != 1 {
		t.Fatalf("name filter %v: %s", one["lastname"], r.Body)
	}

	// Role changes take effect on the next request, not at token expiry: a
	// change of role ends the user's sessions, and a new login carries the
	// new role.
	u := e.NewUser(t)
	if r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token, Body: map[string]string{"role": "admin"}}); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/users", u.Token); r.Status != 401 {
		t.Fatalf("a token of the session before the promotion: %d", r.Status)
	}
	promoted, _ := e.Login(t, u.Email, u.Password)
	if r := e.Get(t, "/v1/users", promoted); r.Status != 200 {
		t.Fatalf("promoted user cannot list: %d", r.Status)
	}
	if r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token, Body: map[string]string{"role": "user"}}); r.Status != 200 {
		t.Fatalf("demote: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/users", promoted); r.Status != 401 {
		t.Fatalf("an admin token after the demotion: %d", r.Status)
	}
	// A change of anything else keeps the sessions.
	again, _ := e.Login(t, u.Email, u.Password)
	if r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token, Body: map[string]string{"firstname": "Renamed"}}); r.Status != 200 {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/auth/me", again); r.Status != 200 {
		t.Fatalf("a rename ended the session: %d", r.Status)
	}
	if r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token, Body: map[string]string{"role": "root"}}); r.Status != 400 {
		t.Fatalf("invalid role: %d", r.Status)
	}
}

func TestDeactivation(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	u := e.NewUser(t)
	if r := e.Do(t, apptest.Request{Method: "DELETE", Path: "/v1/users/" + u.ID, Token: admin.Token}); r.Status != 204 {
		t.Fatalf("deactivate: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 401 {
		t.Fatalf("session survived deactivation: %d", r.Status)
	}
	if r := e.Post(t, "/v1/auth/refresh", "", map[string]string{"refresh_token": u.Refresh}); r.Status != 401 {
		t.Fatalf("refresh survived deactivation: %d", r.Status)
	}
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}); r.Status != 401 {
		t.Fatalf("deactivated user logged in: %d", r.Status)
	}
	r := e.Get(t, "/v1/users/"+u.ID, admin.Token)
	if m := r.Map(t); r.Status != 200 || m["active"] != false || m["email"] != u.Email {
		t.Fatalf("record not kept: %d %s", r.Status, r.Body)
	}
	// Reactivation by an admin lets them log in again.
	if r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token, Body: map[string]bool{"active": true}}); r.Status != 200 {
		t.Fatalf("reactivate: %d %s", r.Status, r.Body)
	}
	e.Login(t, u.Email, u.Password)
}

// TestAdminPatchThatDeactivatesIsOneTransaction sends a patch that
// deactivates a user and gives them an email another user has: the
// conflict refuses the whole patch, so the user stays active, keeps their
// sessions and can still log in.
func TestAdminPatchThatDeactivatesIsOneTransaction(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin := e.Admin(t)
	u, other := e.NewUser(t), e.NewUser(t)
	r := e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token,
		Body: map[string]any{"active": false, "email": other.Email, "firstname": "Changed"}})
	if r.Status != http.StatusConflict || r.Code() != "EMAIL_TAKEN" {
		t.Fatalf("patch with a taken email: %d %s", r.Status, r.Body)
	}
	got := e.Get(t, "/v1/users/"+u.ID, admin.Token).Map(t)
	if got["active"] != true || got["firstname"] != "Test" || got["email"] != u.Email {
		t.Fatalf("user after the refused patch: %v", got)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 200 {
		t.Fatalf("the refused patch revoked the user's session: %d", r.Status)
	}
	// The same patch without the conflict deactivates and renames at once.
	r = e.Do(t, apptest.Request{Method: "PATCH", Path: "/v1/users/" + u.ID, Token: admin.Token,
		Body: map[string]any{"active": false, "firstname": "Changed"}})
	if m := r.Map(t); r.Status != 200 || m["active"] != false || m["firstname"] != "Changed" {
		t.Fatalf("deactivating patch: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/auth/me", u.Token); r.Status != 401 {
		t.Fatalf("a deactivated user's session: %d", r.Status)
	}
}
