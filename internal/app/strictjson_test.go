package app_test

import (
	"net/http"
	"testing"

	"github.com/paygate/paygate/internal/apptest"
)

// TestAmbiguousBodiesAreRefusedOverHTTP: a money request whose meaning
// depends on the parser's tie-breaking (the amount given twice, or under
// another case) is refused with 400 naming the member, and moves nothing;
// before, {"amount":10000,"amount":50000} transferred 50,000.
func TestAmbiguousBodiesAreRefusedOverHTTP(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	a, b := e.NewUser(t), e.NewUser(t)
	for i, body := range []struct{ json, field string }{
		{`{"to":"` + b.AccountNumber + `","amount":10000,"amount":50000}`, "amount"},
		{`{"to":"` + b.AccountNumber + `","AMOUNT":50000}`, "AMOUNT"},
		{`{"to":"` + b.AccountNumber + `","amount":1e30}`, "amount"},
		{`{"to":"` + b.AccountNumber + `","amount":10000}{"amount":50000}`, ""},
	} {
		r := e.Post(t, "/v1/transfers", a.Token, body.json, "Idempotency-Key", "strict-"+string(rune('a'+i)))
		if r.Status != http.StatusBadRequest {
			t.Fatalf("%s: %d %s", body.json, r.Status, r.Body)
		}
		code, fields := r.Code(), r.ProblemFields()
		if body.field == "" {
			if code != "MALFORMED_JSON" {
				t.Errorf("%s: %s, want MALFORMED_JSON", body.json, r.Body)
			}
			continue
		}
		if code != "VALIDATION_FAILED" || len(fields) != 1 || fields[0] != body.field {
			t.Errorf("%s: %s, want VALIDATION_FAILED naming %s", body.json, r.Body, body.field)
		}
	}
	r := e.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/topups", Token: a.Token,
		Body: `{"amount":10000,"method":"qris","method":"ovo"}`, Header: map[string]string{"Idempotency-Key": "strict-topup"}})
	if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" {
		t.Fatalf("duplicate method: %d %s", r.Status, r.Body)
	}
	// A NUL character, which PostgreSQL cannot store, used to fail the
	// top-up with a 500 deep in its transaction.
	r = e.Do(t, apptest.Request{Method: http.MethodPost, Path: "/v1/topups", Token: a.Token,
		Body: `{"amount":10000,"method":"ovo","reference":"a\u0000b"}`, Header: map[string]string{"Idempotency-Key": "strict-nul"}})
	if r.Status != http.StatusBadRequest || r.Code() != "VALIDATION_FAILED" || len(r.ProblemFields()) != 1 || r.ProblemFields()[0] != "reference" {
		t.Fatalf("NUL in reference: %d %s", r.Status, r.Body)
	}
	if list := e.Get(t, "/v1/topups", a.Token); len(list.Map(t)["data"].([]any)) != 0 {
		t.Fatalf("a refused top-up was stored: %s", list.Body)
	}
}
