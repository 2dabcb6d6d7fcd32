package transfer

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/idempotency"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "transfer"

// Handler serves /v1/transfers.
type Handler struct {
	svc  *Service
	idem *idempotency.Store
	auth authn.Authenticator
	log  *zap.Logger
}

// NewHandler returns the handler.
func NewHandler(svc *Service, idem *idempotency.Store, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{svc: svc, idem: idem, auth: auth, log: log}
}

// RegisterRoutes adds the transfer routes; all require authentication.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodPost, "/v1/transfers", h.create)
	movement.RegisterReads[Transfer](rt, "/v1/transfers", ErrNotFound, h.svc)
	movement.RegisterReversal[Transfer](rt, "/v1/transfers", h.idem, ErrNotFound, h.svc)
}

type createRequest struct {
	To     string `json:"to"`
	Amount int64  `json:"amount"`
	Note   string `json:"note"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	return movement.Create(w, r, h.idem,
		func(in createRequest) (Request, error) { return h.svc.Validate(in.To, in.Amount, in.Note) },
		func(ctx context.Context, tx pgx.Tx, p authn.Principal, req Request) (any, error) {
			return h.svc.Create(ctx, tx, p, req)
		},
		func(ctx context.Context, _ createRequest, req *Request, result string) {
			var amount int64
			if req != nil {
				amount = req.Amount
			}
			h.svc.metrics.record(ctx, result, amount)
		})
}
