package notify_test

import (
	"context"
	"slices"
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

func TestPruneDeletesOldSentRecordsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	s := notify.NewStore(pool, time.Minute)
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
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t))
	s := notify.NewStore(pool, time.Minute)
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
// an array of mails to notify_deliveries keep no generic plan on the
// connection (postgres.PlanEachTime): one made while the table was small
// is a sequential scan that stays cached as the table grows (the
// benchmark's first minutes spent 3 ms a call in it). pgx would otherwise
// keep them as named prepared statements, listed in
// pg_prepared_statements.
func TestDeliveryLookupsArePlannedAtEachExecution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewPool(t, pgtest.NewDatabase(t)+"&pool_max_conns=1")
	s := notify.NewStore(pool, time.Minute)
	for range 8 {
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
	rows, err := pool.Query(ctx, `SELECT substring(statement FROM '-- name: (\w+)') FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	prepared, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range prepared {
		if n != nil {
			names = append(names, *n)
		}
	}
	if !slices.Contains(names, "ClaimDeliveries") {
		t.Fatalf("prepared statements %v: the check sees none of pgx's (ClaimDeliveries should be one)", names)
	}
	for _, n := range []string{"MarkDeliveriesSent", "DeliveryStatuses"} {
		if slices.Contains(names, n) {
			t.Errorf("%s is a prepared statement with a cached plan; want it planned at each execution", n)
		}
	}
}
