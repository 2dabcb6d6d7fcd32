package httpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

type echoBody struct {
	Name string `json:"name"`
}

func newServer(t *testing.T, checks ...httpserver.Check) (*httptest.Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	s, err := httpserver.New(httpserver.Options{
		Config:         config.HTTP{Addr: "127.0.0.1:0", MaxBodyBytes: 64, ShutdownTimeout: time.Second},
		Log:            zap.New(core),
		MeterProvider:  metricnoop.NewMeterProvider(),
		TracerProvider: tracenoop.NewTracerProvider(),
		Propagator:     propagation.TraceContext{},
		Checks:         checks,
		Registrars: []httpserver.Registrar{httpserver.RegistrarFunc(func(api *mux.Router) {
			api.HandleFunc("/v1/echo/{id}", func(w http.ResponseWriter, r *http.Request) {
				var b echoBody
				if err := httpserver.DecodeJSON(r, &b); err != nil {
					httpserver.WriteError(w, r, nil, err)
					return
				}
				httpserver.WriteJSON(w, http.StatusCreated, b)
			}).Methods(http.MethodPost)
			api.HandleFunc("/v1/panic", func(http.ResponseWriter, *http.Request) {
				panic("secret internal state")
			}).Methods(http.MethodGet)
			api.HandleFunc("/v1/fault", func(w http.ResponseWriter, r *http.Request) {
				httpserver.WriteError(w, r, nil, errors.New("pq: password=hunter2 connection refused"))
			}).Methods(http.MethodGet)
			api.HandleFunc("/v1/limited", func(w http.ResponseWriter, r *http.Request) {
				e := apperr.New(apperr.KindRateLimited, "RATE_LIMITED", "Slow down.")
				e.RetryAfter = 1500 * time.Millisecond
				httpserver.WriteError(w, r, nil, e)
			}).Methods(http.MethodGet)
		})},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, logs
}

func do(t *testing.T, method, url, contentType, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func problemOf(t *testing.T, resp *http.Response, body []byte) httpserver.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != httpserver.ProblemContentType {
		t.Fatalf("content type %q, want problem+json; body %s", ct, body)
	}
	var p httpserver.Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Status != resp.StatusCode || p.Type == "" || p.Title == "" || p.Code == "" {
		t.Fatalf("incomplete problem %+v for status %d", p, resp.StatusCode)
	}
	return p
}

func TestErrorResponses(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t)
	big := `{"name":"` + strings.Repeat("x", 100) + `"}`
	cases := []struct {
		name, method, path, ct, body string
		status                       int
		code                         string
	}{
		{"unknown route", "GET", "/v1/nope", "", "", 404, "NOT_FOUND"},
		{"wrong method", "DELETE", "/v1/echo/1", "", "", 405, "METHOD_NOT_ALLOWED"},
		{"wrong content type", "POST", "/v1/echo/1", "text/plain", `{"name":"a"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"no content type", "POST", "/v1/echo/1", "", `{"name":"a"}`, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"too large", "POST", "/v1/echo/1", "application/json", big, 413, "PAYLOAD_TOO_LARGE"},
		{"malformed", "POST", "/v1/echo/1", "application/json", `{"name":`, 400, "MALFORMED_JSON"},
		{"unknown field", "POST", "/v1/echo/1", "application/json", `{"name":"a","role":"admin"}`, 400, "VALIDATION_FAILED"},
		{"wrong type", "POST", "/v1/echo/1", "application/json", `{"name":5}`, 400, "VALIDATION_FAILED"},
		{"trailing data", "POST", "/v1/echo/1", "application/json", `{"name":"a"}{}`, 400, "MALFORMED_JSON"},
		{"fault", "GET", "/v1/fault", "", "", 500, "INTERNAL"},
		{"panic", "GET", "/v1/panic", "", "", 500, "INTERNAL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, c.method, ts.URL+c.path, c.ct, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
			}
			p := problemOf(t, resp, body)
			if p.Code != c.code {
				t.Fatalf("code %s, want %s", p.Code, c.code)
			}
			if strings.Contains(string(body), "secret") || strings.Contains(string(body), "hunter2") {
				t.Fatalf("internals leaked: %s", body)
			}
		})
	}
}

func TestUnknownFieldNamesTheField(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t)
	resp, body := do(t, "POST", ts.URL+"/v1/echo/1", "application/json", `{"name":"a","role":"admin"}`)
	p := problemOf(t, resp, body)
	if len(p.Errors) != 1 || p.Errors[0].Field != "role" {
		t.Fatalf("errors = %+v, want the role field", p.Errors)
	}
}

func TestSuccessAndRetryAfter(t *testing.T) {
	t.Parallel()
	ts, _ := newServer(t)
	resp, body := do(t, "POST", ts.URL+"/v1/echo/1", "application/json; charset=utf-8", `{"name":"ok"}`)
	if resp.StatusCode != 201 || strings.TrimSpace(string(body)) != `{"name":"ok"}` {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", ts.URL+"/v1/limited", "", "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("got %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	problemOf(t, resp, body)
}

func TestRequestIDAndAccessLog(t *testing.T) {
	t.Parallel()
	ts, logs := newServer(t)
	resp, _ := do(t, "POST", ts.URL+"/v1/echo/42", "application/json", `{"name":"secret-password"}`, "X-Request-Id", "abc-123")
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("request id %q, want the incoming one", got)
	}
	resp, _ = do(t, "GET", ts.URL+"/healthz", "", "", "X-Request-Id", "bad id with spaces")
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("invalid incoming id was not replaced: %q", got)
	}
	entries := logs.FilterMessage("http request").AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("%d access log lines, want 2", len(entries))
	}
	f := entries[0].ContextMap()
	if f["method"] != "POST" || f["route"] != "/v1/echo/{id}" || f["status"] != int64(201) || f["request_id"] != "abc-123" {
		t.Fatalf("access log fields %v", f)
	}
	if _, ok := f["duration"]; !ok {
		t.Fatal("access log without duration")
	}
	for _, e := range logs.All() {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, "secret-password") {
				t.Fatal("request body leaked into the logs")
			}
		}
	}
}

// TestOperationsListener: /metrics and the detailed readiness are served
// on the operations listener only. The public port answers 404 for
// /metrics, and its /readyz says ok or unavailable without naming what
// failed (an error text can carry host names and versions); the
// operations listener's names each check.
func TestOperationsListener(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	failing.Store(true)
	s, err := httpserver.New(httpserver.Options{
		Config:         config.HTTP{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", MaxBodyBytes: 64, ShutdownTimeout: time.Second},
		Log:            zap.NewNop(),
		MeterProvider:  metricnoop.NewMeterProvider(),
		TracerProvider: tracenoop.NewTracerProvider(),
		Propagator:     propagation.TraceContext{},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "up 1\n")
		}),
		Checks: []httpserver.Check{
			{Name: "postgres", Probe: func(context.Context) error {
				if failing.Load() {
					return errors.New("dial tcp db.internal:5432: connection refused")
				}
				return nil
			}},
			{Name: "schema", Probe: func(context.Context) error { return nil }},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	api, ops := "http://"+s.Addr(), "http://"+s.MetricsAddr()
	if s.Addr() == s.MetricsAddr() {
		t.Fatalf("one listener for both: %s", s.Addr())
	}

	if resp, body := do(t, "GET", api+"/metrics", "", ""); resp.StatusCode != 404 {
		t.Errorf("public /metrics: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, "GET", ops+"/metrics", "", ""); resp.StatusCode != 200 || string(body) != "up 1\n" {
		t.Errorf("operations /metrics: %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, "GET", api+"/readyz", "", "")
	if resp.StatusCode != 503 || strings.TrimSpace(string(body)) != `{"status":"unavailable"}` {
		t.Errorf("public /readyz: %d %s, want 503 without details", resp.StatusCode, body)
	}
	resp, body = do(t, "GET", ops+"/readyz", "", "")
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"postgres":"dial tcp db.internal:5432: connection refused"`) || !strings.Contains(string(body), `"schema":"ok"`) {
		t.Errorf("operations /readyz: %d %s, want 503 naming the check", resp.StatusCode, body)
	}
	failing.Store(false)
	for _, base := range []string{api, ops} {
		if resp, body := do(t, "GET", base+"/readyz", "", ""); resp.StatusCode != 200 {
			t.Errorf("%s/readyz: %d %s", base, resp.StatusCode, body)
		}
		if resp, body := do(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 200 {
			t.Errorf("%s/healthz: %d %s", base, resp.StatusCode, body)
		}
	}
}

// TestPprof: with PAYGATE_PPROF_ENABLED the profiles are served under
// /debug/pprof/ on the operations listener, and never on the public port;
// without it, on neither.
func TestPprof(t *testing.T) {
	t.Parallel()
	for _, enabled := range []bool{true, false} {
		t.Run(fmt.Sprintf("enabled=%t", enabled), func(t *testing.T) {
			t.Parallel()
			s, err := httpserver.New(httpserver.Options{
				Config: config.HTTP{Addr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", MaxBodyBytes: 64,
					WriteTimeout: 30 * time.Second, ShutdownTimeout: time.Second, PprofEnabled: enabled},
				Log:            zap.NewNop(),
				MeterProvider:  metricnoop.NewMeterProvider(),
				TracerProvider: tracenoop.NewTracerProvider(),
				Propagator:     propagation.TraceContext{},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			api, ops := "http://"+s.Addr(), "http://"+s.MetricsAddr()
			paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1",
				"/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"}
			for _, p := range paths {
				if resp, body := do(t, "GET", api+p, "", ""); resp.StatusCode != 404 {
					t.Errorf("public %s: %d %.200s, want 404", p, resp.StatusCode, body)
				}
				resp, body := do(t, "GET", ops+p, "", "")
				switch {
				case enabled && resp.StatusCode != 200:
					t.Errorf("operations %s: %d %.200s, want 200", p, resp.StatusCode, body)
				case enabled && p == "/debug/pprof/" && !strings.Contains(string(body), "goroutine"):
					t.Errorf("operations %s does not list the profiles: %.300s", p, body)
				case !enabled && resp.StatusCode != 404:
					t.Errorf("operations %s with pprof off: %d %.200s, want 404", p, resp.StatusCode, body)
				}
			}
		})
	}
}
