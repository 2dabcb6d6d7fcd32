package movement

import (
	"context"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/pagination"
)

// Create serves POST of a new movement: it requires an Idempotency-Key,
// decodes the body into In, validates it into Req (a refusal here stores
// nothing), then runs op under the key and answers 201 with its result.
// record is told the outcome of every attempt that ran (not of replays),
// with req nil when validation refused the request.
func Create[In, Req any](w http.ResponseWriter, r *http.Request, idem *idempotency.Store,
	validate func(In) (Req, error),
	op func(ctx context.Context, tx pgx.Tx, p authn.Principal, req Req) (any, error),
	record func(ctx context.Context, in In, req *Req, result string),
) error {
	p, _ := authn.FromContext(r.Context())
	if _, err := idempotency.Key(r); err != nil {
		return err
	}
	var in In
	raw, err := httpserver.DecodeJSONBody(r, &in)
	if err != nil {
		return err
	}
	req, err := validate(in)
	if err != nil {
		record(r.Context(), in, nil, "rejected")
		return err
	}
	var outcome error
	res, err := idem.Serve(w, r, p.UserID, raw, func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		out, err := op(ctx, tx, p, req)
		outcome = err
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, out, nil
	})
	if err != nil {
		return err
	}
	if !res.Replayed {
		record(r.Context(), in, &req, Result(outcome))
	}
	return nil
}

type reversalRequest struct {
	Reason string `json:"reason"`
}

// reverse serves POST /{id}/reversal: admins only (anyone else gets 403
// before the id is even looked at, so the answer says nothing about the
// record), an Idempotency-Key, an optional {"reason"}; it answers 200 with
// the reversed movement, and a malformed id answers notFound.
func reverse(w http.ResponseWriter, r *http.Request, idem *idempotency.Store, notFound error,
	reverse func(ctx context.Context, tx pgx.Tx, p authn.Principal, id uuid.UUID, reason string) (any, error),
) error {
	p, _ := authn.FromContext(r.Context())
	if !p.IsAdmin() {
		return apperr.ErrForbidden
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return notFound
	}
	if _, err := idempotency.Key(r); err != nil {
		return err
	}
	var in reversalRequest
	raw, err := httpserver.DecodeOptionalJSONBody(r, &in)
	if err != nil {
		return err
	}
	if len(in.Reason) > 500 {
		return apperr.Validation("reason is too long.", apperr.FieldError{Field: "reason", Message: "must be at most 500 characters"})
	}
	_, err = idem.Serve(w, r, p.UserID, raw, func(ctx context.Context, tx pgx.Tx) (int, any, error) {
		out, err := reverse(ctx, tx, p, id, in.Reason)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, out, nil
	})
	return err
}

// list serves GET of a movement collection with cursor pagination and,
// for admins, an optional user_id filter.
func list[T any](w http.ResponseWriter, r *http.Request,
	list func(ctx context.Context, p authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[T], error),
) error {
	p, _ := authn.FromContext(r.Context())
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	var forUser *uuid.UUID
	if s := r.URL.Query().Get("user_id"); s != "" {
		id, err := uuid.Parse(s)
		if err != nil {
			return apperr.Validation("user_id must be a user id.", apperr.FieldError{Field: "user_id", Message: "must be a UUID"})
		}
		forUser = &id
	}
	page, err := list(r.Context(), p, forUser, limit, cursor)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, page)
	return nil
}

// get serves GET of one movement; a malformed id is notFound.
func get[T any](w http.ResponseWriter, r *http.Request, notFound error,
	get func(ctx context.Context, p authn.Principal, id uuid.UUID) (T, error),
) error {
	p, _ := authn.FromContext(r.Context())
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return notFound
	}
	v, err := get(r.Context(), p, id)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, v)
	return nil
}

// Reader is what a movement service offers to read its records; the
// caller's principal decides what it may see.
type Reader[T any] interface {
	List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[T], error)
	Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (T, error)
}

// Reverser is a movement service that books compensating transactions.
type Reverser[T any] interface {
	Reverse(ctx context.Context, tx pgx.Tx, caller authn.Principal, id uuid.UUID, reason string) (T, error)
}

// RegisterReads adds GET base (the caller's records, paginated) and
// GET base/{id} (one record; another user's or a malformed id answers
// notFound).
func RegisterReads[T any](rt httpserver.Router, base string, notFound error, svc Reader[T]) {
	rt.Handle(http.MethodGet, base, func(w http.ResponseWriter, r *http.Request) error {
		return list(w, r, svc.List)
	})
	rt.Handle(http.MethodGet, base+"/{id}", func(w http.ResponseWriter, r *http.Request) error {
		return get(w, r, notFound, svc.Get)
	})
}

// RegisterReversal adds POST base/{id}/reversal, served by reverse.
func RegisterReversal[T any](rt httpserver.Router, base string, idem *idempotency.Store, notFound error, svc Reverser[T]) {
	rt.Handle(http.MethodPost, base+"/{id}/reversal", func(w http.ResponseWriter, r *http.Request) error {
		return reverse(w, r, idem, notFound, func(ctx context.Context, tx pgx.Tx, p authn.Principal, id uuid.UUID, reason string) (any, error) {
			return svc.Reverse(ctx, tx, p, id, reason)
		})
	})
}
