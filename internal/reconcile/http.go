package reconcile

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/provider"
)

// Domain is the paygate.domain of the reconciliation endpoint: the books'
// domain, whose dashboard carries the reconciliation row.
const Domain = "saldo"

// DefaultWindow is the period reconciled when none is given: the last
// day.
const DefaultWindow = 24 * time.Hour

// ErrProviderUnavailable means the provider did not answer the list of
// its settled transactions.
var ErrProviderUnavailable = apperr.New(apperr.KindUnavailable, "PROVIDER_UNAVAILABLE", "The payment provider did not answer; try again later.")

// Runner reconciles a period.
type Runner interface {
	Run(ctx context.Context, from, to time.Time) (Report, error)
}

// Handler serves GET /v1/admin/reconciliation.
type Handler struct {
	rec  Runner
	auth authn.Authenticator
	log  *zap.Logger
}

// NewHandler returns the handler.
func NewHandler(rec Runner, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{rec: rec, auth: auth, log: log}
}

// RegisterRoutes adds the admin reconciliation route.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	rt := httpserver.NewRouter(r, Domain, h.log, h.auth.Require)
	rt.Handle(http.MethodGet, "/v1/admin/reconciliation", h.report)
}

// report answers GET /v1/admin/reconciliation?from=…&to=…: the
// mismatches of the period, administrators only.
func (h *Handler) report(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	q := r.URL.Query()
	from, to, err := Window(q.Get("from"), q.Get("to"), time.Now())
	if err != nil {
		return err
	}
	rep, err := h.rec.Run(r.Context(), from, to)
	if errors.Is(err, provider.ErrUnavailable) {
		return ErrProviderUnavailable.Wrap(err)
	}
	if err != nil {
		return err
	}
	httpserver.WriteJSON(w, http.StatusOK, rep)
	return nil
}

// Window reads a period given as RFC 3339 times, either of which may be
// empty: to defaults to now, from to DefaultWindow before to. It refuses
// a malformed time, a period that does not end after it starts and one
// longer than MaxWindow, with a validation error naming the field.
func Window(fromS, toS string, now time.Time) (from, to time.Time, err error) {
	parse := func(field, s string, def time.Time) (time.Time, *apperr.FieldError) {
		if s == "" {
			return def, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, &apperr.FieldError{Field: field, Message: "must be an RFC 3339 time, e.g. 2025-01-31T00:00:00Z"}
		}
		return t.UTC(), nil
	}
	var fields []apperr.FieldError
	to, fe := parse("to", toS, now.UTC())
	if fe != nil {
		fields = append(fields, *fe)
	}
	from, fe = parse("from", fromS, to.Add(-DefaultWindow))
	if fe != nil {
		fields = append([]apperr.FieldError{*fe}, fields...)
	}
	if len(fields) > 0 {
		return time.Time{}, time.Time{}, apperr.Validation("from and to must be RFC 3339 times.", fields...)
	}
	switch {
	case !from.Before(to):
		return time.Time{}, time.Time{}, apperr.Validation("The period must end after it starts.",
			apperr.FieldError{Field: "to", Message: "must be after from"})
	case to.Sub(from) > MaxWindow:
		return time.Time{}, time.Time{}, apperr.Validation("The period may last at most 31 days.",
			apperr.FieldError{Field: "to", Message: "must be at most 31 days after from"})
	}
	return from, to, nil
}
