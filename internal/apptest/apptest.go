// Package apptest starts the whole paygate application for integration
// tests: the real fx graph, on a random loopback port, against a fresh
// PostgreSQL database of the test's own and an in-process Kafka-protocol
// broker, and offers an HTTP client with helpers for the common steps
// (register, login, authenticated requests).
package apptest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/provider/sandbox"
)

// init turns trace export off for the test binary unless the environment
// chose an exporter: the SDK's default, OTLP to localhost, would only fail.
// It is set once, before any test runs, so that Start changes no
// environment and tests that call it can run in parallel; a test that
// exports traces sets OTEL_TRACES_EXPORTER itself (with t.Setenv, so it
// does not run in parallel).
func init() {
	if _, ok := os.LookupEnv("OTEL_TRACES_EXPORTER"); !ok {
		if err := os.Setenv("OTEL_TRACES_EXPORTER", "none"); err != nil {
			panic(err)
		}
	}
}

// AdminEmail and AdminPassword are the bootstrap administrator of every
// test application.
const (
	AdminEmail    = "admin@paygate.test"
	AdminPassword = "admin-password-1"
)

// Env is a running application.
type Env struct {
	T       testing.TB
	BaseURL string
	// MetricsURL is the operations listener: /metrics and the detailed
	// /readyz. It is not part of the API contract.
	MetricsURL string
	Config     config.Config
	Pool       *pgxpool.Pool
	Broker     *kafkatest.Broker
	Client     *http.Client
	// Provider is the sandbox payment provider the application talks to,
	// with callbacks pointed at the application.
	Provider *providertest.Env
}

// Option adjusts the configuration or the graph of a test application.
type Option func(*settings)

type settings struct {
	cfg     config.Config
	extra   []fx.Option
	sandbox []func(*sandbox.Options)
}

// WithConfig lets a test change the configuration before start.
func WithConfig(f func(*config.Config)) Option {
	return func(s *settings) { f(&s.cfg) }
}

// WithFx adds options to the application graph.
func WithFx(opts ...fx.Option) Option {
	return func(s *settings) { s.extra = append(s.extra, opts...) }
}

// WithSandbox changes the options of the test's sandbox provider before
// it starts.
func WithSandbox(f func(*sandbox.Options)) Option {
	return func(s *settings) { s.sandbox = append(s.sandbox, f) }
}

// WithAutoPay starts the sandbox in auto-pay mode, as `make run` does: it
// pays every new payment in full 50 ms after its create, and its callback
// credits the top-up.
func WithAutoPay() Option {
	return WithSandbox(func(o *sandbox.Options) { o.AutoPay, o.AutoPayDelay = true, 50*time.Millisecond })
}

// Config returns the configuration of a test application on dbURL and the
// broker k: the code's defaults (config.Defaults) with only what a test
// needs changed. Those changes are a loopback port, a fresh signing key
// and the bootstrap administrator; cheap password hashing, a deep hashing
// queue and no practical per-IP registration limit; no drain delay
// on stop; short polling and retry pauses, so events and retries are seen
// within a test's patience; and the email consumer and payout processor
// off, since most tests settle withdrawals and run SMTP themselves.
func Config(dbURL string, k config.Kafka) config.Config {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	cfg := config.Defaults()
	cfg.Env = "dev"
	cfg.HTTP.Addr, cfg.HTTP.MetricsAddr, cfg.HTTP.DrainDelay = "127.0.0.1:0", "127.0.0.1:0", 0
	cfg.Database.URL = dbURL
	// The concurrency tests drive hot accounts into serialization
	// failures; a few more attempts keep their answers 2xx.
	cfg.Database.TxMaxAttempts = 8
	cfg.Kafka = k
	cfg.Outbox.PollInterval, cfg.Outbox.RetryBackoff = 200*time.Millisecond, 100*time.Millisecond
	cfg.Auth.JWTPrivateKey = base64.StdEncoding.EncodeToString(priv.Seed())
	// The smallest cost config accepts: hashing is what most tests spend
	// their CPU on otherwise. TestUnknownEmailCostsAPasswordHash raises it.
	cfg.Auth.Argon2MemoryKiB, cfg.Auth.Argon2Time, cfg.Auth.Argon2Threads = 1024, 1, 1
	cfg.Auth.BootstrapAdminEmail, cfg.Auth.BootstrapAdminPassword = AdminEmail, AdminPassword
	// Every test client registers from 127.0.0.1, and parallel tests share
	// two CPUs: neither the per-IP registration limit nor hashing capacity
	// may refuse their users. The tests of those limits set their own.
	cfg.Auth.RegisterMaxPerIP = 1_000_000
	cfg.Auth.HashQueue, cfg.Auth.HashMaxWait = 4096, 30*time.Second
	cfg.SMTP.Timeout, cfg.SMTP.From = 2*time.Second, "paygate <no-reply@paygate.test>"
	cfg.Notify.Enabled, cfg.Notify.RetryBackoff = false, 100*time.Millisecond
	cfg.Payout.Enabled = false
	// The sandbox provider of providertest, whose URL Start fills in
	// after the options ran (unless one set another). The poller waits
	// long enough that a test sees what callbacks do; the poller's tests
	// shorten it.
	cfg.Provider.Name = config.ProviderSandbox
	cfg.Provider.SecretKey, cfg.Provider.CallbackToken = providertest.SecretKey, providertest.CallbackToken
	cfg.Provider.Timeout, cfg.Provider.PollInterval, cfg.Provider.PollAfter = 2*time.Second, time.Hour, time.Hour
	return cfg
}

// Start runs the application for the rest of the test, with a broker of
// its own. It is safe in parallel tests (t.Parallel): every Env has its
// own database, broker, port and signing key, and Start sets no
// environment variable. (The application installs its OpenTelemetry
// providers as the otel globals, so with several running the globals are
// the last one's; paygate's code passes its providers explicitly and never
// reads them.)
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	return StartWithBroker(t, kafkatest.NewBroker(t), opts...)
}

// StartWithBroker runs the application for the rest of the test against
// broker, configured as broker.Config says (its TLS and SASL settings too).
func StartWithBroker(t testing.TB, broker *kafkatest.Broker, opts ...Option) *Env {
	t.Helper()
	dbURL := pgtest.NewDatabase(t)
	s := &settings{cfg: Config(dbURL, broker.Config())}
	for _, o := range opts {
		o(s)
	}
	prov := providertest.Start(t, s.sandbox...)
	if s.cfg.Provider.URL == "" {
		s.cfg.Provider.URL = prov.URL
	}
	log := zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
	var srv *httpserver.Server
	var pool *pgxpool.Pool
	a := fxtest.New(t, app.Options(s.cfg, log, s.extra...), fx.Populate(&srv, &pool))
	a.RequireStart()
	t.Cleanup(a.RequireStop)
	prov.Sandbox.SetCallbackBaseURL("http://" + srv.Addr())
	return &Env{T: t, BaseURL: "http://" + srv.Addr(), MetricsURL: "http://" + srv.MetricsAddr(), Config: s.cfg, Pool: pool, Broker: broker,
		Provider: prov,
		Client: &http.Client{Timeout: 60 * time.Second, Transport: ContractTransport(t, &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second})}}
}

// Metrics reads the operations listener's /metrics in the Prometheus text
// format, failing the test unless it answers 200.
func (e *Env) Metrics(t testing.TB) []byte {
	t.Helper()
	resp, err := http.Get(e.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return b
}

// Lines returns the lines of text (a /metrics page, a log) that contain
// sub, for assertions and failure messages.
func Lines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// Nop returns a logger for helpers that need one.
func Nop() *zap.Logger { return zap.NewNop() }

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test on error.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// Code returns the problem code of an error response ("" otherwise).
func (r *Response) Code() string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(r.Body, &p)
	return p.Code
}

// ProblemFields returns the fields the errors member of a problem names,
// in order (none for another response).
func (r *Response) ProblemFields() []string {
	var p struct {
		Errors []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(r.Body, &p)
	var out []string
	for _, fe := range p.Errors {
		out = append(out, fe.Field)
	}
	return out
}

// Request is one request to send.
type Request struct {
	Method string
	Path   string
	Token  string
	Body   any // encoded as JSON unless a string or []byte
	Header map[string]string
}

// Do sends req and reads the whole response.
func (e *Env) Do(t testing.TB, req Request) *Response {
	t.Helper()
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(enc)
	}
	hr, err := http.NewRequestWithContext(context.Background(), req.Method, e.BaseURL+req.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if req.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.Token)
	}
	for k, v := range req.Header {
		hr.Header.Set(k, v)
	}
	resp, err := e.Client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Get sends an authenticated GET.
func (e *Env) Get(t testing.TB, path, token string) *Response {
	t.Helper()
	return e.Do(t, Request{Method: http.MethodGet, Path: path, Token: token})
}

// Post sends an authenticated POST with a JSON body.
func (e *Env) Post(t testing.TB, path, token string, body any, header ...string) *Response {
	t.Helper()
	h := map[string]string{}
	for i := 0; i+1 < len(header); i += 2 {
		h[header[i]] = header[i+1]
	}
	return e.Do(t, Request{Method: http.MethodPost, Path: path, Token: token, Body: body, Header: h})
}

// User is a registered, logged-in test user.
type User struct {
	ID            string `json:"id"`
	Email         string `json:"email"`
	AccountNumber string `json:"account_number"`
	Role          string `json:"role"`
	Password      string `json:"-"`
	Token         string `json:"-"`
	Refresh       string `json:"-"`
}

var seq atomic.Int64

// NewUser registers a user with a unique email and logs them in.
func (e *Env) NewUser(t testing.TB) User {
	t.Helper()
	n := seq.Add(1)
	email := fmt.Sprintf("user%d-%d@paygate.test", n, time.Now().UnixNano()%1e6)
	pw := "password-" + fmt.Sprint(n)
	resp := e.Post(t, "/v1/auth/register", "", map[string]string{
		"firstname": "Test", "lastname": fmt.Sprintf("User%d", n), "email": email, "password": pw, "confirm_password": pw,
	})
	if resp.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", resp.Status, resp.Body)
	}
	var u User
	resp.JSON(t, &u)
	u.Password = pw
	u.Token, u.Refresh = e.Login(t, email, pw)
	return u
}

// Login returns an access and a refresh token.
func (e *Env) Login(t testing.TB, email, password string) (access, refresh string) {
	t.Helper()
	resp := e.Post(t, "/v1/auth/login", "", map[string]string{"email": email, "password": password})
	if resp.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, resp.Status, resp.Body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	resp.JSON(t, &tok)
	return tok.AccessToken, tok.RefreshToken
}

// Admin logs in as the bootstrap administrator.
func (e *Env) Admin(t testing.TB) User {
	t.Helper()
	access, refresh := e.Login(t, AdminEmail, AdminPassword)
	resp := e.Get(t, "/v1/auth/me", access)
	var u User
	resp.JSON(t, &u)
	u.Token, u.Refresh, u.Password = access, refresh, AdminPassword
	return u
}

// TopUp creates a top-up of amount for u (method "bca", a virtual
// account) and returns it as the API answered: pending, with payment
// instructions.
func (e *Env) TopUp(t testing.TB, u User, amount int64) map[string]any {
	t.Helper()
	resp := e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": amount, "method": "bca"},
		"Idempotency-Key", fmt.Sprintf("topup-%d-%d", seq.Add(1), time.Now().UnixNano()))
	if resp.Status != http.StatusCreated {
		t.Fatalf("top-up: %d %s", resp.Status, resp.Body)
	}
	return resp.Map(t)
}

// Fund tops u's wallet up by amount the way a customer does: a top-up,
// paid at the sandbox provider, credited when the provider's callback
// arrives. It returns the top-up's id once it succeeded.
func (e *Env) Fund(t testing.TB, u User, amount int64) string {
	t.Helper()
	id, _ := e.TopUp(t, u, amount)["id"].(string)
	if _, err := e.Provider.Sandbox.Pay(id, 0, ""); err != nil {
		t.Fatalf("sandbox pay %s: %v", id, err)
	}
	e.WaitTopUp(t, u.Token, id, "succeeded")
	return id
}

// WaitTopUp waits up to 10 s until the top-up id, read with token, has
// status, and returns it.
func (e *Env) WaitTopUp(t testing.TB, token, id, status string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := e.Get(t, "/v1/topups/"+id, token).Map(t)
		if m["status"] == status {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("top-up %s is %v, want %s: %v", id, m["status"], status, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
