package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"

	"github.com/IBM/sarama"
	"go.opentelemetry.io/otel/metric/noop"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
)

// lagProbe measures consumer lag from the broker's side, as the gateway's
// paygate_kafka_consumer_lag does (kafka.LagMonitor: high watermarks minus
// committed offsets), but on demand: the gateway polls every 15 s.
type lagProbe struct {
	mu     sync.Mutex // one poll at a time
	s      *stack
	cfg    config.Kafka
	mon    *kafka.LagMonitor
	groups []string
}

func newLagProbe(t *testing.T, s *stack) *lagProbe {
	t.Helper()
	d := config.Defaults()
	cfg := d.Kafka
	cfg.Brokers = []string{s.brokerAddr}
	cfg.DialTimeout = time.Second
	mon, err := kafka.NewLagMonitor(cfg, noop.NewMeterProvider(), time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mon.Watch(d.Notify.Group, []string{cfg.TopicAuth, cfg.TopicTopup, cfg.TopicTransfer, cfg.TopicWithdraw, d.Notify.RetryTopic})
	mon.Watch(d.Payout.Group, []string{cfg.TopicWithdraw})
	// Started (it polls once at once, then hourly) so that Stop closes
	// its connection.
	if err := mon.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mon.Stop(context.Background()) })
	return &lagProbe{s: s, cfg: cfg, mon: mon, groups: []string{d.Notify.Group, d.Payout.Group}}
}

// lag returns the summed lag of the gateway's consumer groups.
func (p *lagProbe) lag() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.mon.Poll(); err != nil {
		return -1, err
	}
	var sum int64
	for _, g := range p.groups {
		n, ok := p.mon.Lag(g)
		if !ok {
			return -1, fmt.Errorf("no lag measured for %s", g)
		}
		sum += n
	}
	return sum, nil
}

// deadLetters counts the records on the email consumer's dead-letter
// topic.
func (p *lagProbe) deadLetters() (int64, error) {
	sc, err := kafka.NewSaramaConfig(p.cfg)
	if err != nil {
		return 0, err
	}
	client, err := sarama.NewClient(p.cfg.Brokers, sc)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	topic := config.Defaults().Notify.DLQTopic
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, part := range parts {
		newest, err := client.GetOffset(topic, part, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		oldest, err := client.GetOffset(topic, part, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		n += newest - oldest
	}
	return n, nil
}

// sampler watches lag and the outbox from the end of a fault, and notes
// when both are first back to 0.
type sampler struct {
	since  time.Time
	cancel context.CancelFunc
	done   chan struct{}
	zeroAt time.Time
}

func (p *lagProbe) sample(since time.Time) *sampler {
	ctx, cancel := context.WithCancel(context.Background())
	sm := &sampler{since: since, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sm.done)
		for ctx.Err() == nil {
			if lag, err := p.lag(); err == nil && lag == 0 {
				if pending, err := outboxPending(ctx, p.s); err == nil && pending == 0 {
					sm.zeroAt = time.Now()
					return
				}
			}
			periodic.Sleep(ctx, 250*time.Millisecond)
		}
	}()
	return sm
}

// stop ends sampling and returns how long after the fault lag and the
// outbox were first 0, or -1 if they never were.
func (sm *sampler) stop() time.Duration {
	// The caller converged: if 0 was not seen yet, the next look sees it.
	select {
	case <-sm.done:
	case <-time.After(30 * time.Second):
	}
	sm.cancel()
	<-sm.done
	if sm.zeroAt.IsZero() {
		return -1
	}
	return sm.zeroAt.Sub(sm.since)
}

// outboxPending counts the events the relay has yet to publish.
func outboxPending(ctx context.Context, s *stack) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL AND parked_at IS NULL`).Scan(&n)
	return n, err
}

// converge waits until the system is at rest: every top-up and
// withdrawal settled, the outbox published, consumer lag 0 and every
// mail the events call for received. It returns when, or what was still
// missing at deadline.
func (su *suite) converge(deadline time.Time) (time.Time, error) {
	for {
		missing := su.atRest()
		if missing == "" {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Now(), fmt.Errorf("not at rest %s after the fault: %s", time.Until(deadline).Abs().Round(time.Second), missing)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// atRest says what keeps the system from being at rest ("" when it is).
func (su *suite) atRest() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var topups, withdrawals, pending, mails int
	err := su.s.pool.QueryRow(ctx, `SELECT
  (SELECT count(*) FROM topups t WHERE NOT EXISTS (SELECT 1 FROM topup_settlements s WHERE s.topup_id = t.id)),
  (SELECT count(*) FROM withdrawals w WHERE NOT EXISTS (SELECT 1 FROM withdrawal_settlements s WHERE s.withdrawal_id = w.id)),
  (SELECT count(*) FROM outbox WHERE sent_at IS NULL),
  (SELECT coalesce(sum(CASE WHEN event_type = $1 THEN 2 ELSE 1 END), 0) FROM outbox)`,
		events.TypeTransferSucceeded).Scan(&topups, &withdrawals, &pending, &mails)
	if err != nil {
		return "database: " + err.Error()
	}
	var missing []string
	if topups > 0 {
		missing = append(missing, fmt.Sprintf("%d top-ups pending", topups))
	}
	if withdrawals > 0 {
		missing = append(missing, fmt.Sprintf("%d withdrawals pending", withdrawals))
	}
	if pending > 0 {
		missing = append(missing, fmt.Sprintf("%d outbox events unpublished", pending))
	}
	if lag, err := su.lag.lag(); err != nil || lag != 0 {
		missing = append(missing, fmt.Sprintf("consumer lag %d (%v)", lag, err))
	}
	if got := len(receivedMails(su.s)); got < mails {
		missing = append(missing, fmt.Sprintf("%d of %d mails received", got, mails))
	}
	return strings.Join(missing, ", ")
}

// mailKey names one mail: the event, the template and the recipient.
type mailKey struct{ event, template, to string }

// receivedMails returns when the SMTP server accepted each mail, once
// per time it did; the gateway's Message-ID is <event id>.<template>@paygate.
func receivedMails(s *stack) map[mailKey][]time.Time {
	out := map[mailKey][]time.Time{}
	for _, m := range s.smtp.Messages() {
		local, _, _ := strings.Cut(m.MessageID, "@")
		ev, tmpl, _ := strings.Cut(local, ".")
		for _, to := range m.To {
			k := mailKey{ev, tmpl, strings.ToLower(strings.Trim(to, "<>"))}
			out[k] = append(out[k], m.ReceivedAt)
		}
	}
	return out
}

// resentAfterCut reports whether a mail received twice was resent
// because a fault cut its conversation (a killed gateway, a stopped SMTP
// server) after the server had accepted it and before the gateway
// recorded that: the first copy arrived just before such a strike. SMTP
// and PostgreSQL cannot commit together, so the gateway sends at least
// once, and this is the one mail a crash sends twice, under the same
// Message-ID (docs/events.md, "Exactly once per recipient").
func (su *suite) resentAfterCut(at []time.Time) bool {
	if len(at) != 2 {
		return false
	}
	for _, k := range su.cuts {
		if !at[0].Before(k.Add(-2*time.Second)) && !at[0].After(k.Add(500*time.Millisecond)) {
			return true
		}
	}
	return false
}

// outboxEvent is an event as the outbox holds it.
type outboxEvent struct {
	seq        int64
	id, typ    string
	payload    []byte
	sent, park bool
}

// window is a fault window: from the strike until every live replica
// was ready again.
type window struct{ from, to time.Time }

func (w window) overlaps(a attempt) bool { return !a.start.After(w.to) && !a.end.Before(w.from) }

// count fills the row's request counters from the phase's attempts; a
// 5xx or a connection error outside the fault window is a violation.
func (su *suite) count(phase int, r *row, w window) {
	su.l.mu.Lock()
	defer su.l.mu.Unlock()
	r.kinds = map[string]int{}
	for _, a := range su.l.attempts {
		if a.phase != phase {
			continue
		}
		r.requests++
		if a.replay {
			r.replays++
		}
		in := w.overlaps(a)
		switch {
		case a.status == 0:
			if in {
				r.connIn++
			} else {
				r.connOut++
				r.outside = append(r.outside, fmt.Sprintf("%s at %s", a.err, a.start.Format("15:04:05.000")))
			}
			r.kinds[a.err]++
		case a.status >= 500:
			if a.status == 500 {
				// A fault the gateway did not recognise: whatever is down,
				// the client is owed a 503 with a code it can act on.
				r.internal = append(r.internal, fmt.Sprintf("%s at %s", a.code, a.start.Format("15:04:05.000")))
			}
			if in {
				r.s5xxIn++
			} else {
				r.s5xxOut++
				r.outside = append(r.outside, fmt.Sprintf("%d %s at %s", a.status, a.code, a.start.Format("15:04:05.000")))
			}
			r.kinds[fmt.Sprintf("%d %s", a.status, a.code)]++
		case a.status >= 400:
			r.s4xx++
			r.kinds[fmt.Sprintf("%d %s", a.status, a.code)]++
		default:
			r.s2xx++
		}
	}
}

// check compares what the clients were told with the database, the
// provider and the mail server, and returns every violation.
func (su *suite) check(phase int, r *row) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, l := su.s, su.l
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }

	if len(r.outside) > 0 {
		bad("%d errors outside the fault window: %s", len(r.outside), strings.Join(first(r.outside, 5), "; "))
	}
	if len(r.internal) > 0 {
		bad("%d answers were 500, not a 503 the client can retry: %s", len(r.internal), strings.Join(first(r.internal, 5), "; "))
	}
	l.mu.Lock()
	mismatches := append([]string(nil), l.replayMismatches...)
	requests := append([]*request(nil), l.requests...)
	l.mu.Unlock()
	for _, m := range first(mismatches, 10) {
		bad("replay answered otherwise: %s", m)
	}

	// What the clients were told.
	told := map[kind]map[string]*request{}
	for _, k := range kinds {
		told[k] = map[string]*request{}
	}
	balance := map[string]int64{}
	for _, rq := range requests {
		st, id, _ := rq.answer()
		switch {
		case st == 0:
			bad("%s %s never answered", rq.kind, rq.key)
			continue
		case st >= 300:
			continue
		case id == "":
			bad("%s %s answered %d without an id", rq.kind, rq.key, st)
			continue
		}
		if prev, dup := told[rq.kind][id]; dup {
			bad("%s %s: two requests (%s, %s) were told the same id", rq.kind, id, prev.key, rq.key)
		}
		told[rq.kind][id] = rq
		c := l.clients[rq.client].user.id
		switch rq.kind {
		case kindTopUp:
			balance[c] += rq.amount
		case kindTransfer:
			balance[c] -= rq.amount
			balance[l.clients[rq.to].user.id] += rq.amount
		case kindWithdrawal:
			balance[c] -= rq.amount
		}
	}

	// The books.
	// bookRow is a movement as the books hold it: its status, its ledger
	// transactions, for a withdrawal whether its payout is named
	// consistently (1) and its hold's status.
	type bookRow struct {
		status         string
		ledger, payout int
		hold           string
	}
	query := func(sql string, scan func(v *bookRow) []any) map[string]bookRow {
		m := map[string]bookRow{}
		rows, err := s.pool.Query(ctx, sql)
		if err != nil {
			bad("query: %v", err)
			return m
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var v bookRow
			if err := rows.Scan(append([]any{&id}, scan(&v)...)...); err != nil {
				bad("scan: %v", err)
				return m
			}
			m[id] = v
		}
		if err := rows.Err(); err != nil {
			bad("query: %v", err)
		}
		return m
	}
	dbTopups := query(`SELECT t.id::text, coalesce(s.status, 'pending'),
  (SELECT count(*) FROM ledger_transactions l WHERE l.kind = 'topup' AND l.reference = t.id::text)
FROM topups t LEFT JOIN topup_settlements s ON s.topup_id = t.id`,
		func(v *bookRow) []any { return []any{&v.status, &v.ledger} })
	dbTransfers := query(`SELECT t.id::text, 'succeeded',
  (SELECT count(*) FROM ledger_transactions l WHERE l.kind = 'transfer' AND l.reference = t.id::text)
FROM transfers t`,
		func(v *bookRow) []any { return []any{&v.status, &v.ledger} })
	// A withdrawal's payout is named by its settlement (the provider's
	// payout id); withdrawal_payouts holds it too unless the provider's
	// callback settled the withdrawal before the payout processor
	// recorded its create (it was killed in between, or was slower).
	dbWithdrawals := query(`SELECT w.id::text, coalesce(s.status, 'pending'),
  (SELECT count(*) FROM ledger_transactions l WHERE l.kind = 'withdrawal' AND l.reference = 'withdrawal:' || w.id::text),
  CASE WHEN s.provider_reference <> '' AND NOT EXISTS (
    SELECT 1 FROM withdrawal_payouts p WHERE p.withdrawal_id = w.id AND p.payout_id <> s.provider_reference) THEN 1 ELSE 0 END,
  h.status
FROM withdrawals w LEFT JOIN withdrawal_settlements s ON s.withdrawal_id = w.id JOIN ledger_holds h ON h.id = w.hold_id`,
		func(v *bookRow) []any { return []any{&v.status, &v.ledger, &v.payout, &v.hold} })
	stats := s.provider.Sandbox.Stats()
	for id := range told[kindTopUp] {
		v, ok := dbTopups[id]
		switch {
		case !ok:
			bad("top-up %s was answered 201 but is not in the books", id)
		case v.status != "succeeded" || v.ledger != 1:
			bad("top-up %s is %s with %d credits, want succeeded with 1", id, v.status, v.ledger)
		}
		if n := stats.PaymentsByReference[id]; n != 1 {
			bad("top-up %s has %d payments at the provider, want 1", id, n)
		}
	}
	for id := range told[kindTransfer] {
		if v, ok := dbTransfers[id]; !ok || v.ledger != 1 {
			bad("transfer %s was answered 201 but is in the books %d times (recorded: %v)", id, v.ledger, ok)
		}
	}
	for id := range told[kindWithdrawal] {
		v, ok := dbWithdrawals[id]
		switch {
		case !ok:
			bad("withdrawal %s was answered 201 but is not in the books", id)
		case v.status != "succeeded" || v.ledger != 1 || v.payout != 1 || v.hold != "captured":
			bad("withdrawal %s is %s with %d captures, its hold %s, payout named consistently: %v; want succeeded, 1, captured, true",
				id, v.status, v.ledger, v.hold, v.payout == 1)
		}
		if n := stats.PayoutsByReference[id]; n != 1 {
			bad("withdrawal %s has %d payouts at the provider, want 1", id, n)
		}
	}
	for name, m := range map[kind]map[string]bookRow{kindTopUp: dbTopups, kindTransfer: dbTransfers, kindWithdrawal: dbWithdrawals} {
		for id := range m {
			if _, ok := told[name][id]; !ok {
				bad("%s %s is in the books but no client was told about it", name, id)
			}
		}
	}
	for ref, n := range stats.PaymentsByReference {
		if _, ok := told[kindTopUp][ref]; !ok {
			bad("the provider holds %d payments for %s, which no client was told about", n, ref)
		}
	}
	for ref, n := range stats.PayoutsByReference {
		if _, ok := told[kindWithdrawal][ref]; !ok {
			bad("the provider paid out %d times for %s, which no client was told about", n, ref)
		}
	}
	var stray int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM ledger_transactions l WHERE NOT (
     (l.kind = 'topup' AND EXISTS (SELECT 1 FROM topups t WHERE t.id::text = l.reference))
  OR (l.kind = 'transfer' AND EXISTS (SELECT 1 FROM transfers t WHERE t.id::text = l.reference))
  OR (l.kind = 'withdrawal' AND EXISTS (SELECT 1 FROM withdrawals w WHERE 'withdrawal:' || w.id::text = l.reference)))`).Scan(&stray); err != nil {
		bad("query: %v", err)
	} else if stray > 0 {
		bad("%d ledger transactions book no top-up, transfer or withdrawal", stray)
	}
	rows, err := s.pool.Query(ctx, `SELECT owner_user_id::text, balance, held FROM ledger_accounts WHERE kind = 'wallet'`)
	if err != nil {
		bad("query: %v", err)
	} else {
		for rows.Next() {
			var owner string
			var bal, held int64
			if err := rows.Scan(&owner, &bal, &held); err != nil {
				bad("scan: %v", err)
				break
			}
			if bal != balance[owner] || held != 0 {
				bad("wallet of %s: balance %d held %d, the client was told of %d and nothing held", owner, bal, held, balance[owner])
			}
		}
		rows.Close()
	}

	// Events and mails.
	evs, err := loadOutbox(ctx, s)
	if err != nil {
		bad("outbox: %v", err)
	}
	users := map[string]bool{}
	for _, c := range l.clients {
		users[c.user.id] = true
	}
	perID := map[string]int{} // "type id" → events
	expected := map[mailKey]int64{}
	var maxSeq int64
	for _, e := range evs {
		maxSeq = max(maxSeq, e.seq)
		if !e.sent || e.park {
			bad("outbox event %s (%s) sent=%v parked=%v", e.id, e.typ, e.sent, e.park)
		}
		subject, mails, err := expectedMails(e)
		if err != nil {
			bad("outbox event %s: %v", e.id, err)
			continue
		}
		perID[e.typ+" "+subject]++
		for _, k := range mails {
			expected[k] = e.seq
		}
		var known bool
		switch e.typ {
		case events.TypeUserRegistered:
			known = users[subject]
		case events.TypeTopUpPending, events.TypeTopUpSucceeded:
			_, known = told[kindTopUp][subject]
		case events.TypeTransferSucceeded:
			_, known = told[kindTransfer][subject]
		case events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded:
			_, known = told[kindWithdrawal][subject]
		}
		if !known {
			bad("event %s (%s) is about %s, which no client was told about", e.id, e.typ, subject)
		}
	}
	want := map[string][]string{
		string(kindTopUp):      {events.TypeTopUpPending, events.TypeTopUpSucceeded},
		string(kindTransfer):   {events.TypeTransferSucceeded},
		string(kindWithdrawal): {events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded},
	}
	for k, ids := range told {
		for id := range ids {
			for _, typ := range want[string(k)] {
				if n := perID[typ+" "+id]; n != 1 {
					bad("%s %s has %d %s events, want 1", k, id, n, typ)
				}
			}
		}
	}
	for id := range users {
		if n := perID[events.TypeUserRegistered+" "+id]; n != 1 {
			bad("user %s has %d registration events, want 1", id, n)
		}
	}
	got := receivedMails(s)
	for k, seq := range expected {
		n := len(got[k])
		if n != 1 && !su.resentAfterCut(got[k]) {
			bad("the %s mail of event %s reached %s %d times, want once", k.template, k.event, k.to, n)
		}
		if seq > su.outboxDone {
			r.mailsExpected++
			if n > 0 {
				r.mailsSent++
			}
			if n > 1 {
				r.mailsDup += n - 1
			}
		}
	}
	for k, at := range got {
		if _, ok := expected[k]; !ok {
			bad("%d mails %s of event %s reached %s, which no event calls for", len(at), k.template, k.event, k.to)
		}
	}
	su.outboxDone = maxSeq
	if n, err := su.lag.deadLetters(); err != nil || n != 0 {
		bad("%d events dead-lettered (%v)", n, err)
	}

	// The gateway's own checks.
	if outp, err := s.paygate("ledger", "verify"); err != nil {
		bad("paygate ledger verify: %v\n%s", err, outp)
	}
	if outp, err := s.paygate("reconcile"); err != nil {
		bad("paygate reconcile: %v\n%s", err, outp)
	}
	return out
}

// loadOutbox reads every outbox event.
func loadOutbox(ctx context.Context, s *stack) ([]outboxEvent, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, event_id::text, event_type, payload, sent_at IS NOT NULL, parked_at IS NOT NULL
FROM outbox ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outboxEvent
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.seq, &e.id, &e.typ, &e.payload, &e.sent, &e.park); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// expectedMails returns what an event is about (a user, top-up, transfer
// or withdrawal id) and the mails it calls for: one to the user the event
// concerns, two for a transfer (its sender and its recipient). The
// suite's load makes no other event.
func expectedMails(e outboxEvent) (string, []mailKey, error) {
	one := func(subject, template, to string) (string, []mailKey, error) {
		return subject, []mailKey{{e.id, template, strings.ToLower(to)}}, nil
	}
	switch e.typ {
	case events.TypeUserRegistered:
		var p events.UserRegistered
		if err := json.Unmarshal(e.payload, &p); err != nil {
			return "", nil, err
		}
		return one(p.UserID.String(), notify.TemplateWelcome, p.Email)
	case events.TypeTopUpPending:
		var p events.TopUpPending
		if err := json.Unmarshal(e.payload, &p); err != nil {
			return "", nil, err
		}
		return one(p.TopUpID.String(), notify.TemplateTopupPending, p.Email)
	case events.TypeTopUpSucceeded:
		var p events.TopUpSucceeded
		if err := json.Unmarshal(e.payload, &p); err != nil {
			return "", nil, err
		}
		return one(p.TopUpID.String(), notify.TemplateTopupSucceeded, p.Email)
	case events.TypeTransferSucceeded:
		var p events.TransferSucceeded
		if err := json.Unmarshal(e.payload, &p); err != nil {
			return "", nil, err
		}
		return p.TransferID.String(), []mailKey{
			{e.id, notify.TemplateTransferSent, strings.ToLower(p.Sender.Email)},
			{e.id, notify.TemplateTransferReceived, strings.ToLower(p.Recipient.Email)},
		}, nil
	case events.TypeWithdrawalRequested, events.TypeWithdrawalSucceeded:
		var p events.Withdrawal
		if err := json.Unmarshal(e.payload, &p); err != nil {
			return "", nil, err
		}
		tmpl := notify.TemplateWithdrawalRequested
		if e.typ == events.TypeWithdrawalSucceeded {
			tmpl = notify.TemplateWithdrawalSucceeded
		}
		return one(p.WithdrawalID.String(), tmpl, p.Email)
	}
	return "", nil, fmt.Errorf("event type %s: the load makes none", e.typ)
}

// first returns at most n of xs, sorted.
func first(xs []string, n int) []string {
	xs = append([]string(nil), xs...)
	sort.Strings(xs)
	if len(xs) > n {
		return append(xs[:n], fmt.Sprintf("(%d more)", len(xs)-n))
	}
	return xs
}

// waitGroupsJoined waits until each of the gateway's consumer groups is
// stable with members members, and fails the test after 60 s.
//
// Fault e waits for it before it kills replica B, because of a defect of
// the test broker (kfake, at the version in go.mod), not of paygate: a
// new member whose JoinGroup answer cannot be delivered (its process was
// killed while it waited in the join) is left in the group with no
// session timer, and once the leader's SyncGroup clears the pending-sync
// deadline nothing ever removes it. The group stays in that generation
// and the dead member's partitions are never read again. Kafka itself
// schedules every member's session expiry when it completes the join,
// whether or not the answer arrives, so a replica killed mid-join is
// removed after its session timeout there.
func (p *lagProbe) waitGroupsJoined(t *testing.T, members int) {
	t.Helper()
	d := config.Defaults()
	groups := []string{d.Notify.Group, d.Payout.Group, d.Payout.Group + "-retry"}
	sc := sarama.NewConfig()
	sc.Net.DialTimeout = time.Second
	admin, err := sarama.NewClusterAdmin(p.cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	deadline := time.Now().Add(60 * time.Second)
	last := ""
	for {
		descs, err := admin.DescribeConsumerGroups(groups)
		ok := err == nil && len(descs) == len(groups)
		last = fmt.Sprint(err)
		for _, g := range descs {
			if g.State != "Stable" || len(g.Members) != members {
				ok = false
			}
			last += fmt.Sprintf("; %s %s with %d members", g.GroupId, g.State, len(g.Members))
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer groups not stable with %d members each after 60 s: %s", members, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
