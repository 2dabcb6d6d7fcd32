package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"

	"github.com/paygate/paygate/internal/platform/config"
)

// SMTPSender sends messages with github.com/wneessen/go-mail: STARTTLS or
// implicit TLS as configured, SMTP AUTH when credentials are set, the
// configured timeout on connecting and on every command. It keeps a few
// connections open between messages, as mail clients and relays expect of
// a steady sender: a conversation then costs MAIL, RCPT, DATA and RSET
// instead of a TCP (and TLS) handshake, the greeting, EHLO, AUTH and QUIT
// too. A connection is reused only while it is fresh (idle at most
// smtpIdleTimeout, at most smtpMaxMessagesPerConn messages); when its
// first command fails it is dropped and the message goes over a new
// connection, so a relay that closed an idle connection costs nothing.
// Close ends the idle connections.
type SMTPSender struct {
	cfg  config.SMTP
	from *mail.Address
	opts []gomail.Option

	mu     sync.Mutex
	idle   []*smtpConn // most recently used last
	closed bool
	conns  metric.Int64Counter
	now    func() time.Time
}

// smtpConn is one open SMTP connection and the go-mail client that dialled
// it (go-mail clients hold per-connection state, so each has its own).
type smtpConn struct {
	client *gomail.Client
	conn   *gosmtp.Client
	sent   int       // messages accepted over it
	idleAt time.Time // when it was last put back
}

// Limits of connection reuse. Relays drop idle clients after a timeout of
// their own (RFC 5321 suggests 5 minutes; hosted relays use less), and
// many cap the messages of one connection; staying well inside both keeps
// the NOOP check from failing in the common case.
const (
	smtpIdleTimeout        = 5 * time.Second
	smtpMaxMessagesPerConn = 100
	// smtpMaxIdle is at least the conversations the consumer has at once
	// under load (maxParallelSends per partition being handled): a
	// connection put back beyond it is closed, and the next send dials
	// again, which cost more CPU than the sends it served when it was 8.
	smtpMaxIdle = 32
)

// connOutcomes are the attributes of each connection outcome, built once:
// building an attribute set per mail was a fiftieth of the gateway's CPU.
var connOutcomes = map[string]metric.AddOption{
	ConnDialed: metric.WithAttributes(attribute.String("outcome", ConnDialed)),
	ConnReused: metric.WithAttributes(attribute.String("outcome", ConnReused)),
	ConnStale:  metric.WithAttributes(attribute.String("outcome", ConnStale)),
}

// SMTP connection outcomes, the values of MetricSMTPConnections' label.
const (
	ConnDialed = "dialed"
	ConnReused = "reused"
	ConnStale  = "stale" // an idle connection whose first command failed
)

// NewSMTPSender returns a sender for cfg; it does not connect yet. mp may
// be nil.
func NewSMTPSender(cfg config.SMTP, mp metric.MeterProvider) (*SMTPSender, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: PAYGATE_MAIL_FROM: %w", err)
	}
	tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		// A relay with a private CA: only that CA's certificates pass.
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("notify: PAYGATE_SMTP_TLS_CA_FILE: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify: PAYGATE_SMTP_TLS_CA_FILE: %s holds no PEM certificate", cfg.TLSCAFile)
		}
	}
	// No NOOP before each message and no RSET after it: a reused
	// connection is checked by its first command instead (see Send), and
	// the end of DATA ends the mail transaction by itself (RFC 5321
	// 4.1.1.4). A failed message's connection is closed, never reused.
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout), gomail.WithTLSConfig(tc),
		gomail.WithoutNoop(), gomail.WithoutRset()}
	switch cfg.TLS {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	default:
		return nil, fmt.Errorf("notify: PAYGATE_SMTP_TLS %q is not none, starttls or tls", cfg.TLS)
	}
	if cfg.Username != "" {
		// The strongest mechanism the server offers; go-mail refuses
		// PLAIN and LOGIN on a connection without TLS.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(cfg.Username), gomail.WithPassword(cfg.Password))
	}
	// Fail fast on bad options.
	if _, err := gomail.NewClient(cfg.Host, opts...); err != nil {
		return nil, fmt.Errorf("notify: smtp client: %w", err)
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	conns, err := mp.Meter("paygate/notify").Int64Counter(MetricSMTPConnections,
		metric.WithDescription("SMTP connections mails went over, by outcome: dialed (a new connection), reused (an idle one), stale (an idle one whose first command failed; the mail went again over a new one)."))
	if err != nil {
		return nil, err
	}
	return &SMTPSender{cfg: cfg, from: from, opts: opts, conns: conns, now: time.Now}, nil
}

// Send delivers m. The error is a *PermanentError when the server rejected
// the mail with a 5xx reply (to MAIL, RCPT or DATA) or the message cannot
// be built; anything else (connection refused, timeout, TLS trouble, a 4xx
// reply, a refused or missing login) is transient.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	if err := msg.To(m.To); err != nil {
		return Permanent(fmt.Errorf("recipient address: %w", err))
	}
	msg.Subject(m.Subject)
	if m.ID != "" {
		msg.SetMessageIDWithValue(m.ID)
	} else {
		msg.SetMessageID()
	}
	msg.SetDate()
	msg.SetGenHeader(gomail.HeaderXMailer, "paygate")
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}

	for fresh := false; ; fresh = true {
		c, outcome, err := s.conn(ctx, fresh)
		if err != nil {
			// Connecting, EHLO, STARTTLS and AUTH fail alike for every
			// mail: the server or paygate's settings are at fault, not
			// this mail, so even a 5xx here (a refused login: a password
			// rotated on the relay before paygate's secret) is retried,
			// not dead-lettered.
			return fmt.Errorf("smtp connect: %w", err)
		}
		err = c.client.SendWithSMTPClient(c.conn, msg)
		if err == nil {
			s.conns.Add(ctx, 1, connOutcomes[outcome])
			c.sent++
			s.put(c)
			return nil
		}
		// Whatever failed, the connection's state is not worth trusting:
		// it is closed, not put back.
		s.drop(c)
		var se *gomail.SendError
		if outcome == ConnReused && errors.As(err, &se) && (se.Reason == gomail.ErrConnCheck || se.Reason == gomail.ErrSMTPMailFrom) {
			// The first command over an idle connection failed: most
			// likely the relay had closed it (a network error, or its
			// 421 on the way out). Nothing of this mail was accepted, so
			// it goes again, once, over a new connection, which also
			// tells a real refusal of MAIL from a stale connection.
			s.conns.Add(ctx, 1, connOutcomes[ConnStale])
			continue
		}
		s.conns.Add(ctx, 1, connOutcomes[outcome])
		if msg.IsDelivered() {
			// The server accepted the mail (its reply to the end of
			// DATA); only what go-mail did after that failed.
			return nil
		}
		return classify(err)
	}
}

// conn returns an idle connection that is still fresh or, when there is
// none or dial is set, a new one.
func (s *SMTPSender) conn(ctx context.Context, dial bool) (*smtpConn, string, error) {
	now := s.now()
	s.mu.Lock()
	for !dial && len(s.idle) > 0 {
		c := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if now.Sub(c.idleAt) <= smtpIdleTimeout {
			s.mu.Unlock()
			return c, ConnReused, nil
		}
		// Every older one has been idle longer still. They are closed
		// without QUIT: a relay that may have gone away must not delay
		// this mail.
		stale := append([]*smtpConn{c}, s.idle...)
		s.idle = s.idle[:0]
		s.mu.Unlock()
		for _, c := range stale {
			s.drop(c)
		}
		s.mu.Lock()
	}
	s.mu.Unlock()

	client, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return nil, "", err
	}
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, "", err
	}
	return &smtpConn{client: client, conn: conn}, ConnDialed, nil
}

// put keeps c for the next message, or ends it when it has carried its
// share of messages, the sender is closed or enough are idle.
func (s *SMTPSender) put(c *smtpConn) {
	s.mu.Lock()
	if s.closed || c.sent >= smtpMaxMessagesPerConn || len(s.idle) >= smtpMaxIdle {
		s.mu.Unlock()
		s.quit(c)
		return
	}
	c.idleAt = s.now()
	s.idle = append(s.idle, c)
	s.mu.Unlock()
}

// quit ends c politely (QUIT); a relay that does not answer in the
// timeout has the connection closed under it.
func (s *SMTPSender) quit(c *smtpConn) {
	if err := c.conn.UpdateDeadline(s.cfg.Timeout); err != nil {
		s.drop(c)
		return
	}
	if err := c.client.CloseWithSMTPClient(c.conn); err != nil {
		s.drop(c)
	}
}

// drop closes c's connection without a word.
func (s *SMTPSender) drop(c *smtpConn) { _ = c.conn.Close() }

// Close ends the idle connections; a message sent after it goes over a new
// connection that is ended once the message is out.
func (s *SMTPSender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, c := range idle {
		s.quit(c)
	}
	return nil
}

// MaxConversation is the longest one SMTP conversation of SMTPSender can
// last, however slowly the server answers: go-mail gives the configured
// timeout to each of four phases, not to each command. They are
// connecting; the greeting; EHLO, STARTTLS and AUTH; the message (and
// QUIT when the connection is not kept). Over a kept connection a
// message is the last phase alone.
func MaxConversation(cfg config.SMTP) time.Duration { return 4 * cfg.Timeout }

// classify maps a go-mail error to paygate's two kinds.
func classify(err error) error {
	if err == nil {
		return nil
	}
	switch code := smtpCode(err); {
	case code == 530:
		// "Authentication required" (RFC 4954) or "Must issue a STARTTLS
		// command first" (RFC 3207): paygate's settings are at fault, as
		// with a refused login, not the mail.
		return err
	case code >= 500 && code < 600:
		return Permanent(err)
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			return Permanent(err) // the message, not the server, is at fault
		}
	}
	return err
}

// smtpCode returns the SMTP reply code in err's chain, 0 when the failure
// was not a server reply (a network error, a timeout).
func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	return 0
}

// ErrorSummary describes a send error for logs, spans and Kafka headers:
// the SMTP code and reply, or the network error, with every email address
// replaced by "<redacted>".
func ErrorSummary(err error) string {
	if err == nil {
		return ""
	}
	var s string
	var te *textproto.Error
	var ne net.Error
	switch {
	case errors.As(err, &te):
		s = fmt.Sprintf("smtp %d: %s", te.Code, te.Msg)
	case errors.As(err, &ne) && ne.Timeout():
		s = "timeout: " + err.Error()
	default:
		s = err.Error()
	}
	if IsPermanent(err) {
		s = "permanent: " + s
	}
	return truncate(redact(s), 1000)
}

// redact replaces every word that contains an "@" by "<redacted>", so no
// email address reaches logs, spans or Kafka headers.
func redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == ',' })
	for _, w := range words {
		if strings.Contains(w, "@") {
			s = strings.ReplaceAll(s, w, "<redacted>")
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
