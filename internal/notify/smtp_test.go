package notify_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/config"
)

func smtpConfig(host string, port int) config.SMTP {
	return config.SMTP{Host: host, Port: port, TLS: "none", Timeout: 2 * time.Second, From: "paygate <no-reply@paygate.test>"}
}

func newSender(t *testing.T, cfg config.SMTP) *notify.SMTPSender {
	t.Helper()
	s, err := notify.NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testMessage = notify.Message{ID: "e1.welcome@paygate", To: "ann@example.com", Subject: "Welcome to paygate — Ann",
	Text: "Hi Ann,\nYour balance: IDR 150.000\n", HTML: "<p>Hi Ann, your balance: <strong>IDR 150.000</strong></p>", Template: "welcome"}

func TestSMTPSenderDeliversTextAndHTML(t *testing.T) {
	srv := smtptest.Start(t)
	if err := newSender(t, smtpConfig(srv.Host, srv.Port)).Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	m := srv.Wait(t, 1, 5*time.Second)[0]
	if m.From != "no-reply@paygate.test" || len(m.To) != 1 || m.To[0] != "ann@example.com" {
		t.Fatalf("envelope %s -> %v", m.From, m.To)
	}
	if m.Subject != testMessage.Subject || m.MessageID != testMessage.ID {
		t.Fatalf("subject %q, message id %q", m.Subject, m.MessageID)
	}
	if m.Text != testMessage.Text {
		t.Fatalf("text part %q", m.Text)
	}
	if !strings.Contains(m.HTML, "<strong>IDR 150.000</strong>") {
		t.Fatalf("html part %q", m.HTML)
	}
	if got := m.Header.Get("From"); !strings.Contains(got, "paygate") || !strings.Contains(got, "no-reply@paygate.test") {
		t.Fatalf("From header %q", got)
	}
}

func TestSMTPSenderClassifiesFailures(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	ctx := context.Background()

	srv.Refuse(451)
	err := s.Send(ctx, testMessage)
	if err == nil || notify.IsPermanent(err) || !strings.Contains(notify.ErrorSummary(err), "451") {
		t.Fatalf("451: err = %v, want a transient error naming 451", err)
	}
	if strings.Contains(notify.ErrorSummary(err), "@") {
		t.Fatalf("summary shows an address: %s", notify.ErrorSummary(err))
	}

	srv.Refuse(0)
	srv.RefuseRecipients(func(string) int { return 550 })
	err = s.Send(ctx, testMessage)
	if !notify.IsPermanent(err) || !strings.Contains(notify.ErrorSummary(err), "550") {
		t.Fatalf("550: err = %v, want a permanent error naming 550", err)
	}
	srv.RefuseRecipients(func(string) int { return 452 })
	if err = s.Send(ctx, testMessage); err == nil || notify.IsPermanent(err) {
		t.Fatalf("452 on RCPT: err = %v, want transient", err)
	}
	srv.RefuseRecipients(nil)

	bad := testMessage
	bad.To = "not an address"
	if err := s.Send(ctx, bad); !notify.IsPermanent(err) {
		t.Fatalf("bad address: err = %v, want permanent", err)
	}
	if len(srv.Messages()) != 0 {
		t.Fatalf("%d messages accepted, want 0", len(srv.Messages()))
	}

	// Nobody listening: connection refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	if err := newSender(t, smtpConfig("127.0.0.1", port)).Send(ctx, testMessage); err == nil || notify.IsPermanent(err) {
		t.Fatalf("connection refused: err = %v, want transient", err)
	}

	// A server that accepts the connection and never speaks: timeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg := smtpConfig("127.0.0.1", silent.Addr().(*net.TCPAddr).Port)
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	err = newSender(t, cfg).Send(ctx, testMessage)
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("silent server: err = %v, want transient", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("timeout took %s", d)
	}
}

func TestSMTPSenderRefusesBadSettings(t *testing.T) {
	cfg := smtpConfig("127.0.0.1", 25)
	cfg.TLS = "sometimes"
	if _, err := notify.NewSMTPSender(cfg); err == nil {
		t.Fatal("accepted PAYGATE_SMTP_TLS=sometimes")
	}
	cfg = smtpConfig("127.0.0.1", 25)
	cfg.From = "nobody"
	if _, err := notify.NewSMTPSender(cfg); err == nil {
		t.Fatal("accepted a bad From")
	}
}
