// Package pagination encodes the opaque cursors of list endpoints. Lists
// are ordered newest first by (created_at, id); a cursor is the position
// of the last item of the previous page, so pages neither skip nor repeat
// items inserted meanwhile (keyset pagination).
package pagination

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/paygate/paygate/internal/platform/apperr"
)

// ErrBadCursor is returned for a cursor this package did not make.
var ErrBadCursor = apperr.New(apperr.KindValidation, "INVALID_CURSOR", "The cursor is not valid.")

// Position is a place in a (created_at, id) ordering.
type Position struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// Encode returns the cursor of p.
func Encode(p Position) string {
	return base64.RawURLEncoding.EncodeToString([]byte(p.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + p.ID.String()))
}

// Decode parses a cursor; "" is the first page (nil position).
func Decode(c string) (*Position, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, ErrBadCursor
	}
	ts, idStr, ok := strings.Cut(string(b), "|")
	if !ok {
		return nil, ErrBadCursor
	}
	t, err1 := time.Parse(time.RFC3339Nano, ts)
	id, err2 := uuid.Parse(idStr)
	if err := errors.Join(err1, err2); err != nil {
		return nil, ErrBadCursor
	}
	return &Position{CreatedAt: t, ID: id}, nil
}

// Page is a page of a list: at most limit items and the cursor of the next
// page, nil on the last.
type Page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// Cut builds a page from up to limit+1 items fetched in order: the extra
// item, if present, proves there is a next page.
func Cut[T any](items []T, limit int, pos func(T) Position) Page[T] {
	p := Page[T]{Data: items}
	if len(items) > limit {
		p.Data = items[:limit]
		c := Encode(pos(p.Data[limit-1]))
		p.NextCursor = &c
	}
	if p.Data == nil {
		p.Data = []T{}
	}
	return p
}

// After returns the SQL arguments of a position: (nil, nil) for the first
// page. Queries use "($1::timestamptz IS NULL OR (created_at, id) < ($1, $2))".
func After(p *Position) (any, any) {
	if p == nil {
		return nil, nil
	}
	return p.CreatedAt, p.ID
}

// List returns the page of a keyset listing after cursor: fetch reads up
// to n items that come after the position (nil: from the newest), newest
// first by (created_at, id); pos gives an item's position. A cursor this
// package did not make is ErrBadCursor.
func List[T any](cursor string, limit int, fetch func(after *Position, n int) ([]T, error), pos func(T) Position) (Page[T], error) {
	p, err := Decode(cursor)
	if err != nil {
		return Page[T]{}, err
	}
	items, err := fetch(p, limit+1)
	if err != nil {
		return Page[T]{}, err
	}
	return Cut(items, limit, pos), nil
}
