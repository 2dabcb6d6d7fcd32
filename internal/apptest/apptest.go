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
)

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
	Config  config.Config
	Pool    *pgxpool.Pool
	Broker  *kafkatest.Broker
	Client  *http.Client
}

// Option adjusts the configuration or the graph of a test application.
type Option func(*settings)

type settings struct {
	cfg   config.Config
	extra []fx.Option
}

// WithConfig lets a test change the configuration before start.
func WithConfig(f func(*config.Config)) Option {
	return func(s *settings) { f(&s.cfg) }
}

// WithFx adds options to the application graph.
func WithFx(opts ...fx.Option) Option {
	return func(s *settings) { s.extra = append(s.extra, opts...) }
}

// Config returns a configuration for a test application on dbURL and the
// broker: cheap password hashing, short timeouts, a fresh signing key.
func Config(dbURL string, k config.Kafka) config.Config {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return config.Config{
		Env: "dev", LogLevel: "info",
		HTTP: config.HTTP{Addr: "127.0.0.1:0", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxBodyBytes: 1 << 20,
			DrainDelay: 0, ShutdownTimeout: 10 * time.Second},
		Database: config.Database{URL: dbURL, MaxConns: 16, MinConns: 0, ConnectTimeout: 5 * time.Second, TxMaxAttempts: 8},
		Kafka:    k,
		Outbox:   config.Outbox{BatchSize: 100, PollInterval: 200 * time.Millisecond, RetryBackoff: 100 * time.Millisecond, Retention: time.Hour, Source: "/paygate"},
		Auth: config.Auth{
			JWTPrivateKey: base64.StdEncoding.EncodeToString(priv.Seed()), JWTKeyID: "test-k1",
			JWTIssuer: "paygate", JWTAudience: "paygate-api", AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour,
			PasswordMinLength: 8, PasswordMaxLength: 128,
			// Cheap hashing keeps tests fast; production defaults are in config.
			Argon2MemoryKiB: 1024, Argon2Time: 1, Argon2Threads: 1,
			LoginMaxFailuresPerEmail: 5, LoginMaxFailuresPerIP: 20, LoginFailureWindow: 15 * time.Minute,
			BootstrapAdminEmail: AdminEmail, BootstrapAdminPassword: AdminPassword,
		},
		Money: config.Money{Currency: "IDR", TopupMin: 10000, TopupMax: 50000000, TransferMin: 10000, TransferMax: 50000000,
			WithdrawMin: 50000, WithdrawMax: 50000000, IdempotencyRetention: 24 * time.Hour, VerifyInterval: time.Minute},
		SMTP: config.SMTP{Host: "127.0.0.1", Port: 1025, TLS: "none", Timeout: 2 * time.Second, From: "paygate <no-reply@paygate.test>"},
		// The email consumer is off unless a test turns it on (with an SMTP
		// server of its own).
		Notify: config.Notify{Enabled: false, Group: "paygate-email", RetryTopic: "paygate.notify.retry.v1", DLQTopic: "paygate.notify.dlq.v1", MaxAttempts: 5, RetryBackoff: 100 * time.Millisecond, DeliveryRetention: 336 * time.Hour},
		// Payouts are off unless a test turns them on: most tests settle
		// withdrawals themselves.
		Payout: config.Payout{Enabled: false, Group: "paygate-payouts", Provider: "simulator", SimLatency: 20 * time.Millisecond, SimFailureRate: 0.2},
	}
}

// Start runs the application for the rest of the test, with a broker of
// its own.
func Start(t testing.TB, opts ...Option) *Env {
	t.Helper()
	return StartWithBroker(t, kafkatest.NewBroker(t), opts...)
}

// StartWithBroker runs the application for the rest of the test against
// broker, configured as broker.Config says (its TLS and SASL settings too).
func StartWithBroker(t testing.TB, broker *kafkatest.Broker, opts ...Option) *Env {
	t.Helper()
	// No trace export unless the test configured an exporter itself.
	if _, ok := os.LookupEnv("OTEL_TRACES_EXPORTER"); !ok {
		t.Setenv("OTEL_TRACES_EXPORTER", "none")
	}
	dbURL := pgtest.NewDatabase(t)
	s := &settings{cfg: Config(dbURL, broker.Config())}
	for _, o := range opts {
		o(s)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
	var srv *httpserver.Server
	var pool *pgxpool.Pool
	a := fxtest.New(t, app.Options(s.cfg, log, s.extra...), fx.Populate(&srv, &pool))
	a.RequireStart()
	t.Cleanup(a.RequireStop)
	return &Env{T: t, BaseURL: "http://" + srv.Addr(), Config: s.cfg, Pool: pool, Broker: broker,
		Client: &http.Client{Timeout: 60 * time.Second, Transport: ContractTransport(t, &http.Transport{
			MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second})}}
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
