package apidocs

import "go.uber.org/zap"

// NewHandlerFor returns a handler for the given spec and bundle (nil: not
// built), for tests.
func NewHandlerFor(log *zap.Logger, spec, bundle []byte) *Handler {
	return newHandler(log, spec, bundle)
}
