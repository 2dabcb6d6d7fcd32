// Command paybench measures paygate's transfer throughput over its public
// HTTP API: it registers and funds users, then runs concurrent clients
// doing transfers between them for a fixed time, and prints transfers per
// second and latency percentiles. `make bench` runs it beside pgbench.
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
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "paybench:", err)
		os.Exit(1)
	}
}

type user struct {
	token, account string
}

type client struct {
	base string
	http *http.Client
}

func (c *client) post(ctx context.Context, path, token string, body any, key string) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// seed registers n users, logs them in and funds each with funds minor
// units in top-ups of at most 50,000,000.
func (c *client) seed(ctx context.Context, n int, funds int64) ([]user, error) {
	run := newKey()[:8]
	users := make([]user, n)
	for i := range users {
		email := fmt.Sprintf("bench-%s-%d@paygate.bench", run, i)
		pw := "bench-password-" + run
		code, body, err := c.post(ctx, "/v1/auth/register", "", map[string]string{"firstname": "Bench", "lastname": fmt.Sprint(i),
			"email": email, "password": pw, "confirm_password": pw}, "")
		if err != nil || code != http.StatusCreated {
			return nil, fmt.Errorf("register: %d %s %v", code, body, err)
		}
		var reg struct {
			AccountNumber string `json:"account_number"`
		}
		_ = json.Unmarshal(body, &reg)
		code, body, err = c.post(ctx, "/v1/auth/login", "", map[string]string{"email": email, "password": pw}, "")
		if err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("login: %d %s %v", code, body, err)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal(body, &tok)
		users[i] = user{token: tok.AccessToken, account: reg.AccountNumber}
		for left := funds; left > 0; {
			amt := min(left, 50_000_000)
			code, body, err = c.post(ctx, "/v1/topups", tok.AccessToken, map[string]any{"amount": amt, "method": "bca"}, newKey())
			if err != nil || code != http.StatusCreated {
				return nil, fmt.Errorf("top-up: %d %s %v", code, body, err)
			}
			left -= amt
		}
	}
	return users, nil
}

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "gateway base URL")
	clients := flag.Int("clients", 16, "concurrent clients")
	duration := flag.Duration("duration", 20*time.Second, "measured duration")
	nUsers := flag.Int("users", 32, "users to transfer between")
	flag.Parse()
	if *nUsers < 2 || *clients < 1 {
		return errors.New("need at least 2 users and 1 client")
	}
	c := &client{base: *base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *clients * 2, MaxIdleConnsPerHost: *clients * 2}}}
	ctx := context.Background()
	users, err := c.seed(ctx, *nUsers, 200_000_000)
	if err != nil {
		return err
	}

	var mu sync.Mutex
	var lat []time.Duration
	var ok, refused, failed int
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			var mine []time.Duration
			var o, r, f int
			for time.Now().Before(deadline) {
				from := mrand.IntN(len(users))
				to := mrand.IntN(len(users) - 1)
				if to >= from {
					to++
				}
				start := time.Now()
				code, _, err := c.post(ctx, "/v1/transfers", users[from].token,
					map[string]any{"to": users[to].account, "amount": 10000 + mrand.IntN(90)*1000}, newKey())
				elapsed := time.Since(start)
				switch {
				case err == nil && code == http.StatusCreated:
					o++
					mine = append(mine, elapsed)
				case err == nil && code == http.StatusUnprocessableEntity:
					r++
				default:
					f++
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			ok, refused, failed = ok+o, refused+r, failed+f
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	tps := float64(ok) / duration.Seconds()
	fmt.Printf("paygate transfers: clients=%d duration=%s ok=%d refused=%d failed=%d\n", *clients, *duration, ok, refused, failed)
	fmt.Printf("latency: p50=%s p95=%s p99=%s\n", pct(0.50).Round(time.Microsecond), pct(0.95).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	fmt.Printf("transfers_per_second=%.1f\n", tps)
	if failed > 0 {
		return fmt.Errorf("%d transfers failed", failed)
	}
	return nil
}
