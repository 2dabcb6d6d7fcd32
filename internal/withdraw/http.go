package withdraw

import (
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/authn"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "withdraw"

// NewHandler returns the handler of /v1/withdrawals: create, list and get,
// all behind authentication. Withdrawals are settled by the payout
// processor, not reversed.
func NewHandler(svc *Service, auth authn.Authenticator, log *zap.Logger) *movement.Handler[Withdrawal, CreateRequest] {
	return movement.NewHandler[Withdrawal, CreateRequest](Domain, "/v1/withdrawals", ErrNotFound, svc, auth, log)
}
