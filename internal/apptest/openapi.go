package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/paygate/paygate/api"
)

// The contract check: every exchange of Env.Client is validated against
// api/openapi.yaml with kin-openapi, and a mismatch fails the test that
// started the Env (t.Errorf, naming the operation).
//
//   - The response is always validated: its status must be documented for
//     the operation (openapi3filter's IncludeResponseStatus), its
//     documented headers must match (required ones present), its
//     Content-Type must be one the spec lists for that status, and its
//     body must match the schema (so a problem's status and code must be
//     among the operation's). A body where the spec documents none fails
//     too, and so does a response without X-Request-Id.
//   - A request that matches no operation must have been answered by the
//     router's own refusals: 404 (RouteNotFound), 405 (MethodNotAllowed),
//     or the body middleware's 413 and 415, each checked against that
//     response of components.responses. Anything else means the server
//     serves a route the spec lacks.
//   - The request is validated too (parameters, Idempotency-Key, body), but
//     a request the spec rejects fails the test only when the server
//     accepted it (status < 400): tests send deliberately invalid requests
//     (bad JSON, unknown fields, missing keys, wrong content types, oversize
//     bodies, garbage tokens) to check the 4xx, and those answers are
//     checked as responses. A 2xx to a request the spec forbids means the
//     spec is stricter than the server, or the server too lenient.
//   - Authentication is the server's business: the validator only checks
//     that a bearer token was sent where the spec requires one.
//   - HEAD responses carry no body; kin-openapi does not validate them.

// ContractTransport wraps base so that every exchange through it is
// validated against api/openapi.yaml; mismatches are reported with
// t.Errorf. Env.Client uses it; tests that call the gateway through other
// clients (a proxy in front of curl, say) can use it too.
func ContractTransport(t testing.TB, base http.RoundTripper) http.RoundTripper {
	c, err := loadContract()
	if err != nil {
		t.Fatalf("openapi contract: %v", err)
	}
	return &contractTransport{t: t, base: base, c: c}
}

type contract struct {
	doc    *openapi3.T
	router routers.Router
	// unmatched are the responses a request matching no operation may get,
	// by status.
	unmatched map[int]*openapi3.ResponseRef
	formats   []openapi3.SchemaValidationOption
}

var (
	contractOnce sync.Once
	contractVal  *contract
	contractErr  error
)

func loadContract() (*contract, error) {
	contractOnce.Do(func() { contractVal, contractErr = parseContract(api.OpenAPI) })
	return contractVal, contractErr
}

// uuidPattern is what uuid.Parse accepts in its canonical form; the server
// writes ids lower-case.
const uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

func parseContract(spec []byte) (*contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("load api/openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("api/openapi.yaml is not a valid OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route api/openapi.yaml: %w", err)
	}
	c := &contract{doc: doc, router: router, unmatched: map[int]*openapi3.ResponseRef{},
		// kin-openapi checks date-time and int64 by itself; uuid and email
		// are opt-in.
		formats: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidPattern)),
			openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
		}}
	for status, name := range map[int]string{404: "RouteNotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge", 415: "UnsupportedMediaType"} {
		ref := doc.Components.Responses[name]
		if ref == nil {
			return nil, fmt.Errorf("api/openapi.yaml lacks components.responses.%s", name)
		}
		c.unmatched[status] = ref
	}
	return c, nil
}

// bearerPresent accepts any bearer token: whether it is valid is the
// server's to say, and a refusal is a 401 checked as a response.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("unexpected security scheme %q", in.SecuritySchemeName)
	}
	scheme, token, ok := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

type contractTransport struct {
	t    testing.TB
	base http.RoundTripper
	c    *contract
}

func (ct *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
	}
	send := req.Clone(req.Context())
	if reqBody != nil {
		send.Body = io.NopCloser(bytes.NewReader(reqBody))
		send.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	}
	resp, err := ct.base.RoundTrip(send)
	if err != nil {
		return resp, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if err != nil {
		return nil, err
	}
	if msg := ct.c.check(req, reqBody, resp, respBody); msg != "" {
		ct.t.Errorf("%s", msg)
	}
	return resp, nil
}

// check validates one exchange and returns what is wrong with it, or "".
func (c *contract) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	ctx := context.Background()
	vreq := req.Clone(ctx)
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	vreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
	exchange := fmt.Sprintf("%s %s", req.Method, req.URL.RequestURI())

	var problems []string
	if resp.Header.Get("X-Request-Id") == "" {
		problems = append(problems, "the response has no X-Request-Id header")
	}

	route, params, findErr := c.router.FindRoute(vreq)
	var reqInput *openapi3filter.RequestValidationInput
	var reqErr error
	if findErr != nil {
		ref, ok := c.unmatched[resp.StatusCode]
		if !ok {
			return fmt.Sprintf("openapi contract: %s matches no operation of api/openapi.yaml (%v), yet the server answered %d: document the route in api/openapi.yaml\nresponse body: %s",
				exchange, findErr, resp.StatusCode, excerpt(respBody))
		}
		op := openapi3.NewOperation()
		op.OperationID = "(no operation: " + findErr.Error() + ")"
		op.Responses = openapi3.NewResponses(openapi3.WithStatus(resp.StatusCode, ref))
		route = &routers.Route{Spec: c.doc, Path: req.URL.Path, PathItem: &openapi3.PathItem{}, Method: req.Method, Operation: op}
		reqInput = &openapi3filter.RequestValidationInput{Request: vreq, Route: route}
	} else {
		opts := &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true, SkipSettingDefaults: true,
			SchemaValidationOptions: c.formats}
		opts.WithCustomSchemaErrorFunc(schemaErrorMessage)
		reqInput = &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: opts}
		// A request the spec rejects matters only when the server accepted
		// it (below); refused requests, oversize bodies among them, are
		// not validated for nothing.
		if resp.StatusCode < 400 {
			reqErr = openapi3filter.ValidateRequest(ctx, reqInput)
		}
	}
	opName := route.Operation.OperationID

	respOpts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, SchemaValidationOptions: c.formats}
	respOpts.WithCustomSchemaErrorFunc(schemaErrorMessage)
	respInput := &openapi3filter.ResponseValidationInput{RequestValidationInput: reqInput, Status: resp.StatusCode, Header: resp.Header,
		Options: respOpts}
	respInput.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
		problems = append(problems, fmt.Sprintf("response %d does not match the spec: %v", resp.StatusCode, err))
	} else if req.Method != http.MethodHead && len(respBody) > 0 && !documentsBody(route.Operation, resp.StatusCode) {
		problems = append(problems, fmt.Sprintf("response %d has a body (%s), but the spec documents none", resp.StatusCode, resp.Header.Get("Content-Type")))
	}
	if reqErr != nil && resp.StatusCode < 400 {
		problems = append(problems, fmt.Sprintf("the request does not match the spec, yet the server accepted it with %d: %v", resp.StatusCode, reqErr))
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("openapi contract: %s (operation %s):\n  - %s\nrequest body: %s\nresponse body: %s",
		exchange, opName, strings.Join(problems, "\n  - "), excerpt(reqBody), excerpt(respBody))
}

// schemaErrorMessage names the failing member and the reason without the
// schema dump kin-openapi appends by default: the message also quotes the
// bodies, and the schema is in api/openapi.yaml.
func schemaErrorMessage(err *openapi3.SchemaError) string {
	if err.Origin != nil {
		return ""
	}
	at := "/" + strings.Join(err.JSONPointer(), "/")
	if v, jerr := json.Marshal(err.Value); jerr == nil && len(v) <= 200 {
		return fmt.Sprintf("at %s: %s (value %s)", at, err.Reason, v)
	}
	return fmt.Sprintf("at %s: %s", at, err.Reason)
}

// documentsBody reports whether the spec describes a body for status.
func documentsBody(op *openapi3.Operation, status int) bool {
	ref := op.Responses.Status(status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	return ref != nil && ref.Value != nil && len(ref.Value.Content) > 0
}

func excerpt(b []byte) string {
	const max = 2000
	switch {
	case len(b) == 0:
		return "(empty)"
	case len(b) > max:
		return string(b[:max]) + "..."
	default:
		return string(b)
	}
}
