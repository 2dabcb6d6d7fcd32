package deadletters_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/provider/sandbox"
)

type page struct {
	NextCursor *string `json:"next_cursor"`
	Data       []struct {
		Consumer   string  `json:"consumer"`
		Partition  int32   `json:"partition"`
		Offset     int64   `json:"offset"`
		EventType  string  `json:"event_type"`
		Subject    string  `json:"subject"`
		Reason     string  `json:"reason"`
		Error      string  `json:"error"`
		Attempts   int     `json:"attempts"`
		ReplayedAt *string `json:"replayed_at"`
	} `json:"data"`
}

// TestAPayoutThatFailedEveryAttemptIsDeadLetteredListedAndReplayed runs
// the payout processor against a provider that is down: the withdrawal
// event fails every attempt, moves through the retry topic without
// holding its partition, and lands on the dead-letter topic as exhausted.
// An admin lists it (a user may not), the provider comes back, and the
// admin replays it once: the payout is made and the withdrawal settles. A
// second replay is refused, and a record that is not a CloudEvent is
// dead-lettered at once as poison.
func TestAPayoutThatFailedEveryAttemptIsDeadLetteredListedAndReplayed(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, apptest.WithConfig(func(c *config.Config) {
		c.Payout.Enabled, c.Payout.MaxAttempts, c.Payout.RetryBackoff = true, 2, 10*time.Millisecond
		c.Kafka.ConsumerRetryBackoff, c.Kafka.ConsumerRetryMaxBackoff = 10*time.Millisecond, 20*time.Millisecond
		c.Provider.MaxAttempts = 1
	}))
	u, admin := e.NewUser(t), e.Admin(t)
	e.Fund(t, u, 500000)
	e.Provider.Sandbox.SetFaults(sandbox.Faults{Down: true})
	r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": 120000, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Payee"}, "Idempotency-Key", "w")
	if r.Status != 201 {
		t.Fatalf("withdraw: %d %s", r.Status, r.Body)
	}
	id := r.Map(t)["id"].(string)

	var p page
	waitFor(t, "the dead letter", func() bool {
		p = page{}
		e.Get(t, "/v1/admin/dead-letters?consumer=payouts", admin.Token).JSON(t, &p)
		return len(p.Data) == 1
	})
	d := p.Data[0]
	if d.Consumer != "payouts" || d.Reason != kafka.ReasonExhausted || d.Attempts != 2 || d.EventType != "paygate.withdrawal.requested" ||
		d.Subject != "withdrawals/"+id || d.Error == "" || d.ReplayedAt != nil {
		t.Fatalf("dead letter: %+v", d)
	}
	var all page
	e.Get(t, "/v1/admin/dead-letters", admin.Token).JSON(t, &all)
	if len(all.Data) != 1 || all.NextCursor != nil {
		t.Fatalf("every consumer's dead letters: %+v", all)
	}
	if r := e.Get(t, "/v1/admin/dead-letters", u.Token); r.Status != 403 {
		t.Fatalf("a user lists dead letters: %d", r.Status)
	}
	if m := e.Get(t, "/v1/withdrawals/"+id, u.Token).Map(t); m["status"] != "pending" {
		t.Fatalf("withdrawal after its event died: %v", m["status"])
	}

	e.Provider.Sandbox.SetFaults(sandbox.Faults{})
	path := fmt.Sprintf("/v1/admin/dead-letters/payouts/%d/%d/replay", d.Partition, d.Offset)
	if r := e.Post(t, path, u.Token, nil); r.Status != 403 {
		t.Fatalf("a user replays: %d", r.Status)
	}
	if r := e.Post(t, path, admin.Token, nil); r.Status != 200 || r.Map(t)["replayed_at"] == nil {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	waitFor(t, "the replayed payout", func() bool {
		return e.Get(t, "/v1/withdrawals/"+id, u.Token).Map(t)["status"] == "succeeded"
	})
	if n := e.Provider.Sandbox.Stats().PayoutsByReference[id]; n != 1 {
		t.Fatalf("%d payouts after the replay", n)
	}
	if r := e.Post(t, path, admin.Token, nil); r.Status != 409 || r.Code() != "ALREADY_REPLAYED" {
		t.Fatalf("second replay: %d %s", r.Status, r.Body)
	}
	p = page{}
	e.Get(t, "/v1/admin/dead-letters?consumer=payouts", admin.Token).JSON(t, &p)
	if len(p.Data) != 1 || p.Data[0].ReplayedAt == nil {
		t.Fatalf("after the replay: %+v", p.Data)
	}
	if r := e.Post(t, "/v1/admin/dead-letters/payouts/0/999999/replay", admin.Token, nil); r.Status != 404 {
		t.Fatalf("replay of no record: %d %s", r.Status, r.Body)
	}
	if r := e.Get(t, "/v1/admin/dead-letters?consumer=nobody", admin.Token); r.Status != 400 {
		t.Fatalf("unknown consumer: %d", r.Status)
	}

	// Poison: not a CloudEvent at all.
	pub := kafka.NewProducer(e.Config.Kafka, nil, apptest.Nop())
	defer pub.Close()
	if err := pub.Send(context.Background(), []*sarama.ProducerMessage{{Topic: e.Config.Kafka.TopicWithdraw,
		Key: sarama.StringEncoder(uuid.NewString()), Value: sarama.StringEncoder("not json")}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the poison record", func() bool {
		p = page{}
		e.Get(t, "/v1/admin/dead-letters?consumer=payouts", admin.Token).JSON(t, &p)
		return len(p.Data) == 2
	})
	if p.Data[0].Reason != kafka.ReasonPoison || p.Data[0].Attempts != 1 {
		t.Fatalf("poison dead letter (newest first): %+v", p.Data[0])
	}
	// One a page: the cursor leads to the older one, and no further.
	var first, second page
	e.Get(t, "/v1/admin/dead-letters?consumer=payouts&limit=1", admin.Token).JSON(t, &first)
	if len(first.Data) != 1 || first.Data[0].Reason != kafka.ReasonPoison || first.NextCursor == nil {
		t.Fatalf("first page: %+v", first)
	}
	e.Get(t, "/v1/admin/dead-letters?consumer=payouts&limit=1&cursor="+*first.NextCursor, admin.Token).JSON(t, &second)
	if len(second.Data) != 1 || second.Data[0].Reason != kafka.ReasonExhausted || second.NextCursor != nil {
		t.Fatalf("second page: %+v", second)
	}
	if r := e.Get(t, "/v1/admin/dead-letters?cursor=bogus!", admin.Token); r.Status != 400 || r.Code() != "INVALID_CURSOR" {
		t.Fatalf("bad cursor: %d %s", r.Status, r.Body)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
