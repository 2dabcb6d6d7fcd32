package movement

import (
	"context"
	"net/http"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/idempotency"
	"github.com/paygate/paygate/internal/platform/idempotency/idemhttp"
	"github.com/paygate/paygate/internal/platform/pagination"
)

// Service is what a movement domain offers its routes: create under an
// idempotency claim, and read its records as the caller may see them.
type Service[T, In any] interface {
	Create(ctx context.Context, c idempotency.Claim, caller authn.Principal, in In) (idempotency.Response, error)
	List(ctx context.Context, caller authn.Principal, forUser *uuid.UUID, limit int, cursor string) (pagination.Page[T], error)
	Get(ctx context.Context, caller authn.Principal, id uuid.UUID) (T, error)
}

// Reverser is a movement service whose records an administrator reverses
// with a compensating transaction.
type Reverser interface {
	Reverse(ctx context.Context, c idempotency.Claim, caller authn.Principal, id uuid.UUID, reason string) (idempotency.Response, error)
}

// Handler serves one movement collection at base: POST base (create),
// GET base (the caller's records, paginated), GET base/{id}, and, when the
// service is a Reverser, POST base/{id}/reversal. Every route requires
// authentication.
type Handler[T, In any] struct {
	domain, base string
	notFound     error
	svc          Service[T, In]
	auth         authn.Authenticator
	log          *zap.Logger
}

// NewHandler returns the handler of the collection at base; notFound is
// the domain's error for a missing record, which a malformed id answers
// too.
func NewHandler[T, In any](domain, base string, notFound error, svc Service[T, In], auth authn.Authenticator, log *zap.Logger) *Handler[T, In] {
	return &Handler[T, In]{domain: domain, base: base, notFound: notFound, svc: svc, auth: auth, log: log}
}

// RegisterRoutes adds the collection's routes.
func (h *Handler[T, In]) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, h.domain, h.log, h.auth.Require)
	rt.Handle(http.MethodPost, h.base, h.create)
	rt.Handle(http.MethodGet, h.base, h.list)
	rt.Handle(http.MethodGet, h.base+"/{id}", h.get)
	if rv, ok := h.svc.(Reverser); ok {
		rt.Handle(http.MethodPost, h.base+"/{id}/reversal", func(w http.ResponseWriter, r *http.Request) error {
			return h.reverse(w, r, rv)
		})
	}
}

// create serves POST base: it requires an Idempotency-Key, decodes the
// body, and hands the claim to the service, which validates the request
// (a refusal there stores nothing) and books it under the key; the answer,
// 201 or a stored refusal, fresh or replayed, is written as it comes back.
func (h *Handler[T, In]) create(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	key, err := idemhttp.Key(r)
	if err != nil {
		return err
	}
	var in In
	raw, err := httpserver.DecodeJSONBody(r, &in)
	if err != nil {
		return err
	}
	res, err := h.svc.Create(r.Context(), idemhttp.Claim(r, p.UserID, key, raw, http.StatusCreated), p, in)
	if err != nil {
		return err
	}
	idemhttp.Write(w, res)
	return nil
}

type reversalRequest struct {
	Reason string `json:"reason"`
}

// reverse serves POST base/{id}/reversal: admins only (anyone else gets
// 403 before the id is even looked at, so the answer says nothing about
// the record), an Idempotency-Key, an optional {"reason"}; it answers 200
// with the reversed movement, and a malformed id answers notFound.
func (h *Handler[T, In]) reverse(w http.ResponseWriter, r *http.Request, rv Reverser) error {
	p, err := authn.AdminFromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return h.notFound
	}
	key, err := idemhttp.Key(r)
	if err != nil {
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
	res, err := rv.Reverse(r.Context(), idemhttp.Claim(r, p.UserID, key, raw, http.StatusOK), p, id, in.Reason)
	if err != nil {
		return err
	}
	idemhttp.Write(w, res)
	return nil
}

// list serves GET base with cursor pagination and, for admins, an
// optional user_id filter.
func (h *Handler[T, In]) list(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
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
	page, err := h.svc.List(r.Context(), p, forUser, limit, cursor)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, page)
	return nil
}

// get serves GET base/{id}; another user's record, or a malformed id,
// answers notFound.
func (h *Handler[T, In]) get(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return h.notFound
	}
	v, err := h.svc.Get(r.Context(), p, id)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, v)
	return nil
}
