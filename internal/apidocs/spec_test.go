package apidocs_test

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"
	"go.uber.org/fx"

	"github.com/paygate/paygate/api"
	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/topup"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	// Validate checks the document against OpenAPI 3.0.3, including every
	// example against its schema.
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi: %s, want 3.0.3 (the version kin-openapi validates fully)", doc.OpenAPI)
	}
	return doc
}

// TestSpecCoversEveryRoute compares the routes of the running gateway's
// router with the operations of api/openapi.yaml, both ways.
func TestSpecCoversEveryRoute(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	var srv *httpserver.Server
	startDocs(t, apptest.WithFx(fx.Populate(&srv)))

	served := map[string]bool{}
	err := srv.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // a route without a path (none today)
		}
		methods, err := route.GetMethods()
		if err != nil {
			t.Errorf("route %s accepts every method: give it .Methods(...) and document each", tpl)
			return nil
		}
		for _, m := range methods {
			served[m+" "+tpl] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, k := range missing {
		t.Errorf("route %s is served but not in api/openapi.yaml: document it", k)
	}
	for _, k := range extra {
		t.Errorf("api/openapi.yaml has %s, but no route serves it", k)
	}
	if len(served) < 30 {
		t.Fatalf("only %d routes walked: is the router complete?", len(served))
	}
}

// moneyPosts are the operations that move money: each requires an
// Idempotency-Key.
var moneyPosts = []string{"createTopUp", "reverseTopUp", "createTransfer", "reverseTransfer", "createWithdrawal"}

var publicOps = []string{"register", "login", "refreshTokens", "liveness", "livenessHead", "readiness", "readinessHead",
	"getOpenAPI", "getDocs", "getRedocBundle"}

// callbackOps receive the payment provider's notifications. They take no
// bearer token (security: []) but require the provider's callback token,
// and they read the provider's payload raw, as the provider documents it:
// neither its content type (no 415) nor its unknown members are refused.
var callbackOps = []string{"paymentCallback", "payoutCallback"}

// TestSpecConventions checks, operation by operation, what
// api-conventions.md and the handlers promise, so that a new operation
// cannot forget one.
func TestSpecConventions(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	if doc.Components.SecuritySchemes["bearerAuth"] == nil || doc.Components.SecuritySchemes["bearerAuth"].Value.Scheme != "bearer" {
		t.Fatal("no bearerAuth security scheme")
	}
	ids := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" || op.Summary == "" || len(op.Tags) == 0 {
				t.Errorf("%s: operationId, summary and tags are required", name)
			}
			if ids[op.OperationID] {
				t.Errorf("%s: operationId %s is not unique", name, op.OperationID)
			}
			ids[op.OperationID] = true
			public := slices.Contains(publicOps, op.OperationID)
			callback := slices.Contains(callbackOps, op.OperationID)
			switch {
			case callback:
				token := op.Parameters.GetByInAndName("header", "x-callback-token")
				if token == nil {
					token = item.Parameters.GetByInAndName("header", "x-callback-token")
				}
				if op.Security == nil || len(*op.Security) != 0 {
					t.Errorf("%s: a callback takes no bearer token: it must say security: []", name)
				}
				if token == nil || !token.Required {
					t.Errorf("%s: a callback requires the x-callback-token header", name)
				}
				if op.Responses.Status(401) == nil {
					t.Errorf("%s: a callback answers 401 for a bad token", name)
				}
			case public && (op.Security == nil || len(*op.Security) != 0):
				t.Errorf("%s: a public operation must say security: []", name)
			case !public && op.Security != nil:
				t.Errorf("%s: a protected operation takes the global bearerAuth security", name)
			case !public && op.Responses.Status(401) == nil:
				t.Errorf("%s: a protected operation answers 401", name)
			}
			if strings.HasPrefix(path, "/v1/") && op.Responses.Status(500) == nil {
				t.Errorf("%s: no 500 response", name)
			}
			if op.RequestBody != nil {
				for _, s := range []int{400, 413, 415} {
					if op.Responses.Status(s) == nil && !(callback && s == 415) {
						t.Errorf("%s: takes a body but does not document %d", name, s)
					}
				}
				for ct, mt := range op.RequestBody.Value.Content {
					if ct != "application/json" {
						t.Errorf("%s: request content type %s", name, ct)
					}
					if !callback {
						checkClosed(t, name+" request body", mt.Schema.Value, map[*openapi3.Schema]bool{})
					}
				}
			}
			idem := op.Parameters.GetByInAndName("header", "Idempotency-Key")
			if slices.Contains(moneyPosts, op.OperationID) {
				if idem == nil || !idem.Required || idem.Schema.Value.MaxLength == nil || *idem.Schema.Value.MaxLength != 255 {
					t.Errorf("%s: must require Idempotency-Key (maxLength 255)", name)
				}
				for code, ref := range op.Responses.Map() {
					if code[0] == '2' && ref.Value.Headers["Idempotent-Replayed"] == nil {
						t.Errorf("%s: %s lacks the Idempotent-Replayed header", name, code)
					}
				}
				if op.Responses.Status(409) == nil || op.Responses.Status(422) == nil {
					t.Errorf("%s: a money operation answers 409 (IDEMPOTENCY_IN_PROGRESS) and 422 (IDEMPOTENCY_KEY_REUSED)", name)
				}
			} else if idem != nil {
				t.Errorf("%s: Idempotency-Key on an operation that is not a money POST", name)
			}
			for code, ref := range op.Responses.Map() {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				for ct := range ref.Value.Content {
					if ct != "application/problem+json" && !(path == "/readyz" && code == "503") {
						t.Errorf("%s: %s is %s, not application/problem+json", name, code, ct)
					}
				}
			}
			if ref := op.Responses.Status(429); ref != nil && ref.Value.Headers["Retry-After"] == nil {
				t.Errorf("%s: 429 without Retry-After", name)
			}
			checkList(t, name, op)
		}
	}
	for _, id := range slices.Concat(moneyPosts, publicOps, callbackOps) {
		if !ids[id] {
			t.Errorf("operation %s is not in the spec", id)
		}
	}
}

// checkClosed fails when an object schema of a request body accepts
// unknown members: the server refuses them.
func checkClosed(t *testing.T, where string, s *openapi3.Schema, seen map[*openapi3.Schema]bool) {
	t.Helper()
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if s.Type.Is("object") {
		if s.AdditionalProperties.Has == nil || *s.AdditionalProperties.Has {
			t.Errorf("%s: object schema without additionalProperties: false", where)
		}
		for name, p := range s.Properties {
			checkClosed(t, where+"."+name, p.Value, seen)
		}
	}
	for _, sub := range slices.Concat(s.AllOf, s.AnyOf, s.OneOf) {
		checkClosed(t, where, sub.Value, seen)
	}
}

// checkList checks the list conventions: limit (1 to 100, default 20)
// and cursor in, {data, next_cursor: string|null} out.
func checkList(t *testing.T, name string, op *openapi3.Operation) {
	t.Helper()
	ok := op.Responses.Status(200)
	if ok == nil || ok.Value.Content.Get("application/json") == nil {
		return
	}
	s := ok.Value.Content.Get("application/json").Schema.Value
	if s.Properties["data"] == nil {
		return
	}
	if !slices.Equal(s.Required, []string{"data", "next_cursor"}) || !s.Properties["data"].Value.Type.Is("array") ||
		!s.Properties["next_cursor"].Value.Nullable {
		t.Errorf("%s: a list is {data: [...], next_cursor: string|null}, both required", name)
	}
	limit := op.Parameters.GetByInAndName("query", "limit")
	if limit == nil || *limit.Schema.Value.Min != 1 || *limit.Schema.Value.Max != 100 || limit.Schema.Value.Default != float64(20) {
		t.Errorf("%s: a list takes limit 1 to 100, default 20", name)
	}
	if op.Parameters.GetByInAndName("query", "cursor") == nil {
		t.Errorf("%s: a list takes a cursor", name)
	}
	if op.Responses.Status(400) == nil {
		t.Errorf("%s: a list answers 400 for a bad limit or cursor", name)
	}
}

// TestSpecTopUpMethods keeps the spec's enum of top-up methods equal to
// the server's, and its case-insensitive request pattern exact.
func TestSpecTopUpMethods(t *testing.T) {
	t.Parallel()
	doc := loadSpec(t)
	var enum []string
	for _, v := range doc.Components.Schemas["TopUpMethod"].Value.Enum {
		enum = append(enum, v.(string))
	}
	if !slices.Equal(enum, topup.Methods) {
		t.Fatalf("TopUpMethod enum %v, want topup.Methods %v", enum, topup.Methods)
	}
	method := doc.Components.Schemas["TopUpRequest"].Value.Properties["method"].Value
	visit := func(v string) error { return method.VisitJSON(v) }
	for _, m := range topup.Methods {
		for _, v := range []string{m, strings.ToUpper(m), " " + strings.ToUpper(m[:1]) + m[1:] + " "} {
			if err := visit(v); err != nil {
				t.Errorf("method %q refused by the spec: %v", v, err)
			}
			if _, ok := topup.CanonicalMethod(v); !ok {
				t.Errorf("method %q refused by the server", v)
			}
		}
	}
	for _, v := range []string{"bitcoin", "ovo2", "o vo", "", "americanexpress"} {
		if visit(v) == nil {
			t.Errorf("method %q accepted by the spec", v)
		}
	}
}

// TestSpecErrorCodes checks that every code the spec lists is upper snake
// case and that the codes conventions promise are there.
func TestSpecErrorCodes(t *testing.T) {
	t.Parallel()
	codes := map[string]bool{}
	re := regexp.MustCompile(`code: \{enum: \[([^\]]*)\]\}`)
	for _, m := range re.FindAllSubmatch(api.OpenAPI, -1) {
		for _, c := range strings.Split(string(m[1]), ",") {
			codes[strings.TrimSpace(c)] = true
		}
	}
	for c := range codes {
		if !regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(c) {
			t.Errorf("code %q is not upper snake case", c)
		}
	}
	for _, c := range []string{"VALIDATION_FAILED", "MALFORMED_JSON", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND",
		"EMAIL_TAKEN", "INVALID_CREDENTIALS", "INVALID_REFRESH_TOKEN", "RATE_LIMITED", "WRONG_PASSWORD",
		"USER_HOLDS_MONEY", "INSUFFICIENT_FUNDS", "AMOUNT_OUT_OF_RANGE", "SELF_TRANSFER", "RECIPIENT_NOT_FOUND",
		"ALREADY_REVERSED", "IDEMPOTENCY_KEY_REQUIRED", "IDEMPOTENCY_KEY_INVALID", "IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_IN_PROGRESS",
		"UNSUPPORTED_MEDIA_TYPE", "PAYLOAD_TOO_LARGE", "METHOD_NOT_ALLOWED", "INVALID_CURSOR", "INTERNAL", "DOCS_NOT_BUILT"} {
		if !codes[c] {
			t.Errorf("code %s is documented nowhere", c)
		}
	}
}
