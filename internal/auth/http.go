package auth

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/clientip"
	"github.com/paygate/paygate/internal/platform/httpserver"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "auth"

// Handler serves /v1/auth and implements authn.Authenticator.
type Handler struct {
	svc *Service
	log *zap.Logger
	// ips finds the client IP that throttles count against.
	ips *clientip.Resolver
}

// NewHandler returns the auth HTTP handler.
func NewHandler(svc *Service, log *zap.Logger, ips *clientip.Resolver) *Handler {
	return &Handler{svc: svc, log: log, ips: ips}
}

// Require verifies the bearer token of every request before next runs and
// puts the caller in the request context. Failures answer 401 with a
// WWW-Authenticate challenge.
func (h *Handler) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paygate"`)
			httpserver.WriteError(w, r, h.log, apperr.ErrUnauthenticated)
			return
		}
		p, err := h.svc.Authenticate(r.Context(), raw)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="paygate", error="invalid_token"`)
			httpserver.WriteError(w, r, h.log, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(authn.WithPrincipal(r.Context(), p)))
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// RegisterRoutes adds the /v1/auth routes. Register, login and refresh are
// public; the rest require a valid access token.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	public := httpserver.NewRouter(r, Domain, h.log)
	private := httpserver.NewRouter(r, Domain, h.log, h.Require)
	public.Handle(http.MethodPost, "/v1/auth/register", h.register)
	public.Handle(http.MethodPost, "/v1/auth/login", h.login)
	public.Handle(http.MethodPost, "/v1/auth/refresh", h.refresh)
	private.Handle(http.MethodPost, "/v1/auth/logout", h.logout)
	private.Handle(http.MethodGet, "/v1/auth/me", h.me)
	private.Handle(http.MethodPost, "/v1/auth/password", h.changePassword)
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) error {
	var in RegisterInput
	if err := httpserver.DecodeJSON(r, &in); err != nil {
		return err
	}
	u, err := h.svc.Register(r.Context(), in, h.ips.IP(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/users/"+u.ID.String())
	httpserver.WriteJSON(w, http.StatusCreated, u)
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	var in loginRequest
	if err := httpserver.DecodeJSON(r, &in); err != nil {
		return err
	}
	var missing []apperr.FieldError
	if in.Email == "" {
		missing = append(missing, apperr.FieldError{Field: "email", Message: "is required"})
	}
	if in.Password == "" {
		missing = append(missing, apperr.FieldError{Field: "password", Message: "is required"})
	}
	if len(missing) > 0 {
		return apperr.Validation("email and password are required.", missing...)
	}
	pair, err := h.svc.Login(r.Context(), in.Email, in.Password, h.ips.IP(r))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpserver.WriteJSON(w, http.StatusOK, pair)
	return nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h *Handler) refresh(w http.ResponseWriter, r *http.Request) error {
	var in refreshRequest
	if err := httpserver.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apperr.Validation("refresh_token is required.", apperr.FieldError{Field: "refresh_token", Message: "is required"})
	}
	pair, err := h.svc.Refresh(r.Context(), in.RefreshToken)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	httpserver.WriteJSON(w, http.StatusOK, pair)
	return nil
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	var in refreshRequest
	if err := httpserver.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apperr.Validation("refresh_token is required.", apperr.FieldError{Field: "refresh_token", Message: "is required"})
	}
	if err := h.svc.Logout(r.Context(), p, in.RefreshToken); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) me(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	u, err := h.svc.Me(r.Context(), p)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, u)
	return nil
}

type passwordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request) error {
	p, err := authn.FromRequest(r)
	if err != nil {
		return err
	}
	var in passwordRequest
	if err := httpserver.DecodeJSON(r, &in); err != nil {
		return err
	}
	if err := h.svc.ChangePassword(r.Context(), p, in.CurrentPassword, in.NewPassword, h.ips.IP(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
