package httpserver

import (
	"net/http"
	"strconv"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// Page size bounds of every list endpoint.
const (
	DefaultPageLimit = 20
	MaxPageLimit     = 100
)

// PageParams reads the cursor pagination parameters: limit (1 to 100,
// default 20) and the opaque cursor.
func PageParams(r *http.Request) (limit int, cursor string, err error) {
	limit = DefaultPageLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, convErr := strconv.Atoi(s)
		if convErr != nil || n < 1 || n > MaxPageLimit {
			return 0, "", apperr.Validation("limit must be an integer from 1 to 100.",
				apperr.FieldError{Field: "limit", Message: "must be an integer from 1 to 100"})
		}
		limit = n
	}
	return limit, r.URL.Query().Get("cursor"), nil
}

// PathUUID reads the path variable name as a UUID. A malformed id answers
// 404 like an unknown one: ids are opaque to clients.
func PathUUID(r *http.Request, name string) (uuid.UUID, error) {
	id, err := uuid.Parse(mux.Vars(r)[name])
	if err != nil {
		return uuid.Nil, apperr.ErrNotFound
	}
	return id, nil
}
