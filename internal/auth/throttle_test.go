package auth_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
)

// throttled starts an application behind a trusted proxy on loopback, so
// that tests name each request's client IP in X-Forwarded-For.
func throttled(t *testing.T, perEmail, perIP int, more ...func(*config.Config)) *apptest.Env {
	t.Helper()
	return apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Auth.LoginMaxFailuresPerEmail, c.Auth.LoginMaxFailuresPerIP = perEmail, perIP
		c.Auth.TrustedProxies = []string{"127.0.0.1"}
		for _, f := range more {
			f(c)
		}
	}))
}

// parallel sends n requests at once and returns their responses.
func parallel(t *testing.T, n int, send func(i int) *apptest.Response) []*apptest.Response {
	t.Helper()
	out := make([]*apptest.Response, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = send(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts the statuses and checks that every 429 is RATE_LIMITED
// with a usable Retry-After.
func tally(t *testing.T, rs []*apptest.Response) map[int]int {
	t.Helper()
	n := map[int]int{}
	for _, r := range rs {
		n[r.Status]++
		if r.Status == http.StatusTooManyRequests {
			if r.Code() != "RATE_LIMITED" {
				t.Errorf("429 with code %s", r.Code())
			}
			if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("429 with Retry-After %q", r.Header.Get("Retry-After"))
			}
		}
	}
	return n
}

func TestParallelWrongPasswordsForOneEmailGetAtMostTheLimit(t *testing.T) {
	t.Parallel()
	e := throttled(t, 5, 1000)
	u := e.NewUser(t)
	rs := parallel(t, 40, func(i int) *apptest.Response {
		return e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": "wrong-password"},
			"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
	})
	n := tally(t, rs)
	if n[401] > 5 || n[401]+n[429] != 40 {
		t.Fatalf("40 parallel wrong passwords for one email: %v; want at most 5 × 401 and the rest 429", n)
	}
	t.Logf("statuses %v", n)
	// Even the right password is refused now.
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}, "X-Forwarded-For", "198.51.100.200"); r.Status != 429 {
		t.Fatalf("right password over the limit: %d %s", r.Status, r.Body)
	}
}

func TestParallelWrongPasswordsFromOneIPGetAtMostTheLimit(t *testing.T) {
	t.Parallel()
	e := throttled(t, 1000, 5)
	rs := parallel(t, 40, func(i int) *apptest.Response {
		return e.Post(t, "/v1/auth/login", "", map[string]string{"email": fmt.Sprintf("guess%d@example.com", i), "password": "wrong-password"},
			"X-Forwarded-For", "203.0.113.9")
	})
	n := tally(t, rs)
	if n[401] > 5 || n[401]+n[429] != 40 {
		t.Fatalf("40 parallel wrong passwords from one IP: %v; want at most 5 × 401 and the rest 429", n)
	}
	// A spoofed leftmost entry does not move the attacker to another IP.
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": "x@example.com", "password": "wrong-password"},
		"X-Forwarded-For", "10.9.9.9, 203.0.113.9"); r.Status != 429 {
		t.Fatalf("spoofed X-Forwarded-For escaped the IP limit: %d %s", r.Status, r.Body)
	}
	u := e.NewUser(t)
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}, "X-Forwarded-For", "203.0.113.10"); r.Status != 200 {
		t.Fatalf("another IP is throttled too: %d %s", r.Status, r.Body)
	}
}

func TestPasswordChangeIsThrottledWithTheLogins(t *testing.T) {
	t.Parallel()
	e := throttled(t, 5, 1000)
	u := e.NewUser(t)
	rs := parallel(t, 25, func(int) *apptest.Response {
		return e.Post(t, "/v1/auth/password", u.Token, map[string]string{"current_password": "wrong-current", "new_password": "new-password-1"},
			"X-Forwarded-For", "198.51.100.1")
	})
	n := tally(t, rs)
	if n[422] > 5 || n[422]+n[429] != 25 {
		t.Fatalf("25 parallel wrong current passwords: %v; want at most 5 × 422 and the rest 429", n)
	}
	// The failures count against the email's logins, and the other way round.
	if r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": u.Password}, "X-Forwarded-For", "198.51.100.2"); r.Status != 429 {
		t.Fatalf("login after the password-change guesses: %d %s", r.Status, r.Body)
	}
	if r := e.Post(t, "/v1/auth/password", u.Token, map[string]string{"current_password": u.Password, "new_password": "new-password-1"}); r.Status != 429 {
		t.Fatalf("right current password over the limit: %d %s", r.Status, r.Body)
	}
}

func TestSuccessClearsTheEmailsFailures(t *testing.T) {
	t.Parallel()
	e := throttled(t, 3, 1000)
	u := e.NewUser(t)
	login := func(pw string) int {
		return e.Post(t, "/v1/auth/login", "", map[string]string{"email": u.Email, "password": pw}, "X-Forwarded-For", "198.51.100.3").Status
	}
	for range 2 {
		if s := login("wrong-password"); s != 401 {
			t.Fatalf("failure: %d", s)
		}
	}
	if s := login(u.Password); s != 200 {
		t.Fatalf("success: %d", s)
	}
	for i := range 3 {
		if s := login("wrong-password"); s != 401 {
			t.Fatalf("failure %d after a success: %d (the success did not clear the count)", i, s)
		}
	}
	if s := login("wrong-password"); s != 429 {
		t.Fatalf("over the limit: %d", s)
	}
}

func TestRegistrationsAreLimitedPerIP(t *testing.T) {
	t.Parallel()
	e := throttled(t, 5, 20, func(c *config.Config) { c.Auth.RegisterMaxPerIP = 3 })
	rs := parallel(t, 10, func(i int) *apptest.Response {
		return e.Post(t, "/v1/auth/register", "", regBody(fmt.Sprintf("burst%d@example.com", i)), "X-Forwarded-For", "192.0.2.50")
	})
	n := tally(t, rs)
	if n[201] != 3 || n[429] != 7 {
		t.Fatalf("10 parallel registrations from one IP with a limit of 3: %v", n)
	}
	if r := e.Post(t, "/v1/auth/register", "", regBody("other-ip@example.com"), "X-Forwarded-For", "192.0.2.51"); r.Status != 201 {
		t.Fatalf("registration from another IP: %d %s", r.Status, r.Body)
	}
	// Invalid requests are not counted: they cost no hash.
	e2 := throttled(t, 5, 20, func(c *config.Config) { c.Auth.RegisterMaxPerIP = 1 })
	bad := regBody("bad@example.com")
	bad["password"] = "short"
	for range 3 {
		if r := e2.Post(t, "/v1/auth/register", "", bad, "X-Forwarded-For", "192.0.2.60"); r.Status != 400 {
			t.Fatalf("invalid registration: %d %s", r.Status, r.Body)
		}
	}
	if r := e2.Post(t, "/v1/auth/register", "", regBody("good@example.com"), "X-Forwarded-For", "192.0.2.60"); r.Status != 201 {
		t.Fatalf("valid registration after invalid ones: %d %s", r.Status, r.Body)
	}
}

// TestLoginsDuringARegistrationBurst fires 200 registrations at once
// against a hashing queue much smaller than the burst, with logins going
// on meanwhile. It asserts behaviour: every registration is created or
// shed with 503 UNAVAILABLE and a Retry-After (none waits without bound),
// some are shed, and every login succeeds. It reports the login latency
// (p50, p99, max) during the burst and the numbers of registrations
// created and shed; timings are not asserted.
func TestLoginsDuringARegistrationBurst(t *testing.T) {
	t.Parallel()
	e := throttled(t, 5, 1000, func(c *config.Config) {
		// A cost high enough that hashing is the bottleneck, as in
		// production (under -race an 8 MiB pass costs about what 19 MiB
		// and two passes do in a production build).
		c.Auth.Argon2MemoryKiB, c.Auth.Argon2Time, c.Auth.Argon2Threads = 8*1024, 1, 1
		c.Auth.HashConcurrency, c.Auth.HashQueue, c.Auth.HashMaxWait = 2, 16, 2*time.Second
		c.Auth.RegisterMaxPerIP = 1000
	})
	const logins = 4
	users := make([]apptest.User, logins)
	for i := range users {
		users[i] = e.NewUser(t)
	}
	login := func(i int) (time.Duration, *apptest.Response) {
		start := time.Now()
		r := e.Post(t, "/v1/auth/login", "", map[string]string{"email": users[i].Email, "password": users[i].Password},
			"X-Forwarded-For", fmt.Sprintf("198.51.100.%d", 100+i))
		return time.Since(start), r
	}
	var quiet []time.Duration
	for i := range 20 {
		d, r := login(i % logins)
		if r.Status != 200 {
			t.Fatalf("login before the burst: %d %s", r.Status, r.Body)
		}
		quiet = append(quiet, d)
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		loginBad  []string
	)
	burstDone := make(chan struct{})
	var lw sync.WaitGroup
	for i := range logins {
		lw.Go(func() {
			for {
				select {
				case <-burstDone:
					return
				default:
				}
				d, r := login(i)
				mu.Lock()
				latencies = append(latencies, d)
				if r.Status != 200 {
					loginBad = append(loginBad, fmt.Sprintf("%d %s", r.Status, r.Code()))
				}
				mu.Unlock()
			}
		})
	}
	rs := parallel(t, 200, func(i int) *apptest.Response {
		return e.Post(t, "/v1/auth/register", "", regBody(fmt.Sprintf("burst%d@example.com", i)),
			"X-Forwarded-For", fmt.Sprintf("10.%d.%d.1", i/250, i%250))
	})
	close(burstDone)
	lw.Wait()

	created, shed := 0, 0
	for _, r := range rs {
		switch {
		case r.Status == 201:
			created++
		case r.Status == 503 && r.Code() == "UNAVAILABLE" && r.Header.Get("Retry-After") != "":
			shed++
		default:
			t.Errorf("registration answered %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
		}
	}
	if shed == 0 {
		t.Errorf("200 registrations against 2 hashing slots and a queue of 16: none was shed")
	}
	if len(loginBad) > 0 {
		t.Errorf("logins during the burst failed: %v", loginBad)
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		slices.Sort(ds)
		return ds[min(len(ds)-1, int(float64(len(ds))*p))]
	}
	t.Logf("logins before the burst: p50 %v, p99 %v", pct(quiet, 0.5), pct(quiet, 0.99))
	t.Logf("registration burst of 200: %d created, %d shed (503); %d logins during it: p50 %v, p99 %v, max %v",
		created, shed, len(latencies), pct(latencies, 0.50), pct(latencies, 0.99), latencies[len(latencies)-1])
	var n, counted int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM users WHERE email LIKE 'burst%'").Scan(&n); err != nil || n != created {
		t.Fatalf("%d users stored for %d created (%v)", n, created, err)
	}
	// A shed registration does not use up its client's allowance.
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM auth_registration_attempts WHERE client_ip LIKE '10.%'").Scan(&counted); err != nil || counted != created {
		t.Fatalf("%d registration attempts counted for %d created (%v)", counted, created, err)
	}
}
