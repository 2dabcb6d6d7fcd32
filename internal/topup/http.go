package topup

import (
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/authn"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "topup"

// NewHandler returns the handler of /v1/topups: create, list, get and the
// admin reversal, all behind authentication.
func NewHandler(svc *Service, auth authn.Authenticator, log *zap.Logger) *movement.Handler[TopUp, CreateRequest] {
	return movement.NewHandler[TopUp, CreateRequest](Domain, "/v1/topups", ErrNotFound, svc, auth, log)
}
