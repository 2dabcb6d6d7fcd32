package users

import (
	"net/http"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "user"

// Handler serves /v1/users.
type Handler struct {
	svc     *Service
	creator AccountCreator
	auth    authn.Authenticator
	log     *zap.Logger
}

// NewHandler returns the users HTTP handler.
func NewHandler(svc *Service, creator AccountCreator, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{svc: svc, creator: creator, auth: auth, log: log}
}

// RegisterRoutes adds the users routes; every one requires authentication.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodGet, "/v1/users", h.list)
	rt.Handle(http.MethodPost, "/v1/users", h.create)
	rt.Handle(http.MethodGet, "/v1/users/{id}", h.get)
	rt.Handle(http.MethodPatch, "/v1/users/{id}", h.patch)
	rt.Handle(http.MethodDelete, "/v1/users/{id}", h.deactivate)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	page, err := h.svc.List(r.Context(), p, Filter{Email: q.Get("email"), Query: q.Get("q")}, limit, cursor)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, page)
	return nil
}

// createRequest is the body of POST /v1/users (administrators).
type createRequest struct {
	Firstname string      `json:"firstname"`
	Lastname  string      `json:"lastname"`
	Email     string      `json:"email"`
	Password  string      `json:"password"`
	Role      *authn.Role `json:"role"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	var req createRequest
	if err := httpserver.DecodeJSON(r, &req); err != nil {
		return err
	}
	role := authn.RoleUser
	if req.Role != nil {
		if !req.Role.Valid() {
			return apperr.Validation("The request has invalid fields.", apperr.FieldError{Field: "role", Message: "must be user or admin"})
		}
		role = *req.Role
	}
	u, err := h.creator.CreateAccount(r.Context(), NewAccount{
		Firstname: req.Firstname, Lastname: req.Lastname, Email: req.Email, Password: req.Password, Role: role,
	})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/users/"+u.ID.String())
	httpserver.WriteJSON(w, http.StatusCreated, u)
	return nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return ErrNotFound
	}
	u, err := h.svc.Get(r.Context(), p, id)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, u)
	return nil
}

// selfPatch is what a user may change about themselves. It has no role or
// active member: DecodeJSON refuses unknown members, which is what stops a
// user granting themselves a role (mass assignment).
type selfPatch struct {
	Firstname *string `json:"firstname"`
	Lastname  *string `json:"lastname"`
	Email     *string `json:"email"`
}

// adminPatch is what an administrator may change.
type adminPatch struct {
	Firstname *string     `json:"firstname"`
	Lastname  *string     `json:"lastname"`
	Email     *string     `json:"email"`
	Role      *authn.Role `json:"role"`
	Active    *bool       `json:"active"`
}

func (h *Handler) patch(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil || !p.CanAccessUser(id) {
		return ErrNotFound
	}
	var ap adminPatch
	if p.IsAdmin() {
		err = httpserver.DecodeJSON(r, &ap)
	} else {
		var sp selfPatch
		err = httpserver.DecodeJSON(r, &sp)
		ap = adminPatch{Firstname: sp.Firstname, Lastname: sp.Lastname, Email: sp.Email}
	}
	if err != nil {
		return err
	}
	patch, err := validatePatch(ap)
	if err != nil {
		return err
	}
	u, err := h.svc.Update(r.Context(), p, id, patch)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, u)
	return nil
}

func validatePatch(ap adminPatch) (Patch, error) {
	var fields []apperr.FieldError
	var p Patch
	if ap.Firstname != nil {
		v, fe := ValidateName("firstname", *ap.Firstname)
		if fe != nil {
			fields = append(fields, *fe)
		}
		p.Firstname = &v
	}
	if ap.Lastname != nil {
		v, fe := ValidateName("lastname", *ap.Lastname)
		if fe != nil {
			fields = append(fields, *fe)
		}
		p.Lastname = &v
	}
	if ap.Email != nil {
		v, fe := ValidateEmail(*ap.Email)
		if fe != nil {
			fields = append(fields, *fe)
		}
		p.Email = &v
	}
	if ap.Role != nil {
		if !ap.Role.Valid() {
			fields = append(fields, apperr.FieldError{Field: "role", Message: "must be user or admin"})
		}
		p.Role = ap.Role
	}
	p.Active = ap.Active
	if len(fields) > 0 {
		return Patch{}, apperr.Validation("The request has invalid fields.", fields...)
	}
	return p, nil
}

func (h *Handler) deactivate(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	id, err := httpserver.PathUUID(r, "id")
	if err != nil {
		return ErrNotFound
	}
	if err := h.svc.Deactivate(r.Context(), p, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
