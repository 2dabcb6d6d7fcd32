package transfer_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/config"
	transferpkg "github.com/paygate/paygate/internal/transfer"
)

// TestABatchWithFailingTransfersCommitsTheOthers sends ten transfers at
// once from a wallet that can pay seven, with a batch window wide enough
// to book them together: seven are booked and answered 201, three are
// refused with 422 INSUFFICIENT_FUNDS (their refusal stored under their
// key), the metrics show one batch of ten, and the ledger verifies.
func TestABatchWithFailingTransfersCommitsTheOthers(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Money.BatchWindow = 100 * time.Millisecond }))
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 70000)
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	codes := make([]string, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := transfer(t, e, alice, bob.AccountNumber, 10000, fmt.Sprint("b", i))
			statuses[i], codes[i] = r.Status, r.Code()
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for i, s := range statuses {
		switch {
		case s == 201:
			ok++
		case s == 422 && codes[i] == "INSUFFICIENT_FUNDS":
			refused++
		default:
			t.Fatalf("transfer %d: %d %s", i, s, codes[i])
		}
	}
	if ok != 7 || refused != 3 {
		t.Fatalf("%d booked, %d refused; want 7 and 3", ok, refused)
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 0 || b != 70000 {
		t.Fatalf("balances %d/%d", a, b)
	}
	metrics := string(e.Metrics(t))
	if !strings.Contains(metrics, `paygate_batch_size_bucket{committer="transfer",le="8"} 0`) ||
		!strings.Contains(metrics, `paygate_batch_size_sum{committer="transfer"} 10`) {
		t.Fatalf("not one batch of ten:\n%s", apptest.Lines(metrics, "paygate_batch_size"))
	}
	// A refused one replays its refusal; a booked one its 201.
	for i, s := range statuses {
		r := transfer(t, e, alice, bob.AccountNumber, 10000, fmt.Sprint("b", i))
		if r.Status != s || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay of %d: %d, want %d replayed", i, r.Status, s)
		}
	}
	if n := count(t, e, "SELECT count(*) FROM outbox WHERE event_type = 'paygate.transfer.succeeded'"); n != 7 {
		t.Fatalf("%d transfer events, want 7", n)
	}
	admin := e.Admin(t)
	if v := e.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}
}

// TestACrashInTheMiddleOfABatchLeavesNothing books a batch of transfers
// in a transaction that ends in a crash before its commit: none of them
// is anywhere (no record, ledger transaction, event or key), and the same
// requests, sent again with the same keys, are each booked once.
func TestACrashInTheMiddleOfABatchLeavesNothing(t *testing.T) {
	t.Parallel()
	e, svc, alice, bob := withService(t)
	callers, keys, reqs := sameTransfers(alice, bob, 5, "crash")
	booked, err := transferpkg.BookThenCrash(context.Background(), svc, callers, keys, reqs)
	if err != nil || booked != 5 {
		t.Fatalf("the batch booked %d before the crash (%v), want 5", booked, err)
	}
	for table, sql := range map[string]string{
		"transfers":             "SELECT count(*) FROM transfers",
		"ledger transactions":   "SELECT count(*) FROM ledger_transactions WHERE kind = 'transfer'",
		"events":                "SELECT count(*) FROM outbox WHERE event_type = 'paygate.transfer.succeeded'",
		"idempotency responses": "SELECT count(*) FROM idempotency_keys WHERE idem_key LIKE 'crash%'",
	} {
		if n := count(t, e, sql); n != 0 {
			t.Fatalf("%d %s left by a crashed batch", n, table)
		}
	}
	if a := balance(t, e, alice); a != 100000 {
		t.Fatalf("alice's balance after a crashed batch: %d", a)
	}
	for i := range 5 {
		if r := transfer(t, e, alice, bob.AccountNumber, 10000, keys[i]); r.Status != 201 {
			t.Fatalf("after the crash, transfer %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := count(t, e, "SELECT count(*) FROM transfers"); n != 5 {
		t.Fatalf("%d transfers after the retries, want 5", n)
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 50000 || b != 50000 {
		t.Fatalf("balances %d/%d", a, b)
	}
}

// TestTwoReplicasBatchingAtOnceStayConsistent runs two gateways on one
// database and broker, both booking transfers in batches, and sends 240
// transfers among eight users through both at once, some of them
// overdrawing: every 201 is in the ledger exactly once, nothing else is,
// money is conserved, and the ledger verifies.
func TestTwoReplicasBatchingAtOnceStayConsistent(t *testing.T) {
	t.Parallel()
	window := func(c *config.Config) { c.Money.BatchWindow, c.Money.BatchMaxSize = 2*time.Millisecond, 16 }
	a := apptest.Start(t, apptest.WithConfig(window))
	b := apptest.StartWithBroker(t, a.Broker, apptest.WithConfig(window), apptest.WithConfig(func(c *config.Config) {
		c.Database.URL, c.Auth.JWTPrivateKey = a.Config.Database.URL, a.Config.Auth.JWTPrivateKey
	}))
	var us []apptest.User
	for range 8 {
		u := a.NewUser(t)
		fund(t, a, u, 100000)
		us = append(us, u)
	}
	// A ninth user holds nothing and sends every twelfth transfer: those
	// are refused in the middle of batches whatever the others do.
	poor := a.NewUser(t)
	var mu sync.Mutex
	booked := map[string]bool{}
	refused := 0
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range 240 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			e := a
			if i%2 == 1 {
				e = b
			}
			from, to := us[i%8], us[(i*3+1)%8]
			if from.ID == to.ID {
				to = us[(i+1)%8]
			}
			if i%12 == 5 {
				from = poor
			}
			r := transfer(t, e, from, to.AccountNumber, int64(10000+(i%5)*7000), fmt.Sprint("r", i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 201:
				booked[r.Map(t)["id"].(string)] = true
			case r.Status == 422 && r.Code() == "INSUFFICIENT_FUNDS":
				refused++
			default:
				t.Errorf("transfer %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if len(booked)+refused != 240 || len(booked) == 0 || refused < 20 {
		t.Fatalf("%d booked, %d refused", len(booked), refused)
	}
	rows, err := a.Pool.Query(context.Background(), "SELECT id::text FROM transfers")
	if err != nil {
		t.Fatal(err)
	}
	inDB := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		inDB[id]++
	}
	rows.Close()
	for id := range booked {
		if inDB[id] != 1 {
			t.Fatalf("booked transfer %s is in the database %d times", id, inDB[id])
		}
	}
	if len(inDB) != len(booked) {
		t.Fatalf("%d transfers in the database, %d answered 201", len(inDB), len(booked))
	}
	var total int64
	for _, u := range us {
		total += balance(t, a, u)
	}
	if total != 800000 {
		t.Fatalf("wallets hold %d, want 800000", total)
	}
	admin := a.Admin(t)
	if v := a.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}
	// Both replicas batched.
	for name, e := range map[string]*apptest.Env{"a": a, "b": b} {
		if m := string(e.Metrics(t)); !strings.Contains(m, `paygate_batch_size_count{committer="transfer"}`) {
			t.Fatalf("replica %s booked no batch", name)
		}
	}
}

// TestABatchTakesThreeRoundTrips books a batch of one transfer and a
// batch of five over a connection that records round trips: both take the
// same three, whatever the batch's size: BEGIN with the keys' locks and
// the parties found and share-locked; the stored responses with the
// wallets locked (from which every other batch touching them waits); every
// write with the COMMIT.
func TestABatchTakesThreeRoundTrips(t *testing.T) {
	t.Parallel()
	e, svc, alice, bob := withService(t)
	book := func(n int, prefix string) []string {
		callers, keys, reqs := sameTransfers(alice, bob, n, prefix)
		trips, booked, err := transferpkg.BookTracing(context.Background(), svc, e.Config.Database.URL, callers, keys, reqs)
		if err != nil || booked != n {
			t.Fatalf("a batch of %d booked %d (%v)", n, booked, err)
		}
		return trips
	}
	one, five := book(1, "one"), book(5, "five")
	if !slices.Equal(one, five) {
		t.Fatalf("a batch of 1 and a batch of 5 took different round trips:\n%q\n%q", one, five)
	}
	want := []string{
		"batch:begin,LockIdempotencyKeys,LockNamedUsers",
		"batch:CustomPlansOn,GetIdempotencyKeys,CustomPlansOff,LockWallets",
		"batch:InsertTransactions,InsertBatchEntries,UpdateBatchBalances,InsertTransfers,EnqueueEvents,InsertIdempotencyKeys,commit",
	}
	if !slices.Equal(five, want) {
		t.Fatalf("round trips:\n%q\nwant\n%q", five, want)
	}
	if a, b := balance(t, e, alice), balance(t, e, bob); a != 40000 || b != 60000 {
		t.Fatalf("balances %d/%d after six transfers of 10000", a, b)
	}
	admin := e.Admin(t)
	if v := e.Get(t, "/v1/admin/ledger/verify", admin.Token); v.Map(t)["ok"] != true {
		t.Fatalf("verify: %s", v.Body)
	}

	// A service with no relay of its own to wake (built without the
	// outbox module) has its commit NOTIFY every relay instead.
	svc.WakeAfterCommit(nil)
	quiet := slices.Clone(want)
	quiet[2] = strings.Replace(quiet[2], "EnqueueEvents,", "EnqueueEvents,NotifyOutbox,", 1)
	if trips := book(1, "quiet"); !slices.Equal(trips, quiet) {
		t.Fatalf("round trips without a relay:\n%q\nwant\n%q", trips, quiet)
	}
}

// withService starts an application, with its transfer service, and two
// users: alice, funded with 100,000, and bob.
func withService(t *testing.T) (*apptest.Env, *transferpkg.Service, apptest.User, apptest.User) {
	t.Helper()
	var svc *transferpkg.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 100000)
	return e, svc, alice, bob
}

// sameTransfers makes the items of a batch of n transfers of 10,000 from
// from to to, under the keys prefix0, prefix1, ...
func sameTransfers(from, to apptest.User, n int, prefix string) ([]authn.Principal, []string, []transferpkg.CreateRequest) {
	caller := authn.Principal{UserID: uuid.MustParse(from.ID), Role: authn.RoleUser}
	callers, keys, reqs := make([]authn.Principal, n), make([]string, n), make([]transferpkg.CreateRequest, n)
	for i := range n {
		callers[i], keys[i] = caller, fmt.Sprint(prefix, i)
		reqs[i] = transferpkg.CreateRequest{To: to.AccountNumber, Amount: 10000}
	}
	return callers, keys, reqs
}

// TestABatchWakesItsRelayAfterTheCommit: a batch sends no NOTIFY (that
// would hold PostgreSQL's notify lock through its commit's WAL flush, so
// that concurrent batches could not share one); it wakes this process's
// relay once committed, so its event is published at once although the
// relay polls only hourly here.
func TestABatchWakesItsRelayAfterTheCommit(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) { c.Outbox.PollInterval = time.Hour }))
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 20000)
	r := e.Post(t, "/v1/transfers", alice.Token, map[string]any{"to": bob.AccountNumber, "amount": 10000}, "Idempotency-Key", "wake-1")
	if r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	subject := fmt.Sprint("transfers/", r.Map(t)["id"])
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var sent bool
		if err := e.Pool.QueryRow(context.Background(), "SELECT sent_at IS NOT NULL FROM outbox WHERE subject = $1", subject).Scan(&sent); err != nil {
			t.Fatal(err)
		}
		if sent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event of %s is not published 5 s after the transfer", subject)
		}
	}
}
