// Package smtptest runs a real SMTP server for tests: emersion/go-smtp in
// process on a loopback port. It records every accepted message with its
// envelope and decoded bodies, and can be told to refuse mail (for
// example 451, try again later) globally or per recipient. StartWith adds
// STARTTLS or implicit TLS, with a certificate from a CA made for the test,
// and SMTP AUTH PLAIN. Stop and Restart take the server away and bring it
// back on the same port, as an outage of the mail relay does.
package smtptest

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/paygate/paygate/internal/platform/pkitest"
)

// Message is one accepted message.
type Message struct {
	From       string
	To         []string
	Raw        []byte
	Header     mail.Header
	Subject    string
	MessageID  string // without angle brackets
	Text       string // decoded text/plain part, LF line ends
	HTML       string // decoded text/html part, LF line ends
	ReceivedAt time.Time
	TLS        bool   // it came over TLS (STARTTLS or implicit)
	User       string // the SMTP AUTH user of its session; empty without AUTH
}

// Security is what StartWith's server offers and requires.
type Security struct {
	// TLS is StartTLS or ImplicitTLS, or Plain (the zero value). The
	// server certificate is for 127.0.0.1 and localhost, from a CA made
	// for the test (Server.CAFile).
	TLS TLSMode
	// User and Password turn on SMTP AUTH PLAIN with that one account;
	// MAIL from a session that has not authenticated is then refused
	// with 530 5.7.0. Without TLS the server offers AUTH in clear, like a
	// careless relay, so a test can show a client never sends its
	// password there (AuthAttempts).
	User, Password string
}

// TLSMode is how a server speaks TLS.
type TLSMode int

const (
	Plain       TLSMode = iota // no TLS: STARTTLS is not offered
	StartTLS                   // plain at first, STARTTLS offered
	ImplicitTLS                // TLS from the first byte (port 465 style)
)

// Server is a running SMTP server.
type Server struct {
	Host string
	Port int
	// CAFile is the PEM file of the CA that signed the server's
	// certificate; empty on a Plain server.
	CAFile string

	sec Security
	tls *tls.Config // the server certificate of a TLS server

	mu        sync.Mutex
	srv       *smtp.Server // nil while stopped
	sessions  int          // SMTP conversations open now
	opened    int          // SMTP conversations opened since Start
	inMessage int          // conversations between MAIL and the end of DATA
	msgs      []Message
	refuse    int
	rcptRule  func(addr string) int
	refusals  int
	changed   chan struct{}
	parseErrs []error
	auths     int
}

// Start runs a plain server without AUTH until the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Security{}) }

// StartWith runs a server with sec until the test ends.
func StartWith(t testing.TB, sec Security) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, sec: sec, changed: make(chan struct{})}
	if sec.TLS != Plain {
		ca := pkitest.NewCA(t, "smtptest CA")
		s.tls = ca.ServerConfig()
		s.CAFile = ca.File
	}
	s.serve(ln)
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// serve runs a new SMTP server on ln.
func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sessions++
		s.opened++
		return &session{s: s, conn: c}, nil
	}))
	if s.sec.TLS == ImplicitTLS {
		ln = tls.NewListener(ln, s.tls)
	} else if s.sec.TLS == StartTLS {
		srv.TLSConfig = s.tls
	}
	srv.AllowInsecureAuth = s.sec.TLS == Plain
	srv.Domain = "smtptest.local"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = nopLogger{}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop takes the server away as a crashed relay goes: the port stops
// accepting connections and every open conversation is cut where it
// stands, mid-message or not; a message whose data had not been accepted
// is not recorded. Messages accepted before stay in Messages. Stopping a
// stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// Restart serves again on the same port, with the same security, after
// Stop; the messages accepted before are kept.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return errors.New("smtptest: the server is running")
	}
	ln, err := net.Listen("tcp", s.Addr())
	if err != nil {
		return fmt.Errorf("smtptest: listen again on %s: %w", s.Addr(), err)
	}
	s.serve(ln)
	return nil
}

// Sessions returns how many SMTP conversations are open now: a test
// that must cut one mid-flight waits for one before it calls Stop.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// Opened returns how many SMTP conversations (connections) clients have
// opened since Start, across restarts: with the number of messages, it
// shows whether a client reuses its connections.
func (s *Server) Opened() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// InMessage returns how many conversations are in the middle of a
// message now: MAIL FROM accepted, the end of its data not yet. A client
// that keeps connections open between messages has sessions that are
// not in a message; a test that must cut a message mid-flight waits for
// this before it calls Stop.
func (s *Server) InMessage() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inMessage
}

// Addr returns host:port.
func (s *Server) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }

// Refuse makes the server answer every MAIL FROM with code (such as 451
// or 550) until Refuse(0).
func (s *Server) Refuse(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = code
}

// RefuseRecipients makes the server answer RCPT TO of addr with the code
// rule returns for it; 0 accepts. nil removes the rule.
func (s *Server) RefuseRecipients(rule func(addr string) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptRule = rule
}

// Refusals returns how many commands the server refused so far.
func (s *Server) Refusals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refusals
}

// AuthAttempts returns how many AUTH commands the server received, right
// or wrong.
func (s *Server) AuthAttempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// Messages returns the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Wait returns the accepted messages once there are at least n, failing
// the test after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, ch, perrs := len(s.msgs), s.changed, s.parseErrs
		s.mu.Unlock()
		if len(perrs) > 0 {
			t.Fatalf("smtptest: unparsable message: %v", perrs[0])
		}
		if got >= n {
			return s.Messages()
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("smtptest: %d message(s) after %s, want %d", got, timeout, n)
		}
	}
}

// To returns the accepted messages whose envelope includes addr.
func (s *Server) To(addr string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		for _, r := range m.To {
			if strings.EqualFold(r, addr) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// add records an accepted message. One whose data ended while Stop was
// cutting its conversation is refused with 421, what a server that shuts
// down answers (RFC 5321), if the client still hears anything.
func (s *Server) add(m Message, perr error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "smtptest: shutting down"}
	}
	if perr != nil {
		s.parseErrs = append(s.parseErrs, perr)
	} else {
		s.msgs = append(s.msgs, m)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string // authenticated
	from string
	to   []string
	// inMessage: MAIL was accepted and the message is not finished.
	inMessage bool
}

// endMessage ends the session's message, if one is open; the caller
// holds ss.s.mu.
func (ss *session) endMessage() {
	if ss.inMessage {
		ss.inMessage = false
		ss.s.inMessage--
	}
}

// AuthMechanisms and Auth make session an smtp.AuthSession; the server
// offers AUTH only when a user is configured.
func (ss *session) AuthMechanisms() []string {
	if ss.s.sec.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.auths++
	if ss.s.sec.User == "" || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, password string) error {
		sec := ss.s.sec
		if (identity != "" && identity != user) || user != sec.User || password != sec.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}), nil
}

func refusal(code int) error {
	class := code / 100
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, 0, 0}, Message: "smtptest refuses: try again later"}
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.refuse != 0 {
		ss.s.refusals++
		return refusal(ss.s.refuse)
	}
	if ss.s.sec.User != "" && ss.user == "" {
		ss.s.refusals++
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	if !ss.inMessage {
		ss.inMessage = true
		ss.s.inMessage++
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.rcptRule != nil {
		if code := ss.s.rcptRule(to); code != 0 {
			ss.s.refusals++
			return refusal(code)
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	defer func() {
		ss.s.mu.Lock()
		ss.endMessage()
		ss.s.mu.Unlock()
	}()
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, perr := parse(raw)
	m.From, m.To, m.ReceivedAt = ss.from, append([]string(nil), ss.to...), time.Now()
	state, isTLS := ss.conn.TLSConnectionState()
	m.TLS, m.User = isTLS && state.HandshakeComplete, ss.user
	return ss.s.add(m, perr)
}

func (ss *session) Reset() {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.endMessage()
	ss.from, ss.to = "", nil
}

func (ss *session) Logout() error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.endMessage()
	ss.s.sessions--
	return nil
}

// parse decodes the headers and the text and HTML parts of raw.
func parse(raw []byte) (Message, error) {
	m := Message{Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return m, err
	}
	m.Header = msg.Header
	dec := new(mime.WordDecoder)
	if m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return m, fmt.Errorf("subject: %w", err)
	}
	m.MessageID = strings.Trim(msg.Header.Get("Message-Id"), "<> ")
	err = walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &m)
	return m, err
}

func walk(contentType, cte string, body io.Reader, m *Message) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decode %s part: %w", mt, err)
	}
	// Mail travels with CRLF line ends; tests compare with LF.
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	switch mt {
	case "text/plain":
		m.Text += text
	case "text/html":
		m.HTML += text
	}
	return nil
}

// newlineStripper drops CR and LF, which base64 bodies are wrapped with.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}
