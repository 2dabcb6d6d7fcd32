package topup

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
const Domain = "topup"

// Handler serves /v1/topups.
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

// RegisterRoutes adds the top-up routes; all require authentication.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodPost, "/v1/topups", h.create)
	movement.RegisterReads[TopUp](rt, "/v1/topups", ErrNotFound, h.svc)
	movement.RegisterReversal[TopUp](rt, "/v1/topups", h.idem, ErrNotFound, h.svc)
}

type createRequest struct {
	Amount    int64  `json:"amount"`
	Method    string `json:"method"`
	Reference string `json:"reference"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	return movement.Create(w, r, h.idem,
		func(in createRequest) (Request, error) { return h.svc.Validate(in.Amount, in.Method, in.Reference) },
		func(ctx context.Context, tx pgx.Tx, p authn.Principal, req Request) (any, error) {
			return h.svc.Create(ctx, tx, p, req)
		},
		func(ctx context.Context, in createRequest, req *Request, result string) {
			method, ok := CanonicalMethod(in.Method)
			if !ok {
				method = "unknown" // keeps the label bounded
			}
			var amount int64
			if req != nil {
				amount = req.Amount
			}
			h.svc.metrics.record(ctx, method, result, amount)
		})
}
