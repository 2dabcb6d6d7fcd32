package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// newStore returns a store with a one-minute lease on a database of its
// own, and that database's pool.
func newStore(t *testing.T) (context.Context, *pgxpool.Pool, *notify.Store) {
	t.Helper()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	return context.Background(), pool, notify.NewStore(pool, time.Minute)
}

func TestPruneDeletesOldSentRecordsOnly(t *testing.T) {
	t.Parallel()
	ctx, pool, s := newStore(t)
	now := time.Now()
	// 2,500 old sent records (more than one batch), one recent sent record,
	// one old pending record.
	if _, err := pool.Exec(ctx, `INSERT INTO notify_deliveries (event_id, recipient, template, status, attempts, sent_at, created_at, updated_at)
SELECT gen_random_uuid(), 'old@example.com', 'welcome', 'sent', 1, $1, $1, $1 FROM generate_series(1, 2500)`, now.Add(-20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	recent, pending := uuid.New(), uuid.New()
	if _, err := pool.Exec(ctx, `INSERT INTO notify_deliveries (event_id, recipient, template, status, attempts, sent_at)
VALUES ($1, 'new@example.com', 'welcome', 'sent', 1, $2)`, recent, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO notify_deliveries (event_id, recipient, template, attempts, created_at, updated_at)
VALUES ($1, 'stuck@example.com', 'welcome', 3, $2, $2)`, pending, now.Add(-20*24*time.Hour)); err != nil {
		t.Fatal(err)
	}

	n, err := s.Prune(ctx, now.Add(-14*24*time.Hour))
	if err != nil || n != 2500 {
		t.Fatalf("prune deleted %d (%v), want 2500", n, err)
	}
	var left []uuid.UUID
	rows, err := pool.Query(ctx, `SELECT event_id FROM notify_deliveries ORDER BY recipient`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		left = append(left, id)
	}
	if rows.Err() != nil || len(left) != 2 || left[0] != recent || left[1] != pending {
		t.Fatalf("left %v (%v), want the recent sent and the old pending record", left, rows.Err())
	}
	// Pruning again finds nothing more to delete.
	if n, err := s.Prune(ctx, now.Add(-14*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second prune deleted %d (%v)", n, err)
	}
}

// TestTheConsumerPrunesAtStart checks the wiring: the application with the
// email consumer prunes records older than PAYGATE_NOTIFY_DELIVERY_RETENTION
// when it starts (and hourly after), and keeps younger ones.
func TestTheConsumerPrunesAtStart(t *testing.T) {
	t.Parallel()
	old, young := uuid.New(), uuid.New()
	seed := fx.Invoke(func(pool *pgxpool.Pool) error {
		// Invoked while the graph is built, before the start hooks run.
		_, err := pool.Exec(context.Background(), `INSERT INTO notify_deliveries (event_id, recipient, template, status, attempts, sent_at)
VALUES ($1, 'a@example.com', 'welcome', 'sent', 1, now() - interval '49 hours'),
       ($2, 'b@example.com', 'welcome', 'sent', 1, now() - interval '47 hours')`, old, young)
		return err
	})
	e := startMailAppOn(t, kafkatest.NewBroker(t), []fx.Option{seed}, func(c *config.Config) { c.Notify.DeliveryRetention = 48 * time.Hour })
	eventually(t, 30*time.Second, "the old record to be pruned", func() bool {
		var n int
		if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_deliveries WHERE event_id = $1`, old).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	var n int
	if err := e.Pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_deliveries WHERE event_id = $1`, young).Scan(&n); err != nil || n != 1 {
		t.Fatalf("young record: %d (%v), want kept", n, err)
	}
}

// TestClaimAllTellsEachMailOfAnEventApart: one statement claims an
// event's mails, and each gets its own outcome: new and lapsed claims are
// taken, a sent mail is reported sent, a mail another consumer holds is
// busy until its claim ends. MarkAllSent records exactly the mails given.
func TestClaimAllTellsEachMailOfAnEventApart(t *testing.T) {
	t.Parallel()
	ctx, pool, s := newStore(t)
	ev := uuid.New()
	heldUntil := time.Now().Add(30 * time.Second).Truncate(time.Microsecond)
	if _, err := pool.Exec(ctx, `INSERT INTO notify_deliveries (event_id, recipient, template, status, attempts, sent_at, claimed_until)
VALUES ($1, 'sent@example.com', 'transfer_sent', 'sent', 1, now(), NULL),
       ($1, 'held@example.com', 'transfer_sent', 'pending', 1, NULL, $2),
       ($1, 'lapsed@example.com', 'transfer_sent', 'pending', 1, NULL, now() - interval '1 second')`, ev, heldUntil); err != nil {
		t.Fatal(err)
	}
	mails := [][2]string{{"new@example.com", "transfer_sent"}, {"sent@example.com", "transfer_sent"},
		{"held@example.com", "transfer_sent"}, {"lapsed@example.com", "transfer_sent"}, {"new@example.com", "transfer_received"}}
	states, untils, err := s.ClaimAllForTest(ctx, ev, mails)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"claimed", "sent", "busy", "claimed", "claimed"}
	for i := range want {
		if states[i] != want[i] {
			t.Errorf("mail %v: %s, want %s", mails[i], states[i], want[i])
		}
	}
	if !untils[2].Equal(heldUntil) {
		t.Errorf("busy until %v, want the other claim's end %v", untils[2], heldUntil)
	}
	// Claimed again at once, the mails just claimed are busy now.
	states, _, err = s.ClaimAllForTest(ctx, ev, mails[:1])
	if err != nil || states[0] != "busy" {
		t.Fatalf("second claim of a held mail: %v (%v), want busy", states, err)
	}

	if err := s.MarkAllSentForTest(ctx, ev, [][2]string{mails[0], mails[3]}); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT recipient || ' ' || template || ' ' || status || ' ' || attempts || ' ' || (claimed_until IS NULL)
FROM notify_deliveries WHERE event_id = $1 ORDER BY recipient, template`, ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []string{
		"held@example.com transfer_sent pending 1 false",
		"lapsed@example.com transfer_sent sent 2 true",
		"new@example.com transfer_received pending 1 false",
		"new@example.com transfer_sent sent 1 true", // the busy second claim took no attempt
		"sent@example.com transfer_sent sent 1 true",
	}
	if strings.Join(got, "\n") != strings.Join(wantRows, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantRows, "\n"))
	}
}

// TestDeliveryLookupsArePlannedAtEachExecution: the statements that join
// an array of mails to notify_deliveries never run a generic plan on the
// connection: one made while the table was small is a sequential scan
// that stays cached as the table grows (the benchmark's first minutes
// spent 3 ms a call in it). PostgreSQL counts, per prepared statement,
// the executions that used a generic plan and those planned afresh.
func TestDeliveryLookupsArePlannedAtEachExecution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t)+"&pool_max_conns=1")
	s := notify.NewStore(pool, time.Minute)
	const rounds = 12 // PostgreSQL weighs a generic plan after 5 executions
	for range rounds {
		ev := uuid.New()
		mails := [][2]string{{"a@example.com", "transfer_sent"}, {"b@example.com", "transfer_received"}}
		if _, _, err := s.ClaimAllForTest(ctx, ev, mails); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkAllSentForTest(ctx, ev, mails); err != nil {
			t.Fatal(err)
		}
		// A second claim finds them sent: the status lookup runs too.
		if states, _, err := s.ClaimAllForTest(ctx, ev, mails); err != nil || states[0] != "sent" {
			t.Fatalf("claim of sent mails: %v, %v", states, err)
		}
	}
	rows, err := pool.Query(ctx, `SELECT substring(statement FROM '-- name: (\w+)'), generic_plans, custom_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	type plans struct{ generic, custom int64 }
	got := map[string]plans{}
	var name *string
	var p plans
	if _, err := pgx.ForEachRow(rows, []any{&name, &p.generic, &p.custom}, func() error {
		if name != nil {
			got[*name] = p
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ClaimDeliveries", "MarkDeliveriesSent"} {
		if got[n].custom < rounds {
			t.Fatalf("%s: %d executions planned afresh, want %d (prepared statements: %v)", n, got[n].custom, rounds, got)
		}
	}
	for _, n := range []string{"ClaimDeliveries", "MarkDeliveriesSent", "DeliveryStatuses"} {
		if got[n].generic > 0 {
			t.Errorf("%s ran a cached generic plan %d times; want it planned at each execution", n, got[n].generic)
		}
	}
}

// deliveryStatuses returns the status of each mail of event, by
// recipient.
func deliveryStatuses(t *testing.T, pool *pgxpool.Pool, event uuid.UUID) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT recipient, status FROM notify_deliveries WHERE event_id = $1`, event)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var r, s string
	if _, err := pgx.ForEachRow(rows, []any{&r, &s}, func() error { got[r] = s; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWritesOfSeveralHandlersCommitTogether: one commit records one
// handler's sent mails and claims the others' mails; a mail two writes
// claim is the first one's, and the second finds it busy, as it would
// another consumer's claim.
func TestWritesOfSeveralHandlersCommitTogether(t *testing.T) {
	t.Parallel()
	ctx, pool, s := newStore(t)
	sentEv, claimEv := uuid.New(), uuid.New()
	out := [][2]string{{"a@example.com", "transfer_sent"}, {"b@example.com", "transfer_received"}}
	if states, _, err := s.ClaimAllForTest(ctx, sentEv, out); err != nil || strings.Join(states, ",") != "claimed,claimed" {
		t.Fatalf("claim: %v, %v", states, err)
	}
	res, err := s.CommitForTest(ctx, []notify.TestWrite{
		{Event: sentEv, Sent: out},
		{Event: claimEv, Claims: [][2]string{{"c@example.com", "welcome"}}},
		{Event: claimEv, Claims: [][2]string{{"d@example.com", "welcome"}, {"c@example.com", "welcome"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res); got != "[[] [claimed] [claimed busy]]" {
		t.Fatalf("claims %s, want [[] [claimed] [claimed busy]]", got)
	}
	if got := fmt.Sprint(deliveryStatuses(t, pool, sentEv)); got != "map[a@example.com:sent b@example.com:sent]" {
		t.Fatalf("the sent mails' rows: %s", got)
	}
	if got := fmt.Sprint(deliveryStatuses(t, pool, claimEv)); got != "map[c@example.com:pending d@example.com:pending]" {
		t.Fatalf("the claimed mails' rows: %s", got)
	}
	// Claimed again in one write: sent ones are sent, claimed ones busy.
	res, err = s.CommitForTest(ctx, []notify.TestWrite{{Event: sentEv, Claims: out}, {Event: claimEv, Claims: [][2]string{{"c@example.com", "welcome"}}}})
	if err != nil || fmt.Sprint(res) != "[[sent sent] [busy]]" {
		t.Fatalf("second claims %v (%v), want [[sent sent] [busy]]", res, err)
	}
}

// TestAFailedCommitRecordsNoneOfItsWrites: the writes committed together
// share one transaction, so a statement that fails takes the others'
// writes with it: a mail recorded as sent in a commit whose claim failed
// is still pending (its sender records it again), never half of a
// commit.
func TestAFailedCommitRecordsNoneOfItsWrites(t *testing.T) {
	t.Parallel()
	ctx, pool, s := newStore(t)
	ev := uuid.New()
	mails := [][2]string{{"a@example.com", "welcome"}}
	if _, _, err := s.ClaimAllForTest(ctx, ev, mails); err != nil {
		t.Fatal(err)
	}
	// Not UTF-8: the server refuses the claim statement's parameters,
	// after the record of the sent mail has run in the same transaction.
	_, err := s.CommitForTest(ctx, []notify.TestWrite{{Event: ev, Sent: mails}, {Event: uuid.New(), Claims: [][2]string{{"\xff@example.com", "welcome"}}}})
	if err == nil {
		t.Fatal("a commit with a claim the server refuses succeeded")
	}
	if got := deliveryStatuses(t, pool, ev)["a@example.com"]; got != notify.StatusPending {
		t.Fatalf("the mail recorded in the failed commit is %q, want %q", got, notify.StatusPending)
	}
	// The connection is usable again and the record goes through alone.
	if err := s.MarkAllSentForTest(ctx, ev, mails); err != nil {
		t.Fatal(err)
	}
	if got := deliveryStatuses(t, pool, ev)["a@example.com"]; got != notify.StatusSent {
		t.Fatalf("after recording it alone the mail is %q, want %q", got, notify.StatusSent)
	}
}
