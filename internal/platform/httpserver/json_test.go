package httpserver_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

// moneyBody has the shapes of paygate's request bodies: an int64 amount,
// strings, an optional pointer, and (for depth) a nested object and a list.
type moneyBody struct {
	Amount int64    `json:"amount"`
	To     string   `json:"to"`
	Note   string   `json:"note"`
	Active *bool    `json:"active"`
	Small  int8     `json:"small"`
	Count  uint32   `json:"count"`
	Tags   []string `json:"tags"`
	Meta   struct {
		Method string `json:"method"`
		Code   int64  `json:"code"`
	} `json:"meta"`
	Items []struct {
		ID int64 `json:"id"`
	} `json:"items"`
}

type reversalBody struct {
	Reason string `json:"reason"`
}

func jsonRequest(body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// TestStrictJSONRefusesAmbiguousBodies: every body whose meaning depends
// on how a parser breaks ties is refused with 400, the code and the member
// named; encoding/json alone accepted each of them.
func TestStrictJSONRefusesAmbiguousBodies(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		body, code, field string
	}{
		"duplicate member":            {`{"amount":10000,"amount":50000}`, "VALIDATION_FAILED", "amount"},
		"duplicate via escape":        {`{"amount":10000,"\u0061mount":50000}`, "VALIDATION_FAILED", "amount"},
		"duplicate nested":            {`{"meta":{"method":"a","method":"b"}}`, "VALIDATION_FAILED", "meta.method"},
		"duplicate in list item":      {`{"items":[{"id":1},{"id":2,"id":3}]}`, "VALIDATION_FAILED", "items[1].id"},
		"duplicate unknown":           {`{"x":1,"x":2}`, "VALIDATION_FAILED", "x"},
		"case variant":                {`{"AMOUNT":50000}`, "VALIDATION_FAILED", "AMOUNT"},
		"case variant after exact":    {`{"amount":10000,"Amount":50000}`, "VALIDATION_FAILED", "Amount"},
		"case variant nested":         {`{"meta":{"Method":"x"}}`, "VALIDATION_FAILED", "meta.Method"},
		"kelvin sign folds to k":      {`{"to":"a","tags":[],"meta":{"method":"x","code":1},"\u212aount":1}`, "VALIDATION_FAILED", "\u212aount"},
		"long s folds to s":           {`{"tag\u017f":["x"]}`, "VALIDATION_FAILED", "tag\u017f"},
		"unknown member":              {`{"amount":1,"role":"admin"}`, "VALIDATION_FAILED", "role"},
		"unknown nested member":       {`{"meta":{"role":"admin"}}`, "VALIDATION_FAILED", "meta.role"},
		"int64 exponent overflow":     {`{"amount":1e30}`, "VALIDATION_FAILED", "amount"},
		"int64 just over":             {`{"amount":9223372036854775808}`, "VALIDATION_FAILED", "amount"},
		"int64 just under":            {`{"amount":-9223372036854775809}`, "VALIDATION_FAILED", "amount"},
		"int64 fraction":              {`{"amount":1.5}`, "VALIDATION_FAILED", "amount"},
		"int64 integral exponent":     {`{"amount":1e4}`, "VALIDATION_FAILED", "amount"},
		"int8 overflow":               {`{"small":128}`, "VALIDATION_FAILED", "small"},
		"uint negative":               {`{"count":-1}`, "VALIDATION_FAILED", "count"},
		"nested int overflow":         {`{"items":[{"id":99999999999999999999}]}`, "VALIDATION_FAILED", "items[0].id"},
		"float64 overflow in unknown": {`{"tags":[1e400]}`, "VALIDATION_FAILED", "tags[0]"},
		"null amount":                 {`{"amount":null}`, "VALIDATION_FAILED", "amount"},
		"nul in a string":             {`{"note":"a\u0000b"}`, "VALIDATION_FAILED", "note"},
		"nul in a list":               {`{"tags":["\u0000"]}`, "VALIDATION_FAILED", "tags[0]"},
		"trailing object":             {`{"amount":1}{"amount":2}`, "MALFORMED_JSON", ""},
		"trailing garbage":            {`{"amount":1} x`, "MALFORMED_JSON", ""},
		"trailing comma value":        {`{"amount":1},`, "MALFORMED_JSON", ""},
		"invalid utf-8":               {"{\"note\":\"\xff\"}", "MALFORMED_JSON", ""},
		"lone high surrogate":         {`{"note":"\ud800"}`, "MALFORMED_JSON", ""},
		"lone low surrogate":          {`{"note":"\udc00x"}`, "MALFORMED_JSON", ""},
		"not an object":               {`[{"amount":1}]`, "VALIDATION_FAILED", ""},
		"null body":                   {`null`, "VALIDATION_FAILED", ""},
		"too deep":                    {`{"tags":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "MALFORMED_JSON", ""},
		"empty":                       {``, "MALFORMED_JSON", ""},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var dst moneyBody
			err := httpserver.DecodeJSON(jsonRequest([]byte(tc.body)), &dst)
			var ae *apperr.Error
			if !errors.As(err, &ae) {
				t.Fatalf("%s: accepted (%+v) or not an apperr: %v", tc.body, dst, err)
			}
			if ae.Kind != apperr.KindValidation || ae.Code != tc.code {
				t.Fatalf("%s: %s %s, want 400 %s", tc.body, ae.Code, ae.Detail, tc.code)
			}
			if tc.field != "" && (len(ae.Fields) != 1 || ae.Fields[0].Field != tc.field) {
				t.Fatalf("%s: fields %+v, want %q named", tc.body, ae.Fields, tc.field)
			}
		})
	}
}

// TestStrictJSONAcceptsPlainBodies: the strictness refuses nothing a
// well-behaved client sends.
func TestStrictJSONAcceptsPlainBodies(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`{"amount":10000,"to":"1234567890123456","note":"rent \ud83d\ude00 \u00e9"}`,
		`{"amount":-9223372036854775808,"small":-128,"count":4294967295}`,
		`{"amount":9223372036854775807}`,
		`{"amount":-0}`,
		` {"active":null,"tags":null,"items":[{"id":1},{"id":2}],"meta":{"method":"qris","code":0}} ` + "\n",
		`{}`,
	} {
		var dst moneyBody
		if err := httpserver.DecodeJSON(jsonRequest([]byte(body)), &dst); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	var rev reversalBody
	r := httptest.NewRequest(http.MethodPost, "/v1/x", http.NoBody)
	if raw, err := httpserver.DecodeOptionalJSONBody(r, &rev); err != nil || string(raw) != "{}" {
		t.Errorf("empty optional body: %q %v", raw, err)
	}
}

// FuzzDecodeJSON checks DecodeJSON's invariants on arbitrary bodies: it
// never panics; a refusal is a 400 (never a fault); and a body it accepts
// has no duplicate member and means exactly what it decoded to (see
// checkAccepted).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"amount":10000,"to":"x"}`, `{"amount":1,"amount":2}`, `{"AMOUNT":1}`,
		`{"meta":{"method":"a","code":9223372036854775807}}`, `{"items":[{"id":1}]}`, `{"amount":1e30}`, `{"note":"\ud83d\ude00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst moneyBody
		err := httpserver.DecodeJSON(jsonRequest(body), &dst)
		checkOutcome(t, body, err, &dst)
	})
}

// FuzzDecodeOptionalJSONBody is FuzzDecodeJSON for bodies that may be
// absent (the reversal body): the same invariants, and the raw body it
// returns (the idempotency fingerprint's input) is the body sent, or {}
// for none.
func FuzzDecodeOptionalJSONBody(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"reason":"chargeback"}`, `{"reason":"a","reason":"b"}`, `{"Reason":"x"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst reversalBody
		r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		raw, err := httpserver.DecodeOptionalJSONBody(r, &dst)
		checkOutcome(t, body, err, &dst)
		if err == nil {
			if want := string(body); want != string(raw) && (len(body) != 0 || string(raw) != "{}") {
				t.Fatalf("raw body %q, sent %q", raw, body)
			}
		}
	})
}

// checkOutcome asserts the invariants of one decode of body into dst.
func checkOutcome(t *testing.T, body []byte, err error, dst any) {
	t.Helper()
	if err != nil {
		var ae *apperr.Error
		if !errors.As(err, &ae) || (ae.Kind != apperr.KindValidation) {
			t.Fatalf("%q: refused with %v, want a 400", body, err)
		}
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return // an absent optional body
	}
	if dup := duplicateMember(t, body); dup != "" {
		t.Fatalf("%q: accepted with member %q twice", body, dup)
	}
	// A strict reparse: the body as plain JSON values, member by member,
	// must equal what the decoded value encodes to.
	sent := genericDecode(t, body)
	enc, merr := json.Marshal(dst)
	if merr != nil {
		t.Fatal(merr)
	}
	got := genericDecode(t, enc)
	if path, ok := sameMeaning(sent, got, ""); !ok {
		t.Fatalf("%q: accepted, but %s decoded as something else: %s", body, path, enc)
	}
}

func genericDecode(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: accepted but not JSON: %v", b, err)
	}
	return v
}

// sameMeaning reports whether every member and element of sent is in got
// with the same value (numbers compared exactly), naming the first that
// is not.
func sameMeaning(sent, got any, path string) (string, bool) {
	switch s := sent.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, false
		}
		for k, v := range s {
			gv, ok := g[k]
			if !ok {
				return path + "." + k, false
			}
			if p, ok := sameMeaning(v, gv, path+"."+k); !ok {
				return p, false
			}
		}
		return "", true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(s) {
			return path, false
		}
		for i := range s {
			if p, ok := sameMeaning(s[i], g[i], path+"[]"); !ok {
				return p, false
			}
		}
		return "", true
	case json.Number:
		g, ok := got.(json.Number)
		if !ok {
			return path, false
		}
		a, aok := new(big.Rat).SetString(s.String())
		b, bok := new(big.Rat).SetString(g.String())
		return path, aok && bok && a.Cmp(b) == 0
	default:
		return path, reflect.DeepEqual(sent, got)
	}
}

// duplicateMember returns a member name that appears twice in one object
// of b, or "". It is written apart from the decoder's own check.
func duplicateMember(t *testing.T, b []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	type frame struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			t.Fatalf("%q: accepted but not JSON: %v", b, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.wantKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return k
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, wantKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].obj {
				stack[len(stack)-1].wantKey = true
			}
		}
	}
}
