package idemhttp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/idempotency/idemhttp"
)

// TestFingerprintNamesOneRequest: the fingerprint covers the method, the
// concrete path and the body's meaning, not its encoding.
func TestFingerprintNamesOneRequest(t *testing.T) {
	t.Parallel()
	fp := func(method, path, body string) []byte {
		return idemhttp.Fingerprint(httptest.NewRequest(method, path, nil), []byte(body))
	}
	base := fp(http.MethodPost, "/v1/topups/a/reversal", `{"reason":"x","n":1}`)
	if !bytes.Equal(base, fp(http.MethodPost, "/v1/topups/a/reversal", ` { "n" : 1 , "reason" : "x" } `)) {
		t.Error("reordered members or whitespace change the fingerprint")
	}
	for name, other := range map[string][]byte{
		"another resource": fp(http.MethodPost, "/v1/topups/b/reversal", `{"reason":"x","n":1}`),
		"another method":   fp(http.MethodPut, "/v1/topups/a/reversal", `{"reason":"x","n":1}`),
		"another body":     fp(http.MethodPost, "/v1/topups/a/reversal", `{"reason":"y","n":1}`),
	} {
		if bytes.Equal(base, other) {
			t.Errorf("%s: same fingerprint", name)
		}
	}
}

// TestKeyOnAnotherResourceIsRefused: an admin who reverses top-up A with
// a key and then top-up B with the same key gets 422
// IDEMPOTENCY_KEY_REUSED, not A's response replayed, and B is untouched;
// the same request for A again is still replayed. Before, the fingerprint
// covered the route template only, so B's request matched A's.
func TestKeyOnAnotherResourceIsRefused(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t)
	admin, u := e.Admin(t), e.NewUser(t)
	// Only a succeeded (paid) top-up can be reversed.
	a, b := e.Fund(t, u, 40000), e.Fund(t, u, 40000)
	reverse := func(id string) *apptest.Response {
		return e.Post(t, "/v1/topups/"+id+"/reversal", admin.Token, map[string]string{"reason": "chargeback"}, "Idempotency-Key", "k")
	}
	first := reverse(a)
	if first.Status != http.StatusOK || first.Map(t)["id"] != a {
		t.Fatalf("reversal of A: %d %s", first.Status, first.Body)
	}
	if r := reverse(b); r.Status != http.StatusUnprocessableEntity || r.Code() != "IDEMPOTENCY_KEY_REUSED" {
		t.Fatalf("reversal of B with A's key: %d %s (replayed: %q)", r.Status, r.Body, r.Header.Get("Idempotent-Replayed"))
	}
	if r := e.Get(t, "/v1/topups/"+b, u.Token); r.Map(t)["status"] == "reversed" {
		t.Fatalf("B was reversed: %s", r.Body)
	}
	if r := reverse(a); r.Status != http.StatusOK || r.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.Body, first.Body) {
		t.Fatalf("retry of A's reversal: %d %s", r.Status, r.Body)
	}
	// B reversed with a key of its own works.
	if r := e.Post(t, "/v1/topups/"+b+"/reversal", admin.Token, nil, "Idempotency-Key", "k2"); r.Status != http.StatusOK {
		t.Fatalf("reversal of B: %d %s", r.Status, r.Body)
	}
}
