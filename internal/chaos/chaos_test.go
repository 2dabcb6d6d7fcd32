package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// variant is how hard and how long the suite pushes.
type variant struct {
	name    string
	clients int
	// think is the pause of a client between two requests (half to one
	// and a half times it).
	think time.Duration
	// warm is the load before a fault strikes; outage how long the
	// broker and SMTP stay away; after the load after the fault ends.
	warm, outage, after time.Duration
	// smtpTimeout is the gateway's PAYGATE_SMTP_TIMEOUT, 0 for its
	// default. A mail whose conversation a killed gateway left behind
	// waits five of them (notify.ClaimLease) before it is sent again.
	smtpTimeout time.Duration
	// sessionTimeout is the gateway's PAYGATE_KAFKA_CONSUMER_SESSION_TIMEOUT,
	// 0 for its default. After a kill -9 the broker waits for the dead
	// member's session to end before the restarted gateway's consumers
	// get their partitions: a shorter session shortens fault a's lag. 6 s
	// is the least a broker allows by default (group.min.session.timeout.ms).
	sessionTimeout time.Duration
	// faults are the letters of the faults the variant runs.
	faults string
}

// The variants: the short one runs in make test (next to every other
// package's tests, under -race, on two cores), the long one in make chaos.
var (
	// The short variant leaves out fault e (two replicas, one killed), the
	// longest, to keep make test's wall time; make chaos runs it, and
	// PAYGATE_CHAOS_FAULTS=e runs it alone.
	short = variant{name: "short", clients: 8, think: 20 * time.Millisecond,
		warm: time.Second, outage: 2 * time.Second, after: time.Second, smtpTimeout: 2 * time.Second,
		sessionTimeout: 6 * time.Second, faults: "abcd"}
	long = variant{name: "long", clients: 32, think: 10 * time.Millisecond,
		warm: 10 * time.Second, outage: 20 * time.Second, after: 10 * time.Second, faults: "abcde"}
)

// EnvVariant selects the long variant ("long"), as make chaos does; the
// short one runs otherwise.
const EnvVariant = "PAYGATE_CHAOS"

// EnvKeepLogs, when set, keeps the processes' logs (they are kept
// anyway when the suite fails).
const EnvKeepLogs = "PAYGATE_CHAOS_KEEP_LOGS"

// EnvFaults, when set, names the faults to run by their letters (e.g.
// "ce"), in their usual order: for chasing one fault.
const EnvFaults = "PAYGATE_CHAOS_FAULTS"

// lagDeadline is how soon after a fault ends consumer lag and the outbox
// must be back to 0.
const lagDeadline = 60 * time.Second

// TestChaos runs a steady mixed load of clients (top-ups paid by the
// sandbox provider, transfers, withdrawals paid out through it, and 10 %
// replays of earlier requests under their Idempotency-Key) against real
// processes, and strikes each fault in turn while the load runs:
//
//   - (a) kill -9 the gateway, then start it again. It strikes between a
//     payout request and its settlement: once the database holds a
//     withdrawal whose payout the provider accepted (withdrawal_payouts)
//     and that has not settled, with client requests in flight. The
//     provider's payout callbacks then meet a dead gateway and are
//     retried; the payout processor's uncommitted records are redelivered.
//   - (b) restart PostgreSQL. It strikes inside a transfer: once
//     pg_stat_activity shows an open transaction whose statement is one of
//     a transfer's own (resolving the recipient, locking the two users,
//     inserting the transfer) while a transfer request is in flight, the
//     postmaster gets SIGQUIT (pg_ctl stop -m immediate) straight from the
//     test; open transactions are lost and the restart runs crash
//     recovery.
//   - (c) stop the broker for the outage. It strikes while a relay batch
//     is being published and acknowledged: once pg_locks shows the outbox
//     relay's batch lock held with events pending, devkafka gets SIGKILL;
//     it comes back on the same port and data directory.
//   - (d) stop SMTP for the outage. It strikes mid-conversation: once the
//     SMTP server has a session open, the listener and every open
//     conversation are cut (smtptest.Server.Stop).
//   - (e) run two gateway replicas against the same database and broker,
//     and kill one with SIGKILL while it has client requests in flight.
//
// A client that gets no HTTP answer, a 5xx or a 409 "in progress" retries
// the very same request (key and body) until it is answered, as the API
// tells clients to; the load's end sends every request still unanswered
// until it is. After each fault, once the load stopped, it checks:
//
//   - every 2xx a client saw is in the ledger exactly once (a transfer's
//     ledger transaction, a top-up's credit once the provider's callback
//     came, a withdrawal's capture and exactly one payout at the
//     provider), each wallet's balance is what its client was told, and
//     there is no movement, provider payment or payout no client was told
//     about;
//   - no 5xx and no connection error outside the fault window (from the
//     strike until every live replica answers /readyz again); those
//     inside it are counted apart, and none of them is a 500 (a fault
//     the gateway did not recognise: the client is owed a 503);
//   - every replay got its original's answer;
//   - `paygate ledger verify` and `paygate reconcile` pass;
//   - every outbox event was published and none parked, and every event is
//     mailed exactly once per recipient (its Message-ID and envelope
//     recipient), with nothing dead-lettered. The one exception is the one
//     docs/events.md states: a mail whose conversation a fault cut (a
//     killed gateway, a stopped SMTP server) after the SMTP server accepted
//     it and before the gateway recorded that is sent again, under the same
//     Message-ID; the suite allows a second copy only of a mail whose first
//     copy arrived just before such a strike, and counts it under dup;
//   - consumer lag and the outbox are back to 0 within 60 s of the end of
//     the fault (with the default SMTP timeout, a mail a killed gateway
//     left claimed waits 50 s: notify.ClaimLease).
//
// It prints a table: per fault, what was in flight when it struck, the
// requests and their answers by kind, the recovery times, and the mails
// expected and sent. The short variant (8 clients, 2 s outages, a 2 s SMTP
// timeout so that a killed gateway's claimed mail waits 10 s) runs in make
// test; PAYGATE_CHAOS=long (make chaos) runs 32 clients and 20 s outages
// with the gateway's defaults.
func TestChaos(t *testing.T) {
	v := short
	if os.Getenv(EnvVariant) == "long" {
		v = long
	}
	began := time.Now()
	s := newStack(t, v.smtpTimeout, v.sessionTimeout)
	l := newLoad(s)
	su := &suite{t: t, s: s, l: l, v: v, lag: newLagProbe(t, s)}
	// The table of the faults run so far, also when one stops the suite.
	t.Cleanup(func() {
		t.Logf("chaos %s (%s in all):\n%s", v.name, time.Since(began).Round(time.Second), table(su.rows))
	})

	if err := l.register(v.clients); err != nil {
		t.Fatalf("register the clients: %v", err)
	}
	su.fund()
	t.Logf("chaos %s: set-up (build, PostgreSQL, broker, gateway, %d funded clients) took %s", v.name, v.clients,
		time.Since(began).Round(100*time.Millisecond))

	only := v.faults
	if env := os.Getenv(EnvFaults); env != "" {
		only = env
	}
	for i, f := range faults(su) {
		if only != "" && !strings.Contains(only, f.name[:1]) {
			continue
		}
		row := su.phase(i+1, f)
		su.rows = append(su.rows, row)
		t.Logf("chaos %s: %s done: %s", v.name, f.name, row.brief())
	}
}

// fault is one fault of the suite.
type fault struct {
	name string
	// setup runs before the phase's load starts.
	setup func()
	// strike waits for the moment the fault must strike in, strikes, and
	// returns when it struck and what was in flight.
	strike func() (time.Time, string)
	// outage says whether the fault lasts the variant's outage before
	// restore ends it.
	outage bool
	// cutsMail says whether the fault cuts SMTP conversations.
	cutsMail bool
	restore  func()
}

// faults are the suite's faults, in order.
func faults(su *suite) []fault {
	s, l := su.s, su.l
	return []fault{
		{
			name:     "a: kill -9 gateway",
			cutsMail: true,
			strike: func() (time.Time, string) {
				return su.strikeWhen(func(ctx context.Context) (bool, string) {
					var n int
					err := s.pool.QueryRow(ctx, `SELECT count(*) FROM withdrawal_payouts p
WHERE NOT EXISTS (SELECT 1 FROM withdrawal_settlements s WHERE s.withdrawal_id = p.withdrawal_id)`).Scan(&n)
					in := l.inflightTotal()
					return err == nil && n > 0 && in > 0, fmt.Sprintf("%d payouts accepted, unsettled; %d requests in flight", n, in)
				}, func() { s.killGateway(s.gateways[0]) })
			},
			restore: func() { s.startGateway(s.gateways[0]) },
		},
		{
			name: "b: restart PostgreSQL",
			strike: func() (time.Time, string) {
				deadline := time.Now().Add(15 * time.Second)
				return su.strikeWhen(func(ctx context.Context) (bool, string) {
					var open int
					var names string
					err := s.pool.QueryRow(ctx, `SELECT count(*),
  coalesce(string_agg(DISTINCT substring(query FROM '-- name: (\w+)'), ','), '')
FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND xact_start IS NOT NULL`).Scan(&open, &names)
					inT := l.inflight[kindTransfer].Load()
					transfer := strings.Contains(names, "GetUserByAccountNumber") || strings.Contains(names, "LockUsers") ||
						strings.Contains(names, "InsertTransfer")
					// A transfer's own statement, else (after 15 s) any
					// open transaction while a transfer is in flight.
					ok := err == nil && open > 0 && inT > 0 && (transfer || time.Now().After(deadline))
					return ok, fmt.Sprintf("%d transactions open (%s); %d transfers in flight", open, names, inT)
				}, s.pg.Crash)
			},
			restore: s.pg.Start,
		},
		{
			name: "c: broker down",
			strike: func() (time.Time, string) {
				return su.strikeWhen(func(ctx context.Context) (bool, string) {
					var held bool
					var pending int
					err := s.pool.QueryRow(ctx, `SELECT
  EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2 AND objsubid = 1),
  (SELECT count(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL)`,
						uint32(relayLockKey>>32), uint32(relayLockKey&0xffffffff)).Scan(&held, &pending)
					return err == nil && held && pending > 0, fmt.Sprintf("relay batch in flight; %d events pending", pending)
				}, s.killBroker)
			},
			outage:  true,
			restore: s.startBroker,
		},
		{
			name:     "d: SMTP down",
			cutsMail: true,
			strike: func() (time.Time, string) {
				return su.strikeWhen(func(context.Context) (bool, string) {
					// Mid-message, not merely connected: the gateway keeps
					// idle connections to the relay between mails.
					n := s.smtp.InMessage()
					return n > 0, fmt.Sprintf("%d SMTP conversations mid-message", n)
				}, func() { _ = s.smtp.Stop() })
			},
			outage: true,
			restore: func() {
				if err := s.smtp.Restart(); err != nil {
					t := su.t
					t.Fatal(err)
				}
			},
		},
		{
			name:     "e: 2 replicas, kill 1",
			cutsMail: true,
			setup: func() {
				s.addGateway()
				// Killed only once it has joined its groups: see
				// waitGroupsJoined for the test broker's defect that a
				// kill mid-join would hit instead.
				su.lag.waitGroupsJoined(su.t, 2)
			},
			strike: func() (time.Time, string) {
				return su.strikeWhen(func(context.Context) (bool, string) {
					n := l.inflightReplica[1].Load()
					return n >= 2, fmt.Sprintf("%d requests in flight on replica B", n)
				}, func() { s.killGateway(s.gateways[1]) })
			},
			restore: func() {},
		},
	}
}

// relayLockKey is the advisory lock the outbox relay holds while it
// publishes a batch (internal/platform/outbox: "paygrely").
const relayLockKey int64 = 0x7061796772656c79

// suite is a run of the suite.
type suite struct {
	t    *testing.T
	s    *stack
	l    *load
	v    variant
	lag  *lagProbe
	rows []row
	// seen are the violations already reported, so that a later phase's
	// cumulative checks do not report them again.
	seen map[string]bool
	// cuts are the moments faults cut SMTP conversations: a gateway
	// killed, the SMTP server stopped.
	cuts []time.Time
	// outboxDone is the last outbox id of the previous phase.
	outboxDone int64
}

// strikeWhen polls cond every millisecond and strikes the moment it
// holds, returning the moment it struck; after 30 s it fails the test, since a fault that cannot strike
// mid-flight is not the fault the suite is meant to make.
func (su *suite) strikeWhen(cond func(context.Context) (bool, string), strike func()) (time.Time, string) {
	su.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var what string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, w := cond(ctx)
		cancel()
		what = w
		if ok {
			at := time.Now()
			strike()
			return at, what
		}
		if time.Now().After(deadline) {
			su.t.Fatalf("the fault found nothing in flight to strike in 30 s (last: %s)", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fund tops every client up through the provider before the faults, and
// waits until the top-ups are credited.
func (su *suite) fund() {
	su.t.Helper()
	for _, c := range su.l.clients {
		r := su.l.newRequest(c, kindTopUp, 5_000_000, 0)
		if !su.l.do(context.Background(), c, r, 0) {
			su.t.Fatal("funding top-up not answered")
		}
		if st, _, code := r.answer(); st != 201 {
			su.t.Fatalf("funding top-up: %d %s", st, code)
		}
	}
	if _, err := su.converge(time.Now().Add(lagDeadline)); err != nil {
		su.t.Fatalf("funding: %v", err)
	}
}

// phase runs one fault under load and checks the invariants after it.
func (su *suite) phase(n int, f fault) row {
	t, s, l, v := su.t, su.s, su.l, su.v
	if f.setup != nil {
		f.setup()
	}
	r := row{fault: f.name}
	stop := l.run(n, v.think)
	t.Cleanup(stop) // a fault that stops the suite leaves no client running
	time.Sleep(v.warm)
	strikeAt, what := f.strike()
	r.midflight = what
	if f.cutsMail {
		su.cuts = append(su.cuts, strikeAt)
	}
	if f.outage {
		time.Sleep(v.outage)
	}
	f.restore()
	restoredAt := time.Now()
	readyAt, err := s.waitReady(lagDeadline)
	if err != nil {
		t.Errorf("%s: %v", f.name, err)
	}
	r.outage = restoredAt.Sub(strikeAt)
	sampler := su.lag.sample(restoredAt)
	time.Sleep(v.after)
	stop()
	if err := l.resolve(n, lagDeadline); err != nil {
		t.Errorf("%s: %v", f.name, err)
	}
	settledAt, err := su.converge(restoredAt.Add(v.after + lagDeadline))
	if err != nil {
		t.Errorf("%s: %v", f.name, err)
	}
	r.settle = settledAt.Sub(restoredAt)
	r.lagZero = sampler.stop()
	if r.lagZero < 0 || r.lagZero > lagDeadline {
		t.Errorf("%s: consumer lag and the outbox were not back to 0 within %s of the end of the fault", f.name, lagDeadline)
	}
	su.count(n, &r, window{from: strikeAt, to: readyAt})
	for _, viol := range su.check(n, &r) {
		if su.seen == nil {
			su.seen = map[string]bool{}
		}
		if !su.seen[viol] {
			su.seen[viol] = true
			t.Errorf("%s: %s", f.name, viol)
		}
	}
	return r
}
