package notify_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/notify/smtptest"
)

// sendN sends n copies of testMessage with distinct ids, one after another.
func sendN(t *testing.T, s *notify.SMTPSender, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		m := testMessage
		m.ID = fmt.Sprintf("e%d.welcome@paygate", i)
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func TestSMTPSenderKeepsItsConnectionBetweenMessages(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	sendN(t, s, 0, 5)
	if got := len(srv.Wait(t, 5, 5*time.Second)); got != 5 {
		t.Fatalf("%d messages arrived, want 5", got)
	}
	if n := srv.Opened(); n != 1 {
		t.Fatalf("5 messages in a row opened %d connections, want 1", n)
	}
	if n := srv.Sessions(); n != 1 {
		t.Fatalf("%d connections open between messages, want the 1 kept", n)
	}
	// Close ends the kept connection with QUIT: the server sees it go.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kept connection to end", func() bool { return srv.Sessions() == 0 })
}

func TestSMTPSenderSendsOverANewConnectionWhenTheKeptOneWasCut(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	sendN(t, s, 0, 1)
	// The relay restarts: the kept connection is dead, and nothing tells
	// the sender until it uses it.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	sendN(t, s, 1, 1)
	msgs := srv.Wait(t, 2, 5*time.Second)
	if len(msgs) != 2 || msgs[1].MessageID != "e1.welcome@paygate" {
		t.Fatalf("messages after the cut: %d, want 2 with e1 last", len(msgs))
	}
	if n := srv.Opened(); n != 2 {
		t.Fatalf("%d connections opened, want 2 (the cut one and its replacement)", n)
	}
}

func TestSMTPSenderTellsARefusalFromAStaleConnection(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	sendN(t, s, 0, 1)
	// A refusal of MAIL over the kept connection is tried once more over a
	// new one (it could have been a closing relay's farewell); refused
	// again there, it is the relay's answer: permanent, not retried.
	srv.Refuse(550)
	err := s.Send(context.Background(), testMessage)
	if !notify.IsPermanent(err) {
		t.Fatalf("550 to MAIL = %v, want a permanent error", err)
	}
	if n := srv.Refusals(); n != 2 {
		t.Fatalf("the relay refused %d times, want 2 (kept connection, then a new one)", n)
	}
	// A 4xx stays transient, and is not tried on a third connection.
	srv.Refuse(451)
	opened := srv.Opened()
	if err := s.Send(context.Background(), testMessage); err == nil || notify.IsPermanent(err) {
		t.Fatalf("451 to MAIL = %v, want a transient error", err)
	}
	if n := srv.Opened() - opened; n != 1 {
		t.Fatalf("a 451 opened %d connections, want 1 (the refused message's connection is never kept)", n)
	}
	srv.Refuse(0)
	sendN(t, s, 1, 1)
	if got := len(srv.Wait(t, 2, 5*time.Second)); got != 2 {
		t.Fatalf("%d messages arrived, want 2", got)
	}
}

func TestSMTPSenderRetiresConnectionsByAgeAndUse(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	notify.SetSMTPClock(s, func() time.Time { return time.Unix(0, now.Load()) })

	sendN(t, s, 0, notify.SMTPMaxMessagesPerConn+1)
	if n := srv.Opened(); n != 2 {
		t.Fatalf("%d messages opened %d connections, want 2 (at most %d a connection)",
			notify.SMTPMaxMessagesPerConn+1, n, notify.SMTPMaxMessagesPerConn)
	}
	// The first connection was ended with QUIT once it had carried its share.
	waitFor(t, "the used-up connection to end", func() bool { return srv.Sessions() == 1 })

	now.Add(int64(notify.SMTPIdleTimeout - time.Millisecond))
	sendN(t, s, 1000, 1)
	if n := srv.Opened(); n != 2 {
		t.Fatalf("a connection idle just under the limit was not reused: %d opened", n)
	}
	now.Add(int64(notify.SMTPIdleTimeout + time.Millisecond))
	sendN(t, s, 2000, 1)
	if n := srv.Opened(); n != 3 {
		t.Fatalf("a connection idle past the limit was reused: %d opened, want 3", n)
	}
	waitFor(t, "the idle connection to be closed", func() bool { return srv.Sessions() == 1 })
}

// TestSMTPSenderKeepsAFewConnectionsForParallelSenders: the consumer sends
// in bursts (a chunk of mails per partition at once, then a commit while
// the connections wait), so after a burst as many connections are idle
// as were busy; the next burst must find them all, not dial again.
func TestSMTPSenderKeepsAFewConnectionsForParallelSenders(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t)
	s := newSender(t, smtpConfig(srv.Host, srv.Port))
	const workers, bursts = 24, 3 // six partitions' chunks of four
	for b := range bursts {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { sendN(t, s, (b*workers+w)*1000, 1) })
		}
		wg.Wait()
	}
	if got := len(srv.Wait(t, workers*bursts, 10*time.Second)); got != workers*bursts {
		t.Fatalf("%d messages arrived, want %d", got, workers*bursts)
	}
	if n := srv.Opened(); n > workers {
		t.Fatalf("%d bursts of %d parallel sends opened %d connections, want at most %d", bursts, workers, n, workers)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
