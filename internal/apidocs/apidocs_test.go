package apidocs_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/fx"
	"go.uber.org/zap"

	"github.com/paygate/paygate/api"
	"github.com/paygate/paygate/internal/apidocs"
	"github.com/paygate/paygate/internal/apptest"
)

// requireBundle fails when the Redoc bundle was not embedded: make test
// builds it (scripts/test.sh, make docs) before go test.
func requireBundle(t *testing.T) {
	t.Helper()
	if api.RedocBundle() == nil {
		t.Fatal("the Redoc bundle is not embedded (api/redoc/redoc.standalone.js): run make docs before go test")
	}
}

func TestServesSpecAndDocs(t *testing.T) {
	t.Parallel()
	requireBundle(t)
	e := startDocs(t)

	spec := e.Get(t, apidocs.SpecPath, "")
	if spec.Status != 200 || !bytes.Equal(spec.Body, api.OpenAPI) || !strings.HasPrefix(spec.Header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("spec: %d %s, %d bytes", spec.Status, spec.Header.Get("Content-Type"), len(spec.Body))
	}
	tag := spec.Header.Get("ETag")
	if r := e.Do(t, apptest.Request{Method: "GET", Path: apidocs.SpecPath, Header: map[string]string{"If-None-Match": tag}}); r.Status != 304 || len(r.Body) != 0 {
		t.Fatalf("revalidation: %d (%d bytes)", r.Status, len(r.Body))
	}

	docs := e.Get(t, apidocs.DocsPath, "")
	if docs.Status != 200 || !strings.HasPrefix(docs.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("docs: %d %s", docs.Status, docs.Header.Get("Content-Type"))
	}
	csp := docs.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "script-src 'self' 'unsafe-inline'") {
		t.Errorf("CSP %q allows eval or inline script", csp)
	}
	page := string(docs.Body)
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("the docs page loads something from another origin:\n%s", page)
	}
	if !strings.Contains(page, `src="docs/redoc.standalone.js"`) || !strings.Contains(page, `spec-url="openapi.yaml"`) {
		t.Errorf("the docs page does not load the bundle and the spec:\n%s", page)
	}
	if strings.Contains(strings.ReplaceAll(page, `<script src="docs/redoc.standalone.js"></script>`, ""), "<script") {
		t.Errorf("the docs page has an inline script, which its CSP forbids:\n%s", page)
	}

	bundle := e.Get(t, apidocs.BundlePath, "")
	if bundle.Status != 200 || !bytes.Equal(bundle.Body, api.RedocBundle()) || !strings.HasPrefix(bundle.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("bundle: %d %s", bundle.Status, bundle.Header.Get("Content-Type"))
	}
}

func TestDocsWithoutBundleAnswer503(t *testing.T) {
	t.Parallel()
	e := startDocs(t, apptest.WithFx(fx.Decorate(func(log *zap.Logger) *apidocs.Handler {
		return apidocs.NewHandlerFor(log, api.OpenAPI, nil)
	})))
	for _, path := range []string{apidocs.DocsPath, apidocs.BundlePath} {
		r := e.Get(t, path, "")
		if r.Status != 503 || r.Code() != "DOCS_NOT_BUILT" || !strings.Contains(string(r.Body), "run make docs") {
			t.Errorf("%s without bundle: %d %s", path, r.Status, r.Body)
		}
	}
	if r := e.Get(t, apidocs.SpecPath, ""); r.Status != 200 {
		t.Errorf("the spec needs no bundle: %d", r.Status)
	}
}

// TestRefusalsMatchTheSpec sends the requests the server refuses before
// any domain logic (wrong method, unknown route, wrong media type, bad
// JSON, oversize bodies, missing or reused idempotency keys, bad pages):
// the Env's client validates each refusal against api/openapi.yaml.
func TestRefusalsMatchTheSpec(t *testing.T) {
	t.Parallel()
	e := startDocs(t)
	u := e.NewUser(t)
	fund := func(key string, amount int) *apptest.Response {
		return e.Post(t, "/v1/topups", u.Token, map[string]any{"amount": amount, "method": "ovo"}, "Idempotency-Key", key)
	}
	big := `{"firstname":"` + strings.Repeat("x", int(e.Config.HTTP.MaxBodyBytes)) + `"}`
	cases := []struct {
		name   string
		req    apptest.Request
		status int
		code   string
	}{
		{"unknown route", apptest.Request{Method: "GET", Path: "/v1/nope"}, 404, "NOT_FOUND"},
		{"wrong method", apptest.Request{Method: "DELETE", Path: "/v1/topups", Token: u.Token}, 405, "METHOD_NOT_ALLOWED"},
		{"wrong method on a probe", apptest.Request{Method: "POST", Path: "/healthz"}, 405, "METHOD_NOT_ALLOWED"},
		{"wrong media type", apptest.Request{Method: "POST", Path: "/v1/auth/login", Body: `{}`, Header: map[string]string{"Content-Type": "text/plain"}}, 415, "UNSUPPORTED_MEDIA_TYPE"},
		{"malformed JSON", apptest.Request{Method: "POST", Path: "/v1/auth/login", Body: `{"email":`}, 400, "MALFORMED_JSON"},
		{"trailing data", apptest.Request{Method: "POST", Path: "/v1/auth/refresh", Body: `{"refresh_token":"x"}{}`}, 400, "MALFORMED_JSON"},
		{"empty body", apptest.Request{Method: "POST", Path: "/v1/auth/register", Body: ``, Header: map[string]string{"Content-Type": "application/json"}}, 400, "MALFORMED_JSON"},
		{"too large", apptest.Request{Method: "POST", Path: "/v1/auth/register", Body: big}, 413, "PAYLOAD_TOO_LARGE"},
		{"too large, unknown route", apptest.Request{Method: "POST", Path: "/v1/nope", Body: big}, 413, "PAYLOAD_TOO_LARGE"},
		{"missing fields", apptest.Request{Method: "POST", Path: "/v1/auth/login", Body: `{}`}, 400, "VALIDATION_FAILED"},
		{"no idempotency key", apptest.Request{Method: "POST", Path: "/v1/transfers", Token: u.Token, Body: map[string]any{"to": "x@example.com", "amount": 10000}}, 400, "IDEMPOTENCY_KEY_REQUIRED"},
		{"key too long", apptest.Request{Method: "POST", Path: "/v1/withdrawals", Token: u.Token, Body: map[string]any{"amount": 50000},
			Header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}, 400, "IDEMPOTENCY_KEY_INVALID"},
		{"bad cursor", apptest.Request{Method: "GET", Path: "/v1/topups?cursor=garbage", Token: u.Token}, 400, "INVALID_CURSOR"},
		{"bad statement cursor", apptest.Request{Method: "GET", Path: "/v1/saldo/statement?cursor=garbage", Token: u.Token}, 400, "INVALID_CURSOR"},
		{"bad user_id", apptest.Request{Method: "GET", Path: "/v1/transfers?user_id=nope", Token: u.Token}, 400, "VALIDATION_FAILED"},
		{"bad limit", apptest.Request{Method: "GET", Path: "/v1/withdrawals?limit=abc", Token: u.Token}, 400, "VALIDATION_FAILED"},
		{"garbage token", apptest.Request{Method: "GET", Path: "/v1/saldo", Token: "garbage"}, 401, "UNAUTHENTICATED"},
		{"no token", apptest.Request{Method: "GET", Path: "/v1/admin/ledger/verify"}, 401, "UNAUTHENTICATED"},
		{"not an admin", apptest.Request{Method: "GET", Path: "/v1/saldos", Token: u.Token}, 403, "FORBIDDEN"},
		{"unknown top-up", apptest.Request{Method: "GET", Path: "/v1/topups/00000000-0000-4000-8000-000000000000", Token: u.Token}, 404, "NOT_FOUND"},
		{"self transfer", apptest.Request{Method: "POST", Path: "/v1/transfers", Token: u.Token, Body: map[string]any{"to": u.Email, "amount": 10000},
			Header: map[string]string{"Idempotency-Key": "self"}}, 422, "SELF_TRANSFER"},
		{"no such recipient", apptest.Request{Method: "POST", Path: "/v1/transfers", Token: u.Token, Body: map[string]any{"to": "nobody@example.com", "amount": 10000},
			Header: map[string]string{"Idempotency-Key": "nobody"}}, 422, "RECIPIENT_NOT_FOUND"},
		{"insufficient funds", apptest.Request{Method: "POST", Path: "/v1/withdrawals", Token: u.Token,
			Body:   map[string]any{"amount": 60000, "bank_code": "bca", "bank_account_number": " 1234567890 ", "bank_account_name": "Test"},
			Header: map[string]string{"Idempotency-Key": "poor"}}, 422, "INSUFFICIENT_FUNDS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Do(t, c.req)
			if r.Status != c.status || r.Code() != c.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, c.status, c.code)
			}
		})
	}

	// A stored refusal is replayed with Idempotent-Replayed.
	if r := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": 60000, "bank_code": "bca", "bank_account_number": " 1234567890 ",
		"bank_account_name": "Test"}, "Idempotency-Key", "poor"); r.Status != 422 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed refusal: %d %s %v", r.Status, r.Body, r.Header)
	}
	if r := fund("f1", 100000); r.Status != 201 {
		t.Fatalf("top-up: %d %s", r.Status, r.Body)
	}
	if r := fund("f1", 100000); r.Status != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed top-up: %d %s", r.Status, r.Body)
	}
	if r := fund("f1", 200000); r.Status != 422 || r.Code() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("reused key: %d %s", r.Status, r.Body)
	}
	if r := fund("f2", 1); r.Status != 422 || r.Code() != "AMOUNT_OUT_OF_RANGE" {
		t.Fatalf("out of range: %d %s", r.Status, r.Body)
	}

	// Probes; metrics are on the operations listener only.
	if r := e.Get(t, "/metrics", ""); r.Status != 404 {
		t.Errorf("/metrics on the API port: %d", r.Status)
	}
	if len(e.Metrics(t)) == 0 {
		t.Error("/metrics on the operations listener is empty")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := e.Get(t, path, ""); r.Status != 200 {
			t.Errorf("%s: %d", path, r.Status)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := e.Do(t, apptest.Request{Method: http.MethodHead, Path: path}); r.Status != 200 || len(r.Body) != 0 {
			t.Errorf("HEAD %s: %d", path, r.Status)
		}
	}
}
