package httpserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// DecodeJSON reads the request body as one JSON object into dst.
//
// It refuses a content type other than application/json (415), a body over
// the server's limit (413), malformed JSON, trailing data and unknown fields
// (400). Refusing unknown fields is what stops mass assignment: a client
// cannot slip a "role" or "balance" member into a request. It also refuses
// (400, naming the member) every body whose meaning would depend on how a
// parser breaks ties: a member given twice, a member name that matches a
// field only when case is ignored, a number out of its field's range, and
// invalid UTF-8; see checkStrict.
func DecodeJSON(r *http.Request, dst any) error {
	_, err := DecodeJSONBody(r, dst)
	return err
}

// DecodeJSONBody is DecodeJSON that also returns the raw body, for callers
// that fingerprint the request (idempotency).
func DecodeJSONBody(r *http.Request, dst any) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, apperr.ErrUnsupportedType
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apperr.ErrTooLarge
		}
		return nil, apperr.ErrMalformedJSON
	}
	return raw, decodeBytes(raw, dst)
}

func decodeBytes(raw []byte, dst any) error {
	if err := checkStrict(raw, reflect.TypeOf(dst)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apperr.ErrMalformedJSON.With("The request body must hold a single JSON object.")
	}
	return nil
}

func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return apperr.ErrTooLarge
	case errors.Is(err, io.EOF):
		return apperr.ErrMalformedJSON.With("The request body is empty.")
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.ErrMalformedJSON
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			return apperr.Validation("The request body must be a JSON object.")
		}
		return apperr.Validation("A field has the wrong type.",
			apperr.FieldError{Field: field, Message: fmt.Sprintf("must be of type %s", ute.Type.String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apperr.Validation("The request has a field that is not accepted.",
			apperr.FieldError{Field: name, Message: "is not an accepted field"})
	default:
		return apperr.ErrMalformedJSON
	}
}

// WriteJSON answers with status and v encoded as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		// Encoding our own response types cannot fail; if it does, it is a
		// programming error worth a 500 rather than a truncated body.
		writeProblem(w, Problem{Type: "https://paygate.dev/problems/INTERNAL", Title: "Internal Server Error", Status: 500, Code: "INTERNAL", Detail: apperr.ErrInternal.Detail})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// DecodeOptionalJSONBody is DecodeJSONBody for endpoints whose body may be
// absent: an empty body counts as {}.
func DecodeOptionalJSONBody(r *http.Request, dst any) ([]byte, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return []byte("{}"), nil
	}
	return DecodeJSONBody(r, dst)
}
