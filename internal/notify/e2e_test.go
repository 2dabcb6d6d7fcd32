package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/google/uuid"
	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/withdraw"
)

// mailApp is the whole application with the email consumer, pointed at a
// test SMTP server.
type mailApp struct {
	*apptest.Env
	smtp     *smtptest.Server
	consumer *notify.Consumer
	withdraw *withdraw.Service
}

var (
	moduleOnce  sync.Once
	moduleInApp bool
)

// notifyModule adds notify.Module to the test application unless
// app.Options already carries it (once the line is added to app.go).
func notifyModule(t *testing.T) apptest.Option {
	t.Helper()
	moduleOnce.Do(func() {
		cfg := apptest.Config("postgres://localhost/x", config.Kafka{Brokers: []string{"127.0.0.1:1"}})
		cfg.Notify, cfg.SMTP = notifyConfig(), config.SMTP{Host: "127.0.0.1", Port: 1, TLS: "none", Timeout: time.Second, From: "x@y.z"}
		moduleInApp = fx.ValidateApp(app.Options(cfg, zap.NewNop()), fx.Invoke(func(*notify.Consumer) {})) == nil
	})
	if moduleInApp {
		return apptest.WithFx()
	}
	return apptest.WithFx(notify.Module)
}

func startMailApp(t *testing.T, adjust ...func(*config.Config)) *mailApp {
	t.Helper()
	return startMailAppOn(t, kafkatest.NewBroker(t), nil, adjust...)
}

// startMailAppOn is startMailApp against the given broker, with extra
// options in the application graph.
func startMailAppOn(t *testing.T, broker *kafkatest.Broker, extra []fx.Option, adjust ...func(*config.Config)) *mailApp {
	t.Helper()
	return startMailAppWith(t, smtptest.Start(t), broker, extra, adjust...)
}

// startMailAppWith is startMailAppOn mailing through srv, for tests that
// set the server up before the application sends anything.
func startMailAppWith(t *testing.T, srv *smtptest.Server, broker *kafkatest.Broker, extra []fx.Option, adjust ...func(*config.Config)) *mailApp {
	t.Helper()
	m := &mailApp{smtp: srv}
	m.Env = apptest.StartWithBroker(t, broker,
		apptest.WithConfig(func(c *config.Config) {
			c.SMTP = config.SMTP{Host: srv.Host, Port: srv.Port, TLS: "none", Timeout: 2 * time.Second, From: "paygate <no-reply@paygate.test>"}
			c.Notify = notifyConfig()
			for _, f := range adjust {
				f(c)
			}
		}),
		notifyModule(t),
		apptest.WithFx(fx.Populate(&m.consumer, &m.withdraw)),
		apptest.WithFx(extra...),
	)
	return m
}

func (m *mailApp) topics() []string {
	k := m.Config.Kafka
	return []string{k.TopicAuth, k.TopicTopup, k.TopicTransfer, k.TopicWithdraw, m.Config.Notify.RetryTopic}
}

// settle waits until the outbox is published and the email group has
// committed every record.
func (m *mailApp) settle(t *testing.T, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the outbox to drain", func() bool {
		var n int
		if err := m.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	waitCaughtUp(t, m.Broker, m.Config.Notify.Group, m.topics(), timeout)
}

// mails returns the accepted mails to addr by template.
func (m *mailApp) mails(addr string) map[string][]smtptest.Message {
	out := map[string][]smtptest.Message{}
	for _, msg := range m.smtp.To(addr) {
		out[templateOf(msg)] = append(out[templateOf(msg)], msg)
	}
	return out
}

// waitMails waits until addr received exactly the given number of mails
// of each template.
func (m *mailApp) waitMails(t *testing.T, addr string, want map[string]int, timeout time.Duration) map[string][]smtptest.Message {
	t.Helper()
	var got map[string][]smtptest.Message
	deadline := time.Now().Add(timeout)
	for {
		got = m.mails(addr)
		ok := len(got) == len(want)
		for tmpl, n := range want {
			ok = ok && len(got[tmpl]) == n
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			counts := map[string]int{}
			for k, v := range got {
				counts[k] = len(v)
			}
			t.Fatalf("mails to %s: %v, want %v", addr, counts, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric reads one sample of /metrics; 0 when absent.
func (m *mailApp) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(m.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var total float64
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += f
	}
	return total
}

func fund(t *testing.T, e *mailApp, u apptest.User, amount int64) string {
	t.Helper()
	r := e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": amount, "method": "ovo", "reference": "INV-" + u.ID[:8]},
		"Idempotency-Key", uuid.NewString())
	if r.Status != http.StatusCreated {
		t.Fatalf("top-up: %d %s", r.Status, r.Body)
	}
	// The customer pays at the provider; its callback credits the wallet.
	id := r.Map(t)["id"].(string)
	if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
		t.Fatalf("sandbox pay %s: %v", id, err)
	}
	e.WaitTopUp(t, u.Token, id, "succeeded")
	return id
}

func send(t *testing.T, e *mailApp, from apptest.User, to string, amount int64, key string) *apptest.Response {
	t.Helper()
	return e.Post(t, "/v1/transfers", from.Token, map[string]any{"to": to, "amount": amount, "note": "rent"}, "Idempotency-Key", key)
}

func withdrawal(t *testing.T, e *mailApp, u apptest.User, amount int64) uuid.UUID {
	t.Helper()
	r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": amount, "bank_code": "BCA",
		"bank_account_number": "9876543210", "bank_account_name": "Alice Smith"}, "Idempotency-Key", uuid.NewString())
	if r.Status != http.StatusCreated {
		t.Fatalf("withdrawal: %d %s", r.Status, r.Body)
	}
	return uuid.MustParse(r.Map(t)["id"].(string))
}

func body(m smtptest.Message) string { return m.Subject + "\n" + m.Text + "\n" + m.HTML }

func mustContain(t *testing.T, m smtptest.Message, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(m.Text, p) || !strings.Contains(m.HTML, p) {
			t.Errorf("%s mail to %v lacks %q:\n%s", templateOf(m), m.To, p, m.Text)
		}
	}
}

func mustNotContain(t *testing.T, m smtptest.Message, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if strings.Contains(body(m), p) || bytes.Contains(m.Raw, []byte(p)) {
			t.Errorf("%s mail to %v shows %q", templateOf(m), m.To, p)
		}
	}
}

// TestEveryEventMailsTheRightPeople runs the real application, broker and
// SMTP server through every mailed event type and checks each mail's
// recipient, template and amounts; the transfer's two mails each show only
// their reader's balance; pending top-ups show their family's payment
// instructions; reversals mail nothing and are not dead-lettered.
func TestEveryEventMailsTheRightPeople(t *testing.T) {
	t.Parallel()
	e := startMailApp(t)
	ctx := context.Background()
	alice, bob := e.NewUser(t), e.NewUser(t)

	fund(t, e, alice, 1000000)
	bobTopup := fund(t, e, bob, 300000)
	if r := send(t, e, alice, bob.AccountNumber, 123456, uuid.NewString()); r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	// alice: 1.000.000 - 123.456 = 876.544; bob: 300.000 + 123.456 = 423.456
	w1, w2 := withdrawal(t, e, alice, 100000), withdrawal(t, e, alice, 50000)
	if _, err := e.withdraw.Settle(ctx, w1, withdraw.Outcome{Succeeded: true, ProviderReference: "P-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.withdraw.Settle(ctx, w2, withdraw.Outcome{Succeeded: false, Reason: "The account is closed."}); err != nil {
		t.Fatal(err)
	}
	if r := e.Post(t, "/v1/auth/password", bob.Token, map[string]string{"current_password": bob.Password, "new_password": "another-password-1"}); r.Status/100 != 2 {
		t.Fatalf("password change: %d %s", r.Status, r.Body)
	}
	admin := e.Admin(t)
	if r := e.Post(t, "/v1/topups/"+bobTopup+"/reversal", admin.Token, map[string]string{"reason": "chargeback"}, "Idempotency-Key", uuid.NewString()); r.Status != http.StatusOK {
		t.Fatalf("top-up reversal: %d %s", r.Status, r.Body)
	}

	// The payment rails' top-up events, published as the outbox relay
	// publishes them: pending top-ups of three instruction families, one
	// that expired and one that failed.
	now := time.Now().UTC()
	pendingOf := func(u apptest.User, amount int64, method string, in events.PaymentInstructions) events.TopUpPending {
		return events.TopUpPending{TopUpID: uuid.New(), UserID: uuid.MustParse(u.ID), Email: u.Email, Firstname: "Test",
			Amount: amount, Currency: "IDR", Method: method, Reference: "INV-" + method, Provider: "sandbox", Payment: in,
			ExpiresAt: now.Add(24 * time.Hour), CreatedAt: now}
	}
	closedOf := func(u apptest.User, status, reason string) events.TopUpClosed {
		return events.TopUpClosed{TopUpID: uuid.New(), UserID: uuid.MustParse(u.ID), Email: u.Email, Firstname: "Test",
			Amount: 80000, Currency: "IDR", Method: "ovo", Status: status, Reason: reason, ClosedAt: now}
	}
	rails := []struct {
		to      apptest.User
		typ, id string
		payload any
	}{
		{alice, events.TypeTopUpPending, uuid.NewString(), pendingOf(alice, 250000, "bca", events.PaymentInstructions{
			Family: "virtual_account", Channel: "BCA_VIRTUAL_ACCOUNT", BankCode: "BCA", VirtualAccountNumber: "8808000011112222"})},
		{alice, events.TypeTopUpPending, uuid.NewString(), pendingOf(alice, 60000, "gopay", events.PaymentInstructions{
			Family: "ewallet", Channel: "GOPAY", CheckoutURL: "https://checkout.paygate.test/pr-1", DeeplinkURL: "gojek://gopay/pay?pr=1"})},
		{bob, events.TypeTopUpPending, uuid.NewString(), pendingOf(bob, 45000, "alfamart", events.PaymentInstructions{
			Family: "retail", Channel: "ALFAMART", Retailer: "ALFAMART", PaymentCode: "SBX000111222"})},
		{alice, events.TypeTopUpExpired, uuid.NewString(), closedOf(alice, "expired", "No payment arrived in time.")},
		{bob, events.TypeTopUpFailed, uuid.NewString(), closedOf(bob, "failed", "The e-wallet declined the payment.")},
	}
	var records []*sarama.ProducerMessage
	for _, r := range rails {
		records = append(records, cloudEvent(t, e.Config.Kafka.TopicTopup, r.to.ID, r.typ, r.id, r.payload, nil))
	}
	if err := rawProducer(t, e.Broker.Addr()).SendMessages(records); err != nil {
		t.Fatal(err)
	}

	aliceWant := map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTopupPending: 3,
		notify.TemplateTopupExpired: 1, notify.TemplateTransferSent: 1, notify.TemplateWithdrawalRequested: 2,
		notify.TemplateWithdrawalSucceeded: 1, notify.TemplateWithdrawalFailed: 1}
	bobWant := map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTopupPending: 2,
		notify.TemplateTopupFailed: 1, notify.TemplateTransferReceived: 1, notify.TemplatePasswordChanged: 1}
	am := e.waitMails(t, alice.Email, aliceWant, 60*time.Second)
	bm := e.waitMails(t, bob.Email, bobWant, 60*time.Second)

	mustContain(t, am[notify.TemplateWelcome][0], alice.AccountNumber)
	mustContain(t, am[notify.TemplateTopupSucceeded][0], "IDR 1.000.000", "ovo")
	mustContain(t, bm[notify.TemplateTopupSucceeded][0], "IDR 300.000")
	if s := am[notify.TemplateTopupSucceeded][0].Subject; s != "Top-up of IDR 1.000.000 paid" {
		t.Errorf("top-up subject %q", s)
	}

	// The rails' mails: each from its own event, with its instructions.
	byEvent := map[string]smtptest.Message{}
	for _, m := range append(append(am[notify.TemplateTopupPending], am[notify.TemplateTopupExpired]...),
		append(bm[notify.TemplateTopupPending], bm[notify.TemplateTopupFailed]...)...) {
		byEvent[eventOf(m)] = m
	}
	want := []struct {
		subject string
		parts   []string
	}{
		{"Top-up of IDR 250.000 waiting for payment", []string{"bca", "INV-bca", "BCA", "8808000011112222", "Pay before"}},
		{"Top-up of IDR 60.000 waiting for payment", []string{"gopay", "https://checkout.paygate.test/pr-1", "gojek://gopay/pay?pr=1"}},
		{"Top-up of IDR 45.000 waiting for payment", []string{"alfamart", "ALFAMART", "SBX000111222"}},
		{"Top-up of IDR 80.000 expired", []string{"No payment arrived in time.", "Nothing was credited"}},
		{"Top-up of IDR 80.000 failed", []string{"The e-wallet declined the payment.", "Nothing was credited"}},
	}
	for i, r := range rails {
		m, ok := byEvent[r.id]
		if !ok {
			t.Errorf("no mail for the %s event %s", r.typ, r.id)
			continue
		}
		if m.To[0] != r.to.Email || m.Subject != want[i].subject {
			t.Errorf("%s mail to %v %q, want to %s %q", r.typ, m.To, m.Subject, r.to.Email, want[i].subject)
		}
		mustContain(t, m, want[i].parts...)
	}
	if html := byEvent[rails[1].id].HTML; !strings.Contains(html, `href="https://checkout.paygate.test/pr-1"`) ||
		!strings.Contains(html, `href="gojek://gopay/pay?pr=1"`) {
		t.Errorf("the e-wallet mail does not link its checkout and app:\n%s", html)
	}
	mustNotContain(t, byEvent[rails[0].id], "SBX000111222", "checkout.paygate.test")

	// The transfer: each side its own balance, never the other's.
	sent, recv := am[notify.TemplateTransferSent][0], bm[notify.TemplateTransferReceived][0]
	if eventOf(sent) != eventOf(recv) {
		t.Fatalf("transfer mails of events %s and %s, want one event", eventOf(sent), eventOf(recv))
	}
	mustContain(t, sent, "IDR 123.456", "IDR 876.544", "****"+bob.AccountNumber[len(bob.AccountNumber)-4:])
	mustContain(t, recv, "IDR 123.456", "IDR 423.456", "****"+alice.AccountNumber[len(alice.AccountNumber)-4:])
	mustNotContain(t, sent, "423.456", "423456", bob.AccountNumber, bob.Email)
	mustNotContain(t, recv, "876.544", "876544", alice.AccountNumber, alice.Email)
	if sent.Subject != "You sent IDR 123.456 to Test "+lastname(t, e, bob) || !strings.HasPrefix(recv.Subject, "You received IDR 123.456 from Test ") {
		t.Errorf("transfer subjects %q / %q", sent.Subject, recv.Subject)
	}

	// Withdrawals: amounts, the last four digits and never the account.
	for _, m := range append(am[notify.TemplateWithdrawalRequested], am[notify.TemplateWithdrawalSucceeded][0], am[notify.TemplateWithdrawalFailed][0]) {
		mustContain(t, m, "****3210", "BCA")
		mustNotContain(t, m, "9876543210", "987654")
	}
	mustContain(t, am[notify.TemplateWithdrawalSucceeded][0], "IDR 100.000")
	mustContain(t, am[notify.TemplateWithdrawalFailed][0], "IDR 50.000", "The account is closed.", "IDR 776.544")
	if s := am[notify.TemplateWithdrawalFailed][0].Subject; s != "Withdrawal of IDR 50.000 failed" {
		t.Errorf("failed withdrawal subject %q", s)
	}
	for _, m := range am[notify.TemplateWithdrawalRequested] {
		if m.Subject != "Withdrawal of IDR 100.000 requested" && m.Subject != "Withdrawal of IDR 50.000 requested" {
			t.Errorf("withdrawal requested subject %q", m.Subject)
		}
	}

	// Every record consumed, reversals included; none dead-lettered, and
	// nothing more mailed.
	e.settle(t, 60*time.Second)
	if recs := e.Broker.ReadToEnd(t, e.Config.Notify.DLQTopic); len(recs) != 0 {
		t.Fatalf("dead letters: %v", recs[0].Headers)
	}
	e.waitMails(t, alice.Email, aliceWant, time.Second)
	e.waitMails(t, bob.Email, bobWant, time.Second)
	for _, m := range e.smtp.Messages() {
		if m.From != "no-reply@paygate.test" || len(m.To) != 1 {
			t.Errorf("envelope %s -> %v", m.From, m.To)
		}
	}
}

func lastname(t *testing.T, e *mailApp, u apptest.User) string {
	t.Helper()
	var me struct {
		Lastname string `json:"lastname"`
	}
	e.Get(t, "/v1/auth/me", u.Token).JSON(t, &me)
	return me.Lastname
}

// TestRedeliveredEventsSendNothingNew deletes the email group's committed
// offsets, so the consumer reads every event again from the oldest
// record: nothing is mailed again, and the duplicates are counted.
func TestRedeliveredEventsSendNothingNew(t *testing.T) {
	t.Parallel()
	e := startMailApp(t)
	ctx := context.Background()
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 500000)
	if r := send(t, e, alice, bob.Email, 70000, uuid.NewString()); r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	e.waitMails(t, alice.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupPending: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTransferSent: 1}, 60*time.Second)
	e.waitMails(t, bob.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTransferReceived: 1}, 60*time.Second)
	e.settle(t, 60*time.Second)
	before := len(e.smtp.Messages())
	dupBefore := e.metric(t, "paygate_notify_emails_total", `result="duplicate"`)

	// Stop the consumer (it leaves the group), delete the group and its
	// offsets, start it again: it begins at the oldest record.
	if err := e.consumer.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin([]string{e.Broker.Addr()}, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	eventually(t, 30*time.Second, "the group to be deleted", func() bool {
		return admin.DeleteConsumerGroup(e.Config.Notify.Group) == nil
	})
	if caughtUp(t, e.Broker, e.Config.Notify.Group, e.topics()) {
		t.Fatal("offsets still committed after deleting the group")
	}
	if err := e.consumer.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.settle(t, 60*time.Second)

	if after := len(e.smtp.Messages()); after != before {
		t.Fatalf("%d mails after redelivery, want %d: redelivered events were mailed again", after, before)
	}
	if dup := e.metric(t, "paygate_notify_emails_total", `result="duplicate"`) - dupBefore; dup < float64(before) {
		t.Fatalf("%v duplicates skipped, want at least %d: the events were not read again", dup, before)
	}
}

// TestBrokerOutageLosesAndDuplicatesNoMail: 200 transfers succeed through
// the HTTP API while the broker is down; once it is back, each of their
// 400 mails arrives exactly once.
func TestBrokerOutageLosesAndDuplicatesNoMail(t *testing.T) {
	t.Parallel()
	e := startMailApp(t)
	const senders, transfers = 4, 200
	var from, to []apptest.User
	for range senders {
		from, to = append(from, e.NewUser(t)), append(to, e.NewUser(t))
	}
	for _, u := range from {
		fund(t, e, u, 10000*transfers/senders)
	}
	e.settle(t, 60*time.Second)
	before := len(e.smtp.Messages())

	e.Broker.Stop()
	start := time.Now()
	for i := range transfers {
		key := fmt.Sprintf("outage-%d", i)
		r := send(t, e, from[i%senders], to[i%senders].AccountNumber, 10000, key)
		if r.Status != http.StatusCreated {
			t.Fatalf("transfer %d: %d %s", i, r.Status, r.Body)
		}
		if i%25 == 0 { // a client retry with the same key books nothing new
			if again := send(t, e, from[i%senders], to[i%senders].AccountNumber, 10000, key); again.Status != http.StatusCreated ||
				again.Map(t)["id"] != r.Map(t)["id"] {
				t.Fatalf("replay %d: %d %s", i, again.Status, again.Body)
			}
		}
	}
	t.Logf("%d transfers with the broker down in %s", transfers, time.Since(start).Round(time.Millisecond))
	var pending int
	if err := e.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE sent_at IS NULL").Scan(&pending); err != nil {
		t.Fatal(err)
	}
	if pending != transfers {
		t.Fatalf("%d events pending while the broker is down, want %d", pending, transfers)
	}
	e.Broker.Start()

	e.smtp.Wait(t, before+2*transfers, 90*time.Second)
	e.settle(t, 60*time.Second)
	msgs := e.smtp.Messages()
	byID := map[string]int{}
	events := map[string]map[string]bool{}
	for _, m := range msgs[before:] {
		byID[m.MessageID]++
		tmpl := templateOf(m)
		if tmpl != notify.TemplateTransferSent && tmpl != notify.TemplateTransferReceived {
			t.Fatalf("unexpected %s mail", tmpl)
		}
		if events[eventOf(m)] == nil {
			events[eventOf(m)] = map[string]bool{}
		}
		events[eventOf(m)][tmpl] = true
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("mail %s arrived %d times", id, n)
		}
	}
	if len(msgs)-before != 2*transfers || len(events) != transfers {
		t.Fatalf("%d mails for %d events, want %d for %d", len(msgs)-before, len(events), 2*transfers, transfers)
	}
	for id, kinds := range events {
		if len(kinds) != 2 {
			t.Fatalf("event %s has mails %v, want sent and received", id, kinds)
		}
	}
}

// TestSMTPOutageDelaysButDeliversEachMailOnce: while the server answers
// 451 the mails go through the retry topic; after it recovers each
// arrives exactly once.
func TestSMTPOutageDelaysButDeliversEachMailOnce(t *testing.T) {
	t.Parallel()
	// The outage begins before the application starts: the bootstrap
	// administrator's welcome mail is sent at once, and must meet it too.
	srv := smtptest.Start(t)
	srv.Refuse(451)
	e := startMailAppWith(t, srv, kafkatest.NewBroker(t), nil, func(c *config.Config) { c.Notify.MaxAttempts = 20 })
	alice, bob := e.NewUser(t), e.NewUser(t)
	fund(t, e, alice, 200000)
	if r := send(t, e, alice, bob.Email, 50000, uuid.NewString()); r.Status != http.StatusCreated {
		t.Fatalf("transfer: %d %s", r.Status, r.Body)
	}
	eventually(t, 60*time.Second, "retries while SMTP refuses", func() bool {
		return e.metric(t, "paygate_notify_retries_total") >= 5 && e.smtp.Refusals() >= 5
	})
	if n := len(e.smtp.Messages()); n != 0 {
		t.Fatalf("%d mails accepted during the outage", n)
	}
	time.Sleep(time.Second)
	e.smtp.Refuse(0)

	e.waitMails(t, alice.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupPending: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTransferSent: 1}, 60*time.Second)
	e.waitMails(t, bob.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTransferReceived: 1}, 60*time.Second)
	e.settle(t, 60*time.Second)
	// Nothing more arrives once every record, retries included, is done.
	e.waitMails(t, alice.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTopupPending: 1, notify.TemplateTopupSucceeded: 1, notify.TemplateTransferSent: 1}, time.Second)
	e.waitMails(t, bob.Email, map[string]int{notify.TemplateWelcome: 1, notify.TemplateTransferReceived: 1}, time.Second)
	if recs := e.Broker.ReadToEnd(t, e.Config.Notify.DLQTopic); len(recs) != 0 {
		t.Fatalf("dead letters: %v", recs[0].Headers)
	}
	retries := readTopic(t, e.Broker.Addr(), e.Config.Notify.RetryTopic, 1, 5*time.Second)
	if len(retries) == 0 || retries[0].Headers[notify.HeaderNotBefore] == "" || !strings.Contains(retries[0].Headers[notify.HeaderError], "451") ||
		retries[0].Headers[notify.HeaderAttempt] != "1" || retries[0].Headers[kafka.HeaderType] == "" {
		t.Fatalf("retry record headers: %v", retries)
	}
}

// TestPoisonRecordsAreDeadLetteredAndTheNextIsMailed publishes raw bad
// records to the auth topic: each lands in the dead-letter topic with its
// error, and the next good event is mailed.
func TestPoisonRecordsAreDeadLetteredAndTheNextIsMailed(t *testing.T) {
	t.Parallel()
	e := startMailApp(t)
	topic := e.Config.Kafka.TopicAuth
	ce := func(typ, data string) *sarama.ProducerMessage {
		return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("poison"), Value: sarama.StringEncoder(data),
			Headers: []sarama.RecordHeader{
				{Key: []byte(kafka.HeaderSpecVersion), Value: []byte("1.0")},
				{Key: []byte(kafka.HeaderID), Value: []byte(uuid.NewString())},
				{Key: []byte(kafka.HeaderSource), Value: []byte("/test")},
				{Key: []byte(kafka.HeaderType), Value: []byte(typ)},
				{Key: []byte(kafka.HeaderContentType), Value: []byte("application/json")},
			}}
	}
	bad := []*sarama.ProducerMessage{
		{Topic: topic, Key: sarama.StringEncoder("poison"), Value: sarama.StringEncoder(`{"email":"x@example.com"}`)}, // no ce_* headers
		ce(events.TypeUserRegistered, `{"email": "x@example.com",`),                                                   // bad JSON
		ce("paygate.user.teleported", `{"email":"x@example.com"}`),                                                    // unknown type
		ce(events.TypePasswordChanged, `{"firstname":"Ann"}`),                                                         // no email
	}
	if err := rawProducer(t, e.Broker.Addr()).SendMessages(bad); err != nil {
		t.Fatal(err)
	}
	u := e.NewUser(t)
	e.waitMails(t, u.Email, map[string]int{notify.TemplateWelcome: 1}, 60*time.Second)

	recs := readTopic(t, e.Broker.Addr(), e.Config.Notify.DLQTopic, len(bad), 30*time.Second)
	if len(recs) != len(bad) {
		t.Fatalf("%d dead letters, want %d", len(recs), len(bad))
	}
	want := []string{"not a binary-mode CloudEvent", "does not decode", "unknown event type", "has no email"}
	for i, r := range recs {
		h := r.Headers
		if h[notify.HeaderReason] != notify.ReasonPoison || !strings.Contains(h[notify.HeaderError], want[i]) ||
			h[notify.HeaderOriginTopic] != topic || r.Key != "poison" || string(r.Value) != string(bad[i].Value.(sarama.StringEncoder)) {
			t.Errorf("dead letter %d: key %q value %s headers %v; want reason poison, error with %q", i, r.Key, r.Value, h, want[i])
		}
		if strings.Contains(h[notify.HeaderError], "@") {
			t.Errorf("dead letter %d error shows an address: %q", i, h[notify.HeaderError])
		}
	}
	if n := e.metric(t, "paygate_notify_dead_letters_total", `reason="poison"`); n != float64(len(bad)) {
		t.Fatalf("dead letters (poison) metric = %v, want %d", n, len(bad))
	}
}

// TestExhaustedAttemptsAreDeadLettered: a recipient whose server keeps
// answering 451 is given PAYGATE_NOTIFY_MAX_ATTEMPTS attempts, then the
// record goes to the dead-letter topic with the error, and the metric
// counts it; other mails are not held up.
func TestExhaustedAttemptsAreDeadLettered(t *testing.T) {
	t.Parallel()
	e := startMailApp(t, func(c *config.Config) { c.Notify.MaxAttempts = 3 })
	e.smtp.RefuseRecipients(func(addr string) int {
		if strings.HasPrefix(addr, "doomed") {
			return 451
		}
		return 0
	})
	r := e.Post(t, "/v1/auth/register", "", map[string]string{"firstname": "Doomed", "lastname": "D",
		"email": "doomed@paygate.test", "password": "password-doomed", "confirm_password": "password-doomed"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	other := e.NewUser(t)
	e.waitMails(t, other.Email, map[string]int{notify.TemplateWelcome: 1}, 60*time.Second)

	recs := readTopic(t, e.Broker.Addr(), e.Config.Notify.DLQTopic, 1, 60*time.Second)
	if len(recs) != 1 {
		t.Fatal("no dead letter")
	}
	h := recs[0].Headers
	if h[notify.HeaderReason] != notify.ReasonExhausted || h[notify.HeaderAttempt] != "3" || !strings.Contains(h[notify.HeaderError], "451") ||
		h[kafka.HeaderType] != events.TypeUserRegistered || h[notify.HeaderOriginTopic] != e.Config.Kafka.TopicAuth {
		t.Fatalf("dead letter headers %v", h)
	}
	eventually(t, 10*time.Second, "the dead-letter metric", func() bool {
		return e.metric(t, "paygate_notify_dead_letters_total", `reason="exhausted"`) == 1
	})
	if n := e.metric(t, "paygate_notify_retries_total"); n != 2 {
		t.Fatalf("retries = %v, want 2", n)
	}
	if n := e.metric(t, "paygate_notify_emails_total", `template="welcome"`, `result="failed"`); n != 3 {
		t.Fatalf("failed welcome attempts = %v, want 3", n)
	}
	var status string
	var attempts int
	if err := e.Pool.QueryRow(context.Background(), `SELECT status, attempts FROM notify_deliveries WHERE recipient = 'doomed@paygate.test'`).Scan(&status, &attempts); err != nil {
		t.Fatal(err)
	}
	if status != notify.StatusPending || attempts != 3 {
		t.Fatalf("delivery row %s after %d attempts, want pending after 3 (a replay from the dead-letter topic sends it)", status, attempts)
	}
	if n := len(e.smtp.To("doomed@paygate.test")); n != 0 {
		t.Fatalf("%d mails to the refused address", n)
	}
}
