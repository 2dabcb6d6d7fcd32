package transfer

import (
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/platform/authn"
)

// Domain is the paygate.domain of this package's spans and metrics.
const Domain = "transfer"

// NewHandler returns the handler of /v1/transfers: create, list, get and
// the admin reversal, all behind authentication.
func NewHandler(svc *Service, auth authn.Authenticator, log *zap.Logger) *movement.Handler[Transfer, CreateRequest] {
	return movement.NewHandler[Transfer, CreateRequest](Domain, "/v1/transfers", ErrNotFound, svc, auth, log)
}
