package payout_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/payout"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/provider"
	"github.com/paygate/paygate/internal/provider/sandbox"
	"github.com/paygate/paygate/internal/provider/xendit"
	"github.com/paygate/paygate/internal/withdraw"
)

// withdrawal funds u and requests a withdrawal of amount over HTTP, and
// returns its id and the paygate.withdrawal.requested record the outbox
// relay published.
func withdrawal(t *testing.T, e *apptest.Env, u apptest.User, amount int64) (uuid.UUID, *sarama.ConsumerMessage) {
	t.Helper()
	e.Fund(t, u, amount+100000)
	r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Payee"}, "Idempotency-Key", uuid.NewString())
	if r.Status != 201 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
	id := uuid.MustParse(r.Map(t)["id"].(string))
	for _, rec := range e.Broker.ReadAll(t, e.Config.Kafka.TopicWithdraw, 1000, 3*time.Second) {
		if rec.Headers["ce_subject"] == "withdrawals/"+id.String() && rec.Headers["ce_type"] == "paygate.withdrawal.requested" {
			msg := &sarama.ConsumerMessage{Topic: rec.Topic, Key: []byte(rec.Key), Value: rec.Value, Offset: rec.Offset}
			for k, v := range rec.Headers {
				msg.Headers = append(msg.Headers, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
			}
			return id, msg
		}
	}
	t.Fatalf("no withdrawal.requested record for %s", id)
	return uuid.Nil, nil
}

func processor(t *testing.T, p payout.Payouts, svc *withdraw.Service) *payout.Processor {
	t.Helper()
	proc, err := payout.NewProcessor(p, svc, tracenoop.NewTracerProvider(), propagation.TraceContext{}, noop.NewMeterProvider(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

func waitStatus(t *testing.T, e *apptest.Env, token string, id uuid.UUID, status string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := e.Get(t, "/v1/withdrawals/"+id.String(), token).Map(t)
		if m["status"] == status {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("withdrawal %s is %v, want %s", id, m["status"], status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedeliveredAndRacingWithdrawalEventsPayOutOnce hands one
// withdrawal.requested record to two processors at once, five times each
// (a redelivery after a rebalance, two consumers that both think they own
// the partition): the provider makes one payout, counted at the sandbox,
// and the withdrawal settles once when its callback comes.
func TestRedeliveredAndRacingWithdrawalEventsPayOutOnce(t *testing.T) {
	t.Parallel()
	var svc *withdraw.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	u := e.NewUser(t)
	id, msg := withdrawal(t, e, u, 60000)
	a, b := processor(t, e.Provider.Client, svc), processor(t, e.Provider.Client, svc)
	var wg sync.WaitGroup
	for range 5 {
		for _, p := range []*payout.Processor{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Handle(context.Background(), msg); err != nil {
					t.Errorf("handle: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	waitStatus(t, e, u.Token, id, "succeeded")
	if n := e.Provider.Sandbox.Stats().PayoutsByReference[id.String()]; n != 1 {
		t.Fatalf("the provider made %d payouts for one withdrawal", n)
	}
	// Delivered again after it settled: nothing happens.
	if err := a.Handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if n := e.Provider.Sandbox.Stats().PayoutsByReference[id.String()]; n != 1 {
		t.Fatalf("a redelivery after settlement made payout %d", n)
	}
	var settlements, captured int
	if err := e.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM withdrawal_settlements WHERE withdrawal_id = $1),
  (SELECT count(*) FROM ledger_holds WHERE status = 'captured')`, id).Scan(&settlements, &captured); err != nil {
		t.Fatal(err)
	}
	if settlements != 1 || captured != 1 {
		t.Fatalf("settlements %d, captured holds %d", settlements, captured)
	}
}

// crashAfterCreate is a provider whose create reaches the provider, but
// whose caller dies before it hears the answer: what a gateway killed
// between the payout's create and its record sees.
type crashAfterCreate struct {
	payout.Payouts
	crashed atomic.Bool
}

var errKilled = errors.New("killed after create")

func (c *crashAfterCreate) CreatePayout(ctx context.Context, r provider.PayoutRequest) (provider.Payout, error) {
	if _, err := c.Payouts.CreatePayout(ctx, r); err != nil {
		return provider.Payout{}, err
	}
	c.crashed.Store(true)
	return provider.Payout{}, errKilled
}

// TestKilledBetweenPayoutCreateAndSettlePaysOnce lets the first attempt
// create the payout at the provider and die before recording it; the
// record is delivered again (to a fresh processor, as after a restart),
// which creates under the same idempotency key, gets the same payout, and
// the withdrawal settles once. The same holds when the provider made the
// payout but answered 503.
func TestKilledBetweenPayoutCreateAndSettlePaysOnce(t *testing.T) {
	t.Parallel()
	var svc *withdraw.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	u := e.NewUser(t)

	id, msg := withdrawal(t, e, u, 70000)
	dying := &crashAfterCreate{Payouts: e.Provider.Client}
	if err := processor(t, dying, svc).Handle(context.Background(), msg); !errors.Is(err, errKilled) || !dying.crashed.Load() {
		t.Fatalf("first attempt: %v", err)
	}
	if err := processor(t, e.Provider.Client, svc).Handle(context.Background(), msg); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	waitStatus(t, e, u.Token, id, "succeeded")
	if n := e.Provider.Sandbox.Stats().PayoutsByReference[id.String()]; n != 1 {
		t.Fatalf("%d payouts after a crash between create and record", n)
	}

	id2, msg2 := withdrawal(t, e, u, 80000)
	e.Provider.Sandbox.SetReferenceFaults(id2.String(), sandbox.Faults{FailCreates: 100, FailAfterCreate: true})
	if err := processor(t, e.Provider.Client, svc).Handle(context.Background(), msg2); err == nil {
		t.Fatal("a create answered 503 counted as done")
	}
	e.Provider.Sandbox.SetReferenceFaults(id2.String(), sandbox.Faults{})
	if err := processor(t, e.Provider.Client, svc).Handle(context.Background(), msg2); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, e, u.Token, id2, "succeeded")
	if n := e.Provider.Sandbox.Stats().PayoutsByReference[id2.String()]; n != 1 {
		t.Fatalf("%d payouts after a 503 on a create that happened", n)
	}
}

// TestFailedPayoutReleasesTheHoldAndMailsTheReason runs the payout
// processor and the email consumer against a provider that fails the
// payout (an account that does not exist): the withdrawal fails with the
// reason, its hold is released (available money is back), and the
// "payout failed" mail says why.
func TestFailedPayoutReleasesTheHoldAndMailsTheReason(t *testing.T) {
	t.Parallel()
	mail := smtptest.Start(t)
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Payout.Enabled = true
		c.SMTP.Host, c.SMTP.Port = mail.Host, mail.Port
		c.Notify.Enabled = true
	}))
	u := e.NewUser(t)
	e.Fund(t, u, 200000)
	e.Provider.Sandbox.SetAmountFaults(75000, sandbox.Faults{PayoutFailureCode: "INVALID_DESTINATION"})
	r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": 75000, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Payee"}, "Idempotency-Key", "w1")
	if r.Status != 201 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
	id := uuid.MustParse(r.Map(t)["id"].(string))
	w := waitStatus(t, e, u.Token, id, "failed")
	if reason, _ := w["failure_reason"].(string); !strings.Contains(reason, "does not exist") {
		t.Fatalf("failure reason %q", reason)
	}
	if s := e.Get(t, "/v1/saldo", u.Token).Map(t); s["available"] != float64(200000) || s["held"] != float64(0) {
		t.Fatalf("saldo after a failed payout: %v", s)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, m := range mail.To(u.Email) {
			if strings.Contains(strings.ToLower(m.Subject), "fail") && strings.Contains(m.Text, "does not exist") {
				return
			}
		}
		if time.Now().After(deadline) {
			var subjects []string
			for _, m := range mail.To(u.Email) {
				subjects = append(subjects, fmt.Sprintf("%q", m.Subject))
			}
			t.Fatalf("no payout-failed mail with the reason; mails: %s", strings.Join(subjects, ", "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPayoutPollerSettlesWhenTheCallbackIsLost drops every callback of a
// payout: the poller asks the provider about the withdrawal pending past
// PAYGATE_PROVIDER_POLL_AFTER and settles it as a callback would.
func TestPayoutPollerSettlesWhenTheCallbackIsLost(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Payout.Enabled = true
		c.Provider.PollInterval, c.Provider.PollAfter = 50*time.Millisecond, time.Millisecond
	}))
	u := e.NewUser(t)
	e.Fund(t, u, 300000)
	e.Provider.Sandbox.SetAmountFaults(65000, sandbox.Faults{Callbacks: sandbox.CallbackFaults{Drop: 100}})
	e.Provider.Sandbox.SetAmountFaults(66000, sandbox.Faults{PayoutFailureCode: "REJECTED_BY_CHANNEL", Callbacks: sandbox.CallbackFaults{Drop: 100}})
	var ids []uuid.UUID
	for _, amount := range []int{65000, 66000} {
		r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount, "bank_code": "BNI",
			"bank_account_number": "1234567890", "bank_account_name": "Payee"}, "Idempotency-Key", fmt.Sprint("p", amount))
		if r.Status != 201 {
			t.Fatalf("withdraw: %d %s", r.Status, r.Body)
		}
		ids = append(ids, uuid.MustParse(r.Map(t)["id"].(string)))
	}
	waitStatus(t, e, u.Token, ids[0], "succeeded")
	w := waitStatus(t, e, u.Token, ids[1], "failed")
	if w["failure_reason"] != xendit.PayoutFailureReason("REJECTED_BY_CHANNEL") {
		t.Fatalf("failure reason %v", w["failure_reason"])
	}
	var polled int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM withdrawal_settlements WHERE source = 'poll'").Scan(&polled); err != nil {
		t.Fatal(err)
	}
	if polled != 2 {
		t.Fatalf("%d withdrawals settled by the poller, want 2", polled)
	}
	if n := e.Provider.Sandbox.Stats().Callbacks[sandbox.DeliveryDelivered]; n > 1 {
		// The top-up's own callback is the only one delivered.
		t.Fatalf("%d callbacks delivered although payout callbacks were dropped", n)
	}
}
