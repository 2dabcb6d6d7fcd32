package moneytest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/withdraw"
)

// record is what the clients saw: every movement answered 2xx, and every
// refusal for insufficient funds.
type record struct {
	mu            sync.Mutex
	topups        map[string]int64 // id → amount
	transfers     map[string]int64
	withdrawals   map[string]int64
	insufficient  atomic.Int64
	replays       atomic.Int64
	serverErrors  []string
	unexpected    []string
	settledOK     map[string]int64
	settledFailed map[string]int64
}

func newRecord() *record {
	return &record{topups: map[string]int64{}, transfers: map[string]int64{}, withdrawals: map[string]int64{},
		settledOK: map[string]int64{}, settledFailed: map[string]int64{}}
}

func (r *record) fail(list *[]string, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(*list) < 20 {
		*list = append(*list, fmt.Sprintf(format, args...))
	}
}

type op struct {
	path   string
	body   map[string]any
	amount int64
	into   func(*record) map[string]int64
}

// send performs op with a fresh key and, sometimes, retries it with the
// same key: the retry must answer exactly the same and move nothing.
func send(t *testing.T, e *apptest.Env, rec *record, u apptest.User, o op, retry bool, settle chan<- string) {
	key := uuid.NewString()
	resp := e.Post(t, o.path, u.Token, o.body, "Idempotency-Key", key)
	if retry {
		again := e.Post(t, o.path, u.Token, o.body, "Idempotency-Key", key)
		if again.Status != resp.Status || string(again.Body) != string(resp.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
			rec.fail(&rec.unexpected, "retry of %s answered %d %s, first %d %s", o.path, again.Status, again.Body, resp.Status, resp.Body)
		}
		rec.replays.Add(1)
	}
	switch {
	case resp.Status >= 500:
		rec.fail(&rec.serverErrors, "%s: %d %s", o.path, resp.Status, resp.Body)
	case resp.Status == http.StatusCreated:
		var body struct{ ID string }
		resp.JSON(t, &body)
		rec.mu.Lock()
		m := o.into(rec)
		if _, dup := m[body.ID]; dup {
			rec.unexpected = append(rec.unexpected, "id answered twice: "+body.ID)
		}
		m[body.ID] = o.amount
		rec.mu.Unlock()
		if o.path == "/v1/withdrawals" && settle != nil {
			settle <- body.ID
		}
		// The customer pays a top-up at once; the provider's callback
		// credits the wallet while the load runs.
		if o.path == "/v1/topups" {
			if _, err := e.Provider.Sandbox.Pay(body.ID, 0, ""); err != nil {
				rec.fail(&rec.unexpected, "pay top-up %s: %v", body.ID, err)
			}
		}
	case resp.Status == http.StatusUnprocessableEntity && resp.Code() == "INSUFFICIENT_FUNDS":
		rec.insufficient.Add(1)
	default:
		rec.fail(&rec.unexpected, "%s %v: %d %s", o.path, o.body, resp.Status, resp.Body)
	}
}

const (
	usersN  = 12
	clients = 32
)

// load is one application under concurrent clients, and what they saw.
type load struct {
	e   *apptest.Env
	us  []apptest.User
	rec *record
}

func startLoad(t *testing.T, opts ...apptest.Option) *load {
	t.Helper()
	opts = append(opts, apptest.WithConfig(func(c *config.Config) { c.Database.MaxConns = 40 }))
	l := &load{e: apptest.Start(t, opts...), us: make([]apptest.User, usersN), rec: newRecord()}
	for i := range l.us {
		l.us[i] = l.e.NewUser(t)
	}
	return l
}

func (l *load) topupOp() op {
	amt := int64(10000 + rand.IntN(90)*1000)
	return op{"/v1/topups", map[string]any{"amount": amt, "method": "ovo"}, amt, func(r *record) map[string]int64 { return r.topups }}
}

func (l *load) transferOp(from int) op {
	to := rand.IntN(usersN - 1)
	if to >= from {
		to++
	}
	amt := int64(10000 + rand.IntN(50)*1000)
	return op{"/v1/transfers", map[string]any{"to": l.us[to].AccountNumber, "amount": amt}, amt, func(r *record) map[string]int64 { return r.transfers }}
}

func (l *load) withdrawOp() op {
	amt := int64(50000 + rand.IntN(50)*1000)
	return op{"/v1/withdrawals", map[string]any{"amount": amt, "bank_code": "BCA", "bank_account_number": "1234567890",
		"bank_account_name": "Load Test"}, amt, func(r *record) map[string]int64 { return r.withdrawals }}
}

// run sends n operations from the clients, each made by next, and
// retries one in ten with its key.
func (l *load) run(t *testing.T, n int64, next func() (from int, o op), settle chan<- string) {
	var sent atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for sent.Add(1) <= n {
				from, o := next()
				send(t, l.e, l.rec, l.us[from], o, rand.IntN(10) == 0, settle)
			}
		})
	}
	wg.Wait()
}

// TestConcurrentMoneyMovementsReconcile fires 5,200 mixed top-ups,
// transfers and withdrawals from 32 concurrent clients across 12 users,
// pays the top-ups at the provider (whose callbacks credit them) and
// settles withdrawals while they run; some requests are retried with
// their Idempotency-Key. Afterwards the ledger verifies, money is
// conserved, no answer was a 5xx, and every 2xx movement is in the
// database exactly once.
func TestConcurrentMoneyMovementsReconcile(t *testing.T) {
	t.Parallel()
	var wsvc *withdraw.Service
	l := startLoad(t, apptest.WithFx(fx.Populate(&wsvc)))
	rec := l.rec

	// Withdrawals are settled while the load runs: 70% paid out, 30%
	// failed (hold released).
	settle := make(chan string, 1024)
	var settlers sync.WaitGroup
	for range 2 {
		settlers.Go(func() {
			for id := range settle {
				ok := rand.IntN(10) < 7
				w, err := wsvc.Settle(context.Background(), uuid.MustParse(id), withdraw.Outcome{Succeeded: ok, Reason: "simulated"})
				if err != nil {
					rec.fail(&rec.unexpected, "settle %s: %v", id, err)
					continue
				}
				rec.mu.Lock()
				if ok {
					rec.settledOK[id] = w.Amount
				} else {
					rec.settledFailed[id] = w.Amount
				}
				rec.mu.Unlock()
			}
		})
	}
	const mixedOps = 5200
	l.run(t, mixedOps, func() (int, op) {
		from := rand.IntN(usersN)
		switch n := rand.IntN(100); {
		case n < 35:
			return from, l.topupOp()
		case n < 80:
			return from, l.transferOp(from)
		default:
			return from, l.withdrawOp()
		}
	}, settle)
	close(settle)
	settlers.Wait()
	l.check(t, mixedOps)
	if len(rec.settledOK) == 0 || len(rec.settledFailed) == 0 {
		t.Fatalf("settled %d paid and %d failed: the run did not exercise both", len(rec.settledOK), len(rec.settledFailed))
	}
}

// TestHotAccountReconciles: every transfer of 32 concurrent clients leaves
// one wallet, which starts with a known balance and runs dry part-way
// through; some requests are retried with their Idempotency-Key. The same
// checks as the mixed run hold, and some transfers were refused for
// insufficient funds.
func TestHotAccountReconciles(t *testing.T) {
	t.Parallel()
	l := startLoad(t)
	for range 10 {
		l.rec.topups[l.e.Fund(t, l.us[0], 2000000)] = 2000000
	}
	const hotOps = 1200
	l.run(t, hotOps, func() (int, op) { return 0, l.transferOp(0) }, nil)
	l.check(t, hotOps+10)
	if l.rec.insufficient.Load() == 0 {
		t.Fatal("no request ran out of funds: the hot-account run did not exercise the refusal")
	}
}

// check asserts what must hold after a run of at least requests answers.
func (l *load) check(t *testing.T, requests int) {
	t.Helper()
	e, rec, us := l.e, l.rec, l.us
	if len(rec.serverErrors) > 0 {
		t.Fatalf("5xx answers: %v", rec.serverErrors)
	}
	if len(rec.unexpected) > 0 {
		t.Fatalf("unexpected answers: %v", rec.unexpected)
	}
	t.Logf("top-ups %d, transfers %d, withdrawals %d (paid %d, failed %d), insufficient funds %d, replays %d",
		len(rec.topups), len(rec.transfers), len(rec.withdrawals), len(rec.settledOK), len(rec.settledFailed),
		rec.insufficient.Load(), rec.replays.Load())
	if len(rec.topups)+len(rec.transfers)+len(rec.withdrawals)+int(rec.insufficient.Load()) < requests {
		t.Fatal("fewer answers than requests")
	}
	// Every top-up was paid: wait for the provider's callbacks to have
	// credited the last of them.
	var settled int
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM topup_settlements WHERE status = 'succeeded'").Scan(&settled); err != nil {
			t.Fatal(err)
		}
		if settled >= len(rec.topups) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d paid top-ups credited", settled, len(rec.topups))
		}
	}

	admin := e.Admin(t)
	v := e.Get(t, "/v1/admin/ledger/verify", admin.Token)
	if v.Status != 200 || v.Map(t)["ok"] != true {
		t.Fatalf("ledger verify: %d %s", v.Status, v.Body)
	}

	ctx := context.Background()
	ids := func(sql string) []string {
		rows, err := e.Pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	keys := func(m map[string]int64) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	// Every 2xx movement exists exactly once, and nothing else does: the
	// refusals wrote nothing.
	for _, c := range []struct {
		name string
		sql  string
		want map[string]int64
	}{
		{"top-ups", "SELECT id::text FROM topups", rec.topups},
		{"transfers", "SELECT id::text FROM transfers", rec.transfers},
		{"withdrawals", "SELECT id::text FROM withdrawals", rec.withdrawals},
		{"top-up ledger transactions", "SELECT reference FROM ledger_transactions WHERE kind = 'topup'", rec.topups},
		{"transfer ledger transactions", "SELECT reference FROM ledger_transactions WHERE kind = 'transfer'", rec.transfers},
		{"withdrawal holds", "SELECT substr(reference, 12) FROM ledger_holds", rec.withdrawals},
	} {
		if got := ids(c.sql); !slices.Equal(got, keys(c.want)) {
			t.Fatalf("%s in the database (%d) differ from the 2xx answers (%d)", c.name, len(got), len(c.want))
		}
	}

	// Money is conserved: what the wallets hold is what came in minus what
	// was paid out.
	sum := func(m map[string]int64) (s int64) {
		for _, v := range m {
			s += v
		}
		return s
	}
	var wallets int64
	if err := e.Pool.QueryRow(ctx, "SELECT coalesce(sum(balance), 0) FROM ledger_accounts WHERE kind = 'wallet'").Scan(&wallets); err != nil {
		t.Fatal(err)
	}
	if want := sum(rec.topups) - sum(rec.settledOK); wallets != want {
		t.Fatalf("wallets hold %d, want top-ups %d - paid withdrawals %d = %d", wallets, sum(rec.topups), sum(rec.settledOK), want)
	}
	var clientBalances int64
	for _, u := range us {
		var s struct{ Balance, Held, Available int64 }
		e.Get(t, "/v1/saldo", u.Token).JSON(t, &s)
		if s.Available < 0 || s.Balance < 0 || s.Available != s.Balance-s.Held {
			t.Fatalf("saldo of %s: %+v", u.Email, s)
		}
		clientBalances += s.Balance
	}
	if clientBalances != wallets {
		t.Fatalf("saldos add up to %d, wallets hold %d", clientBalances, wallets)
	}
}
