// Package idemhttp is the HTTP surface of Idempotency-Key: it reads the
// key off a request, fingerprints the request, and writes a stored or
// fresh response. The transactional part, claiming the key, running the
// operation and storing its result, is package idempotency's; a money
// handler reads the claim here, hands it to its service, which runs under
// it, and writes what comes back here.
package idemhttp

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/http"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/idempotency"
)

// Header is the request header carrying the key.
const Header = "Idempotency-Key"

// ReplayedHeader is set on responses replayed from a stored key.
const ReplayedHeader = "Idempotent-Replayed"

// MaxKeyLength is the longest accepted key.
const MaxKeyLength = 255

// Errors of reading the key.
var (
	ErrKeyRequired = apperr.New(apperr.KindValidation, "IDEMPOTENCY_KEY_REQUIRED", "This endpoint requires an Idempotency-Key header (up to 255 characters).")
	ErrKeyInvalid  = apperr.New(apperr.KindValidation, "IDEMPOTENCY_KEY_INVALID", "The Idempotency-Key header must be 1 to 255 characters.")
)

// Key returns the request's Idempotency-Key: ErrKeyRequired when there is
// none, ErrKeyInvalid when it is longer than MaxKeyLength.
func Key(r *http.Request) (string, error) {
	k := r.Header.Get(Header)
	switch {
	case k == "":
		return "", ErrKeyRequired
	case len(k) > MaxKeyLength:
		return "", ErrKeyInvalid
	}
	return k, nil
}

// Fingerprint identifies a request: the method, the concrete path (with
// its ids: /v1/topups/<id>/reversal, not the route template, so that a key
// names one resource) and the canonical form of the JSON body (object
// members sorted, numbers kept exact), so that a retry re-encoded by
// another client library still matches. The same key sent for another
// resource therefore answers IDEMPOTENCY_KEY_REUSED instead of replaying
// the first resource's response.
func Fingerprint(r *http.Request, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err == nil {
		if canon, err := json.Marshal(v); err == nil {
			body = canon
		}
	}
	h.Write(body)
	return h.Sum(nil)
}

// Claim returns the claim of r under key for owner: body is the raw
// request body, already decoded by the caller; status is the status a
// success is answered and stored with. A client error is stored as the
// problem document r would get.
func Claim(r *http.Request, owner uuid.UUID, key string, body []byte, status int) idempotency.Claim {
	return idempotency.Claim{Owner: owner, Key: key, Fingerprint: Fingerprint(r, body), Status: status,
		Refusal: func(err error) (int, []byte) {
			p := httpserver.ProblemFor(r, err)
			b, _ := json.Marshal(p)
			return p.Status, b
		}}
}

// Write writes a response, fresh or replayed.
func Write(w http.ResponseWriter, res idempotency.Response) {
	ct := "application/json"
	if res.Status >= 400 {
		ct = httpserver.ProblemContentType
	}
	w.Header().Set("Content-Type", ct)
	if res.Replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
}
