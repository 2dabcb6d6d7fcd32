package withdraw

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
const Domain = "withdraw"

// Handler serves /v1/withdrawals.
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

// RegisterRoutes adds the withdrawal routes; all require authentication.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodPost, "/v1/withdrawals", h.create)
	movement.RegisterReads[Withdrawal](rt, "/v1/withdrawals", ErrNotFound, h.svc)
}

type createRequest struct {
	Amount            int64  `json:"amount"`
	BankCode          string `json:"bank_code"`
	BankAccountNumber string `json:"bank_account_number"`
	BankAccountName   string `json:"bank_account_name"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	return movement.Create(w, r, h.idem,
		func(in createRequest) (Request, error) {
			return h.svc.Validate(in.Amount, in.BankCode, in.BankAccountNumber, in.BankAccountName)
		},
		func(ctx context.Context, tx pgx.Tx, p authn.Principal, req Request) (any, error) {
			return h.svc.Create(ctx, tx, p, req)
		},
		func(ctx context.Context, _ createRequest, _ *Request, result string) {
			h.svc.metrics.requested(ctx, result)
		})
}
