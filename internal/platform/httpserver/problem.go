package httpserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/logging"
)

// ProblemContentType is the RFC 9457 media type of every error response.
const ProblemContentType = "application/problem+json"

// Problem is the RFC 9457 problem details body, with paygate's stable code
// and optional per-field errors as extension members.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail,omitempty"`
	Instance string              `json:"instance,omitempty"`
	Code     string              `json:"code"`
	Errors   []apperr.FieldError `json:"errors,omitempty"`
	// RequestID lets a caller quote the request to support.
	RequestID string `json:"request_id,omitempty"`
}

// statusOf is the single mapping from error kinds to HTTP statuses.
func statusOf(k apperr.Kind) int {
	switch k {
	case apperr.KindValidation:
		return http.StatusBadRequest
	case apperr.KindUnauthenticated:
		return http.StatusUnauthorized
	case apperr.KindForbidden:
		return http.StatusForbidden
	case apperr.KindNotFound:
		return http.StatusNotFound
	case apperr.KindConflict:
		return http.StatusConflict
	case apperr.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case apperr.KindUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case apperr.KindBusinessRule:
		return http.StatusUnprocessableEntity
	case apperr.KindRateLimited:
		return http.StatusTooManyRequests
	case apperr.KindMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case apperr.KindUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ProblemFor converts err into the problem body and status a client sees.
// Errors that are not *apperr.Error are faults: the client gets a generic 500
// and the cause stays in the logs.
func ProblemFor(r *http.Request, err error) Problem {
	err = apperr.Translate(err)
	var ae *apperr.Error
	if !errors.As(err, &ae) {
		ae = apperr.ErrInternal
	}
	status := statusOf(ae.Kind)
	detail := ae.Detail
	if ae.Kind == apperr.KindInternal {
		detail = apperr.ErrInternal.Detail
	}
	return Problem{
		Type:      "https://paygate.dev/problems/" + ae.Code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		Instance:  r.URL.Path,
		Code:      ae.Code,
		Errors:    ae.Fields,
		RequestID: RequestIDFrom(r.Context()),
	}
}

// WriteError answers the request with the problem details for err and logs
// faults. It is the only place where errors become HTTP responses.
func WriteError(w http.ResponseWriter, r *http.Request, log *zap.Logger, err error) {
	err = apperr.Translate(err)
	p := ProblemFor(r, err)
	var ae *apperr.Error
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		secs := int(ae.RetryAfter.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	if p.Status >= 500 && log != nil {
		logging.WithTrace(r.Context(), log).Error("request failed",
			zap.String("request_id", p.RequestID), zap.String("code", p.Code), zap.Error(err))
	}
	writeProblem(w, p)
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
