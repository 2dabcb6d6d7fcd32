package smtptest_test

import (
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/notify/smtptest"
)

// send delivers one short message through addr with the standard
// library's client.
func send(addr, to, subject string) error {
	msg := "From: a@paygate.test\r\nTo: " + to + "\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	return smtp.SendMail(addr, nil, "a@paygate.test", []string{to}, []byte(msg))
}

// TestStopCutsOpenConversationsAndRestartServesTheSamePort: Stop refuses
// new connections and cuts a conversation in the middle of its message,
// which is then not recorded; Restart serves again on the same port and
// keeps what was accepted before.
func TestStopCutsOpenConversationsAndRestartServesTheSamePort(t *testing.T) {
	srv := smtptest.Start(t)
	if err := send(srv.Addr(), "one@paygate.test", "before"); err != nil {
		t.Fatal(err)
	}

	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@paygate.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("two@paygate.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: cut\r\n\r\nhalf a mess")); err != nil {
		t.Fatal(err)
	}
	// MAIL was answered, so the server counts this conversation as in a
	// message already; the first conversation's QUIT may still be closing
	// on the server's side, so the open-session count is awaited.
	if n := srv.InMessage(); n != 1 {
		t.Fatalf("%d conversations mid-message, want 1", n)
	}
	waitSessions(t, srv, 1)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("the cut message was accepted")
	}
	if err := send(srv.Addr(), "three@paygate.test", "while stopped"); err == nil {
		t.Fatal("a stopped server accepted a message")
	}
	waitSessions(t, srv, 0)
	if err := srv.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err == nil {
		t.Fatal("Restart of a running server did not fail")
	}
	if err := send(srv.Addr(), "four@paygate.test", "after"); err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, m := range srv.Messages() {
		subjects = append(subjects, m.Subject)
	}
	if got := strings.Join(subjects, ","); got != "before,after" {
		t.Fatalf("messages %q, want before,after", got)
	}
}

// waitSessions waits up to five seconds for the server to count want open
// sessions; a client's QUIT or a Stop ends its session asynchronously.
func waitSessions(t *testing.T, srv *smtptest.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sessions() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions open, want %d", srv.Sessions(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
