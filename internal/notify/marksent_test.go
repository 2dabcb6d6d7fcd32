package notify_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/events"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// tcpProxy forwards connections to a target and can take it away: while
// down, it cuts every open connection and closes new ones at once, as a
// database server that restarts does.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
	})
	go p.serve()
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *tcpProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
	_, _ = io.Copy(c, u)
	_ = c.Close()
}

// cut closes every open connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// away takes the target away for d: open connections are cut and new
// ones refused until d has passed.
func (p *tcpProxy) away(d time.Duration) {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.cut()
	time.AfterFunc(d, func() {
		p.mu.Lock()
		p.down = false
		p.mu.Unlock()
	})
}

// through returns u with its host replaced by the proxy's.
func (p *tcpProxy) through(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	pu.Host = p.ln.Addr().String()
	return pu.String()
}

// senderFunc is a notify.Sender.
type senderFunc func(ctx context.Context, m notify.Message) error

func (f senderFunc) Send(ctx context.Context, m notify.Message) error { return f(ctx, m) }

// TestMailAcceptedWhileTheDatabaseRestartsIsSentOnce: the database goes
// away right after the SMTP server accepted a mail, for 4 s (a restart of
// PostgreSQL), and comes back while the consumer's claim on the mail still
// holds. The consumer keeps trying to record the mail until shortly before
// its claim ends, so the mail is recorded as sent and never sent again.
// It used to give up after five tries in about 3 s and leave the record
// to be read again; once the claim lapsed, the mail went out a second
// time (the chaos suite saw it when it restarted PostgreSQL).
func TestMailAcceptedWhileTheDatabaseRestartsIsSentOnce(t *testing.T) {
	t.Parallel()
	admin, err := url.Parse(pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, admin.Host)
	var struck atomic.Bool
	const lease, outage = 8 * time.Second, 4 * time.Second
	h := newHarnessWith(t, lease, harnessOptions{
		dbURL: func(u string) string { return proxy.through(t, u) },
		sender: func(s notify.Sender) notify.Sender {
			return senderFunc(func(ctx context.Context, m notify.Message) error {
				err := s.Send(ctx, m)
				if err == nil && struck.CompareAndSwap(false, true) {
					proxy.away(outage)
				}
				return err
			})
		},
	})
	id := uuid.New()
	h.publish(t, cloudEvent(t, h.kafka.TopicAuth, "u1", events.TypeUserRegistered, id.String(), registered("restart@example.com"), nil))
	h.smtp.Wait(t, 1, 30*time.Second)
	sentAt := time.Now()

	// Past the claim, and the retry that would follow it.
	time.Sleep(time.Until(sentAt.Add(lease + 3*time.Second)))
	if n := len(h.smtp.To("restart@example.com")); n != 1 {
		t.Fatalf("the mail was sent %d times, want once", n)
	}
	var status string
	if err := h.pool.QueryRow(context.Background(), `SELECT status FROM notify_deliveries WHERE event_id = $1`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != notify.StatusSent {
		t.Fatalf("the delivery is %s, want %s", status, notify.StatusSent)
	}
}
