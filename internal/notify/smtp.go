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
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/paygate/paygate/internal/platform/config"
)

// SMTPSender sends messages with github.com/wneessen/go-mail, one SMTP
// conversation per message: STARTTLS or implicit TLS as configured, SMTP
// AUTH when credentials are set, the configured timeout on connecting and
// on every command.
type SMTPSender struct {
	cfg  config.SMTP
	from *mail.Address
	opts []gomail.Option
}

// NewSMTPSender returns a sender for cfg; it does not connect yet.
func NewSMTPSender(cfg config.SMTP) (*SMTPSender, error) {
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
	opts := []gomail.Option{gomail.WithPort(cfg.Port), gomail.WithTimeout(cfg.Timeout), gomail.WithTLSConfig(tc)}
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
	return &SMTPSender{cfg: cfg, from: from, opts: opts}, nil
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

	// A client per message: go-mail clients hold one connection, and
	// messages are sent from several partitions at once.
	c, err := gomail.NewClient(s.cfg.Host, s.opts...)
	if err != nil {
		return Permanent(err)
	}
	client, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		// Connecting, EHLO, STARTTLS and AUTH fail alike for every mail:
		// the server or paygate's settings are at fault, not this mail, so
		// even a 5xx here (a refused login: a password rotated on the
		// relay before paygate's secret) is retried, not dead-lettered.
		return fmt.Errorf("smtp connect: %w", err)
	}
	err = errors.Join(c.SendWithSMTPClient(client, msg), c.CloseWithSMTPClient(client))
	if err != nil && msg.IsDelivered() {
		// The server accepted the mail (its reply to the end of DATA);
		// only the RSET or QUIT after it failed.
		return nil
	}
	return classify(err)
}

// MaxConversation is the longest one SMTP conversation of SMTPSender can
// last, however slowly the server answers: go-mail gives the configured
// timeout to each of four phases, not to each command. They are
// connecting; the greeting; EHLO, STARTTLS, AUTH and the NOOP before the
// message; the message and QUIT.
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
