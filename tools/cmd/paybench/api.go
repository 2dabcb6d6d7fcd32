package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// User is a registered, logged-in user transfers run between.
type User struct {
	Email   string `json:"email"`
	Token   string `json:"token"`
	Account string `json:"account_number"`
}

// api talks to the gateway's public HTTP API and, to pay top-ups, to the
// payment sandbox's admin API.
type api struct {
	base    string
	sandbox string
	http    *http.Client
}

func newAPI(base string, conns int) *api {
	return &api{base: base, http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: 90 * time.Second, DisableCompression: true}}}
}

// do sends a request with a JSON body (nil: none) and returns the status
// and the body.
func (a *api) do(ctx context.Context, method, path, token string, body any, key string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// call is do that wants status want and decodes the answer into out.
func (a *api) call(ctx context.Context, method, path, token string, body any, key string, want int, out any) error {
	code, b, err := a.do(ctx, method, path, token, body, key)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if code != want {
		return fmt.Errorf("%s %s: %d %s, want %d", method, path, code, bytes.TrimSpace(b), want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w in %s", method, path, err, b)
		}
	}
	return nil
}

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// forEach runs f for 0..n-1 on at most par goroutines and returns the
// first error.
func forEach(n, par int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range min(n, par) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// callRetryBusy is call that tries again, for up to a minute, while the
// gateway sheds password hashing with 503 (PAYGATE_PASSWORD_HASH_MAX_WAIT:
// Argon2id is slow on a busy machine). A 503 is answered before anything
// is stored, so the retry is safe.
func (a *api) callRetryBusy(ctx context.Context, method, path string, body any, want int, out any) error {
	deadline := time.Now().Add(time.Minute)
	for {
		code, b, err := a.do(ctx, method, path, "", body, "")
		switch {
		case err != nil:
			return fmt.Errorf("%s %s: %w", method, path, err)
		case code == http.StatusServiceUnavailable && time.Now().Before(deadline):
			time.Sleep(250 * time.Millisecond)
			continue
		case code != want:
			return fmt.Errorf("%s %s: %d %s, want %d", method, path, code, bytes.TrimSpace(b), want)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w in %s", method, path, err, b)
		}
		return nil
	}
}

// seedCmd registers and logs in -users users and writes them to -out.
// Registration and login hash a password (Argon2id), so they run two at
// a time.
func seedCmd(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	n := fs.Int("users", 32, "users to register")
	out := fs.String("out", "users.json", "file the users are written to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 2 {
		return errors.New("need at least 2 users")
	}
	a := newAPI(*base, 8)
	ctx := context.Background()
	run := newKey()[:8]
	users := make([]User, *n)
	err := forEach(*n, 2, func(i int) error {
		email := fmt.Sprintf("bench-%s-%d@paygate.bench", run, i)
		pw := "bench-password-" + run
		var reg struct {
			AccountNumber string `json:"account_number"`
		}
		if err := a.callRetryBusy(ctx, http.MethodPost, "/v1/auth/register", map[string]string{"firstname": "Bench",
			"lastname": fmt.Sprint(i), "email": email, "password": pw, "confirm_password": pw}, http.StatusCreated, &reg); err != nil {
			return err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := a.callRetryBusy(ctx, http.MethodPost, "/v1/auth/login", map[string]string{"email": email, "password": pw},
			http.StatusOK, &tok); err != nil {
			return err
		}
		if reg.AccountNumber == "" || tok.AccessToken == "" {
			return fmt.Errorf("user %d: no account number or token", i)
		}
		users[i] = User{Email: email, Token: tok.AccessToken, Account: reg.AccountNumber}
		return nil
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(users, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o600); err != nil {
		return err
	}
	fmt.Printf("seeded %d users into %s\n", len(users), *out)
	return nil
}

func loadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var users []User
	if err := json.Unmarshal(b, &users); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(users) < 2 {
		return nil, fmt.Errorf("%s: need at least 2 users", path)
	}
	return users, nil
}

// The largest top-up paygate accepts by default (PAYGATE_TOPUP_MAX).
const topupMax = 50_000_000

// fund makes every user in payers hold at least need available: it tops
// up the ones below through the payment provider, and waits until each
// top-up has succeeded and so credited the wallet. Nothing here is timed.
func (a *api) fund(ctx context.Context, users []User, payers []int, need int64) (topups int, err error) {
	var mu sync.Mutex
	err = forEach(len(payers), 8, func(i int) error {
		u := users[payers[i]]
		var s struct {
			Available int64 `json:"available"`
		}
		if err := a.call(ctx, http.MethodGet, "/v1/saldo", u.Token, nil, "", http.StatusOK, &s); err != nil {
			return err
		}
		for left := need - s.Available; left > 0; left -= topupMax {
			if err := a.topUp(ctx, u, min(max(left, 10_000), topupMax)); err != nil {
				return err
			}
			mu.Lock()
			topups++
			mu.Unlock()
		}
		return nil
	})
	return topups, err
}

// topUp creates a top-up, has the customer pay it, and polls it until the
// provider's callback has settled it as succeeded.
//
// With a sandbox URL the payment is made through the sandbox's admin API
// (POST /_sandbox/payments/{reference}/pay) once the gateway has answered
// 201, so the top-up is recorded before the provider calls back. The
// sandbox's -auto-pay is no substitute at a short delay: its callback can
// overtake the commit of the top-up's record on a busy machine, and is
// then acknowledged as unmatched and left to the poller (minutes later).
// Without a sandbox URL, someone else (-auto-pay) must pay.
func (a *api) topUp(ctx context.Context, u User, amount int64) error {
	var t struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := a.call(ctx, http.MethodPost, "/v1/topups", u.Token, map[string]any{"amount": amount, "method": "bca"},
		newKey(), http.StatusCreated, &t); err != nil {
		return err
	}
	if a.sandbox != "" && t.Status == "pending" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.sandbox+"/_sandbox/payments/"+t.ID+"/pay", nil)
		if err != nil {
			return err
		}
		resp, err := a.http.Do(req)
		if err != nil {
			return fmt.Errorf("paying top-up %s at the sandbox: %w", t.ID, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("paying top-up %s at the sandbox: %d %s", t.ID, resp.StatusCode, bytes.TrimSpace(b))
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for t.Status != "succeeded" {
		switch t.Status {
		case "pending":
		default:
			return fmt.Errorf("top-up %s ended %s", t.ID, t.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("top-up %s still pending 60s after it was paid: did the sandbox call the gateway back (-callback-url)?", t.ID)
		}
		time.Sleep(20 * time.Millisecond)
		if err := a.call(ctx, http.MethodGet, "/v1/topups/"+t.ID, u.Token, nil, "", http.StatusOK, &t); err != nil {
			return err
		}
	}
	return nil
}
