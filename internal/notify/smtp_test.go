package notify_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
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
	s, err := notify.NewSMTPSender(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var testMessage = notify.Message{ID: "e1.welcome@paygate", To: "ann@example.com", Subject: "Welcome to paygate — Ann",
	Text: "Hi Ann,\nYour balance: IDR 150.000\n", HTML: "<p>Hi Ann, your balance: <strong>IDR 150.000</strong></p>", Template: "welcome"}

func TestSMTPSenderDeliversTextAndHTML(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
	cfg := smtpConfig("127.0.0.1", 25)
	cfg.TLS = "sometimes"
	if _, err := notify.NewSMTPSender(cfg, nil); err == nil {
		t.Fatal("accepted PAYGATE_SMTP_TLS=sometimes")
	}
	cfg = smtpConfig("127.0.0.1", 25)
	cfg.From = "nobody"
	if _, err := notify.NewSMTPSender(cfg, nil); err == nil {
		t.Fatal("accepted a bad From")
	}
	garbage := filepath.Join(t.TempDir(), "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(t.TempDir(), "missing.crt"), garbage} {
		cfg = smtpConfig("127.0.0.1", 465)
		cfg.TLS, cfg.TLSCAFile = "tls", file
		if _, err := notify.NewSMTPSender(cfg, nil); err == nil || !strings.Contains(err.Error(), "PAYGATE_SMTP_TLS_CA_FILE") {
			t.Fatalf("CA file %s: err = %v, want an error naming PAYGATE_SMTP_TLS_CA_FILE", filepath.Base(file), err)
		}
	}
}

// tlsConfig is the configuration that reaches srv with mode (starttls or
// tls), trusting srv's CA.
func tlsConfig(srv *smtptest.Server, mode string) config.SMTP {
	cfg := smtpConfig(srv.Host, srv.Port)
	cfg.TLS, cfg.TLSCAFile = mode, srv.CAFile
	return cfg
}

// sendNothing sends testMessage with cfg, which must fail with a
// transient error (the settings or the server are at fault, not the
// mail), and checks that srv accepted nothing more.
func sendNothing(t *testing.T, srv *smtptest.Server, cfg config.SMTP) error {
	t.Helper()
	before := len(srv.Messages())
	err := newSender(t, cfg).Send(context.Background(), testMessage)
	if err == nil || notify.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if n := len(srv.Messages()) - before; n != 0 {
		t.Fatalf("%d message(s) accepted, want 0", n)
	}
	return err
}

// tlsModes pairs each PAYGATE_SMTP_TLS value that means TLS with the
// smtptest server that speaks it.
var tlsModes = []struct {
	mode string
	tls  smtptest.TLSMode
}{{"starttls", smtptest.StartTLS}, {"tls", smtptest.ImplicitTLS}}

func TestSMTPSenderDeliversOverTLS(t *testing.T) {
	t.Parallel()
	for _, c := range tlsModes {
		t.Run(c.mode, func(t *testing.T) {
			srv := smtptest.StartWith(t, smtptest.Security{TLS: c.tls})
			if err := newSender(t, tlsConfig(srv, c.mode)).Send(context.Background(), testMessage); err != nil {
				t.Fatal(err)
			}
			m := srv.Wait(t, 1, 5*time.Second)[0]
			if !m.TLS || m.User != "" || m.MessageID != testMessage.ID || m.Text != testMessage.Text {
				t.Fatalf("received TLS=%v user=%q id=%q text=%q", m.TLS, m.User, m.MessageID, m.Text)
			}
		})
	}
}

func TestSMTPSenderAuthenticates(t *testing.T) {
	t.Parallel()
	const user, password = "paygate-mailer", "pw-Zq81-smtp"
	srv := smtptest.StartWith(t, smtptest.Security{TLS: smtptest.StartTLS, User: user, Password: password})
	cfg := tlsConfig(srv, "starttls")
	cfg.Username, cfg.Password = user, password
	if err := newSender(t, cfg).Send(context.Background(), testMessage); err != nil {
		t.Fatal(err)
	}
	if m := srv.Wait(t, 1, 5*time.Second)[0]; !m.TLS || m.User != user {
		t.Fatalf("received TLS=%v user=%q, want TLS and %q", m.TLS, m.User, user)
	}

	// A refused login fails every mail alike until the settings are
	// fixed (or the relay catches up with a rotated password): transient,
	// retried, not dead-lettered as if the mail were at fault. So is a
	// server that wants a login paygate does not make (530 to MAIL).
	cfg.Password = "pw-Zq81-old"
	err := sendNothing(t, srv, cfg)
	if summary := notify.ErrorSummary(err); !strings.Contains(summary, "535") || strings.Contains(summary+err.Error(), "pw-Zq81") {
		t.Fatalf("wrong password: %q, want the 535 reply without the password", summary)
	}
	cfg.Username, cfg.Password = "", ""
	if summary := notify.ErrorSummary(sendNothing(t, srv, cfg)); !strings.Contains(summary, "530") {
		t.Fatalf("no login: %q, want the 530 reply", summary)
	}
}

func TestSMTPSenderNeverSendsInClear(t *testing.T) {
	t.Parallel()
	// A relay that offers AUTH without TLS and no STARTTLS.
	srv := smtptest.StartWith(t, smtptest.Security{User: "paygate-mailer", Password: "pw-Zq81-smtp"})
	cfg := smtpConfig(srv.Host, srv.Port)
	cfg.TLS, cfg.Username, cfg.Password = "starttls", "paygate-mailer", "pw-Zq81-smtp"
	if summary := notify.ErrorSummary(sendNothing(t, srv, cfg)); !strings.Contains(summary, "STARTTLS") {
		t.Fatalf("summary %q, want STARTTLS named", summary)
	}
	if n := srv.AuthAttempts(); n != 0 {
		t.Fatalf("%d AUTH command(s) in clear", n)
	}
}

func TestSMTPSenderRefusesUntrustedCertificates(t *testing.T) {
	t.Parallel()
	other := smtptest.StartWith(t, smtptest.Security{TLS: smtptest.StartTLS})
	for _, c := range tlsModes {
		srv := smtptest.StartWith(t, smtptest.Security{TLS: c.tls})
		cfg := tlsConfig(srv, c.mode)
		for _, ca := range []string{"", other.CAFile} { // the system roots, another CA
			cfg.TLSCAFile = ca
			if summary := notify.ErrorSummary(sendNothing(t, srv, cfg)); !strings.Contains(summary, "certificate") {
				t.Fatalf("%s, CA file %q: %q, want a certificate error", c.mode, ca, summary)
			}
		}
	}
}

// dripServer is an SMTP server that answers every line, the greeting
// first, after delay: slow, but never slow enough for one command to
// time out.
func dripServer(t *testing.T, delay time.Duration) (string, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				say := func(s string) bool {
					time.Sleep(delay)
					_, err := c.Write([]byte(s + "\r\n"))
					return err == nil
				}
				if !say("220 drip ESMTP") {
					return
				}
				r := bufio.NewReader(c)
				inData := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					reply := "250 ok"
					switch {
					case inData && cmd != ".":
						continue
					case inData:
						inData = false
					case strings.HasPrefix(cmd, "EHLO"):
						reply = "250-drip\r\n250 8BITMIME"
					case cmd == "DATA":
						inData, reply = true, "354 go ahead"
					case cmd == "QUIT":
						say("221 bye")
						return
					}
					if !say(reply) {
						return
					}
				}
			}()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	return addr.IP.String(), addr.Port
}

// TestSMTPConversationEndsByMaxConversation: a server that answers every
// line just under the timeout cannot stretch one conversation past
// MaxConversation. The delivery claim's lease (ClaimLease) counts on it:
// a claim must outlast any live conversation. Were go-mail to give each
// command the timeout, this conversation would last nine replies.
func TestSMTPConversationEndsByMaxConversation(t *testing.T) {
	t.Parallel()
	cfg := smtpConfig(dripServer(t, 180*time.Millisecond))
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	err := newSender(t, cfg).Send(context.Background(), testMessage)
	if took := time.Since(start); took > notify.MaxConversation(cfg)+200*time.Millisecond {
		t.Fatalf("Send took %s (%v), want at most MaxConversation %s", took, err, notify.MaxConversation(cfg))
	}
}

// TestClaimLeaseOutlastsAConversationAndEndsWithinAMinute: the lease
// covers the longest conversation and the time to record the mail, and
// with the default SMTP timeout a mail whose consumer died mid-conversation
// is free again after 50 s, so that consumer lag is back to 0 within a
// minute of a killed gateway's restart (the chaos suite's bound). Ten
// timeouts, the lease before, kept the mail and the lag waiting 100 s.
func TestClaimLeaseOutlastsAConversationAndEndsWithinAMinute(t *testing.T) {
	t.Parallel()
	cfg := config.Defaults().SMTP
	if lease := notify.ClaimLease(cfg); lease <= notify.MaxConversation(cfg) || lease > 50*time.Second {
		t.Fatalf("ClaimLease = %s with MaxConversation %s; want more than it, and at most 50 s", lease, notify.MaxConversation(cfg))
	}
}
