package deadletters

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/pagination"
)

// Domain is the paygate.domain of the dead-letter endpoints: they operate
// the platform's consumers, not one business domain.
const Domain = "platform"

// Handler serves the admin dead-letter endpoints.
type Handler struct {
	svc  *Service
	auth authn.Authenticator
	log  *zap.Logger
}

// NewHandler returns the handler.
func NewHandler(svc *Service, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{svc: svc, auth: auth, log: log}
}

// RegisterRoutes adds the admin routes.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodGet, "/v1/admin/dead-letters", h.list)
	rt.Handle(http.MethodPost, "/v1/admin/dead-letters/{consumer}/{partition}/{offset}/replay", h.replay)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	var after *Position
	if cursor != "" {
		if after, err = DecodePosition(cursor); err != nil {
			return pagination.ErrBadCursor
		}
	}
	consumer := r.URL.Query().Get("consumer")
	if consumer != "" && !knownConsumer(h.svc, consumer) {
		return apperr.Validation("consumer is not a consumer with a dead-letter topic.",
			apperr.FieldError{Field: "consumer", Message: "must be one of " + strings.Join(h.svc.Consumers(), ", ")})
	}
	letters, next, err := h.svc.List(r.Context(), consumer, limit, after)
	if err != nil {
		return err
	}
	page := pagination.Page[DeadLetter]{Data: letters}
	if page.Data == nil {
		page.Data = []DeadLetter{}
	}
	if next != nil {
		c := next.Encode()
		page.NextCursor = &c
	}
	httpserver.WriteJSON(w, http.StatusOK, page)
	return nil
}

func knownConsumer(s *Service, name string) bool {
	_, ok := s.queues[name]
	return ok
}

func (h *Handler) replay(w http.ResponseWriter, r *http.Request) error {
	admin, err := authn.AdminFromRequest(r)
	if err != nil {
		return err
	}
	vars := mux.Vars(r)
	partition, perr := strconv.ParseInt(vars["partition"], 10, 32)
	offset, oerr := strconv.ParseInt(vars["offset"], 10, 64)
	if perr != nil || oerr != nil || partition < 0 || offset < 0 {
		return ErrNoDeadLetter
	}
	d, err := h.svc.Replay(r.Context(), vars["consumer"], int32(partition), offset, admin.UserID)
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, d)
	return nil
}
