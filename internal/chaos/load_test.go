package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"
)

// kind is a kind of money request.
type kind string

const (
	kindTopUp      kind = "topup"
	kindTransfer   kind = "transfer"
	kindWithdrawal kind = "withdrawal"
)

var kinds = []kind{kindTopUp, kindTransfer, kindWithdrawal}

var paths = map[kind]string{kindTopUp: "/v1/topups", kindTransfer: "/v1/transfers", kindWithdrawal: "/v1/withdrawals"}

// request is one money request a client made, under its own
// Idempotency-Key, and the answer it finally got. A client that gets no
// HTTP answer (the gateway died under it), a 5xx or a 409 "in progress"
// sends the very same request again, as the API tells clients to, until
// it gets an answer; the answer is what the client was told.
type request struct {
	kind   kind
	client int
	to     int // a transfer's recipient, a client index
	amount int64
	key    string
	body   []byte
	phase  int

	mu     sync.Mutex
	status int    // 0 until answered
	id     string // the movement's id in a 2xx
	code   string // the problem code of a 4xx
}

func (r *request) answer() (status int, id, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.id, r.code
}

// attempt is one HTTP exchange of the load: a request's attempt or a
// replay's.
type attempt struct {
	phase      int
	start, end time.Time
	status     int    // 0: no HTTP answer
	err        string // "conn" or "timeout" when status is 0
	code       string // the problem code of a 4xx or 5xx
	replay     bool
}

// account is a client's user.
type account struct {
	id, email, number, token string
}

// client is one customer of the load: a user of its own, its HTTP
// connections and the requests it made.
type client struct {
	i       int
	user    account
	http    *http.Client
	rng     *rand.Rand
	replica int
	seq     int
	done    []*request // answered, for replays
}

// load drives the clients and records what they were told.
type load struct {
	s       *stack
	clients []*client

	mu       sync.Mutex
	requests []*request
	attempts []attempt
	// replayMismatches says what each replay that was not answered as
	// its original said.
	replayMismatches []string

	inflight        map[kind]*atomic.Int64
	inflightReplica []atomic.Int64
}

func newLoad(s *stack) *load {
	l := &load{s: s, inflight: map[kind]*atomic.Int64{}, inflightReplica: make([]atomic.Int64, 8)}
	for _, k := range kinds {
		l.inflight[k] = new(atomic.Int64)
	}
	return l
}

// register creates n users through the first replica and logs them in.
func (l *load) register(n int) error {
	base := l.s.gateways[0].URL()
	hc := &http.Client{Timeout: 30 * time.Second}
	for i := range n {
		email := fmt.Sprintf("chaos-%d-%d@paygate.test", i, time.Now().UnixNano()%1e9)
		pw := fmt.Sprintf("chaos-password-%d", i)
		var u struct {
			ID            string `json:"id"`
			AccountNumber string `json:"account_number"`
		}
		if err := postJSON(hc, base+"/v1/auth/register", "", map[string]string{"firstname": "Chaos",
			"lastname": fmt.Sprintf("Client%d", i), "email": email, "password": pw, "confirm_password": pw}, http.StatusCreated, &u); err != nil {
			return err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := postJSON(hc, base+"/v1/auth/login", "", map[string]string{"email": email, "password": pw}, http.StatusOK, &tok); err != nil {
			return err
		}
		l.clients = append(l.clients, &client{i: i, user: account{id: u.ID, email: email, number: u.AccountNumber, token: tok.AccessToken},
			http: &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
			rng:  rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), replica: i})
	}
	return nil
}

// postJSON sends a set-up request and decodes its answer.
func postJSON(hc *http.Client, url, token string, body any, want int, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, rb)
	}
	return json.Unmarshal(rb, out)
}

// newRequest makes a request of kind k for client c.
func (l *load) newRequest(c *client, k kind, amount int64, phase int) *request {
	c.seq++
	r := &request{kind: k, client: c.i, amount: amount, phase: phase, to: -1,
		key: fmt.Sprintf("chaos-%d-%d-%s", c.i, c.seq, k)}
	var body any
	switch k {
	case kindTopUp:
		body = map[string]any{"amount": amount, "method": "bca"}
	case kindTransfer:
		r.to = (c.i + 1 + c.rng.IntN(len(l.clients)-1)) % len(l.clients)
		body = map[string]any{"to": l.clients[r.to].user.number, "amount": amount, "note": "chaos"}
	case kindWithdrawal:
		body = map[string]any{"amount": amount, "bank_code": "BCA", "bank_account_number": "1234567890",
			"bank_account_name": "Chaos Client"}
	}
	r.body, _ = json.Marshal(body)
	l.mu.Lock()
	l.requests = append(l.requests, r)
	l.mu.Unlock()
	return r
}

// run starts every client's loop for phase and returns the function that
// stops them and waits for them.
func (l *load) run(phase int, think time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, c := range l.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.step(ctx, c, phase)
				if think > 0 {
					time.Sleep(think/2 + time.Duration(c.rng.Int64N(int64(think))))
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// step makes one request of the mix: 10 % replays of an earlier request,
// then top-ups, transfers and withdrawals.
func (l *load) step(ctx context.Context, c *client, phase int) {
	x := c.rng.Float64()
	switch {
	case x < 0.10 && len(c.done) > 0:
		l.replay(ctx, c, c.done[c.rng.IntN(len(c.done))], phase)
	case x < 0.40:
		l.do(ctx, c, l.newRequest(c, kindTopUp, 10_000*(1+c.rng.Int64N(9)), phase), phase)
	case x < 0.80:
		l.do(ctx, c, l.newRequest(c, kindTransfer, 10_000+5_000*c.rng.Int64N(5), phase), phase)
	default:
		l.do(ctx, c, l.newRequest(c, kindWithdrawal, 50_000+10_000*c.rng.Int64N(5), phase), phase)
	}
}

// do sends r until it is answered or ctx ends, and reports whether it was
// answered.
func (l *load) do(ctx context.Context, c *client, r *request, phase int) bool {
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		a, body := l.exchange(c, r, phase, false)
		if settled(a) {
			r.mu.Lock()
			r.status, r.code = a.status, a.code
			if a.status < 300 {
				r.id = idOf(body)
			}
			r.mu.Unlock()
			c.done = append(c.done, r)
			return true
		}
		if !periodic.Sleep(ctx, backoff) {
			return false
		}
	}
}

// replay sends an answered request again, with its key and body, and
// checks that it gets the same answer.
func (l *load) replay(ctx context.Context, c *client, r *request, phase int) {
	wantStatus, wantID, wantCode := r.answer()
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		a, body := l.exchange(c, r, phase, true)
		if settled(a) {
			var id string
			if a.status < 300 {
				id = idOf(body)
			}
			if a.status != wantStatus || id != wantID || a.code != wantCode {
				l.mu.Lock()
				l.replayMismatches = append(l.replayMismatches, fmt.Sprintf("%s %s: first %d %s%s, replay %d %s%s",
					r.kind, r.key, wantStatus, wantID, wantCode, a.status, id, a.code))
				l.mu.Unlock()
			}
			return
		}
		if !periodic.Sleep(ctx, backoff) {
			return
		}
	}
}

// settled reports whether an attempt's answer is final: an HTTP answer
// that is neither a 5xx, nor a 409 "still in progress", nor a 429.
func settled(a attempt) bool {
	switch {
	case a.status == 0, a.status >= 500, a.status == http.StatusTooManyRequests:
		return false
	case a.status == http.StatusConflict && a.code == "IDEMPOTENCY_IN_PROGRESS":
		return false
	}
	return true
}

// exchange sends one attempt of r to a live replica and records it.
func (l *load) exchange(c *client, r *request, phase int, replay bool) (attempt, []byte) {
	gws := l.s.live()
	if len(gws) == 0 {
		gws = l.s.gateways // every replica is down: the attempt is refused
	}
	gi := c.replica % len(gws)
	g := gws[gi]
	replicaIdx := int(g.name[0] - 'A')
	a := attempt{phase: phase, replay: replay, start: time.Now()}
	l.inflight[r.kind].Add(1)
	l.inflightReplica[replicaIdx].Add(1)
	var body []byte
	req, err := http.NewRequest(http.MethodPost, g.URL()+paths[r.kind], bytes.NewReader(r.body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.user.token)
		req.Header.Set("Idempotency-Key", r.key)
		var resp *http.Response
		if resp, err = c.http.Do(req); err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				a.status = resp.StatusCode
			}
		}
	}
	l.inflight[r.kind].Add(-1)
	l.inflightReplica[replicaIdx].Add(-1)
	a.end = time.Now()
	if err != nil {
		a.err = "conn"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			a.err = "timeout"
		}
		// The next attempt goes to another replica, if there is one.
		c.replica++
	} else if a.status >= 400 {
		a.code = codeOf(body)
	}
	l.mu.Lock()
	l.attempts = append(l.attempts, a)
	l.mu.Unlock()
	return a, body
}

// resolve sends every request that was never answered (the load stopped
// while it was being retried) until it is, for up to timeout.
func (l *load) resolve(phase int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l.mu.Lock()
	var open []*request
	for _, r := range l.requests {
		if st, _, _ := r.answer(); st == 0 {
			open = append(open, r)
		}
	}
	l.mu.Unlock()
	for _, r := range open {
		if !l.do(ctx, l.clients[r.client], r, phase) {
			return fmt.Errorf("%s %s still has no answer after %s", r.kind, r.key, timeout)
		}
	}
	return nil
}

// inflightTotal is the number of attempts under way.
func (l *load) inflightTotal() int64 {
	var n int64
	for _, v := range l.inflight {
		n += v.Load()
	}
	return n
}

func idOf(body []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &v)
	return v.ID
}

func codeOf(body []byte) string {
	var v struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Code
}
