package callbacks

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/platform/apperr"
	"github.com/paygate/paygate/internal/platform/authn"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/logging"
	"github.com/paygate/paygate/internal/provider"
)

// The callbacks belong to the flows they complete: payment callbacks to
// the top-up domain and payout callbacks to the withdrawal domain, whose
// dashboards show them (paygate.domain of their spans and HTTP metrics).
// The admin list is with the top-ups, where most callbacks come from.
const (
	paymentsDomain = "topup"
	payoutsDomain  = "withdraw"
)

// Errors of the callback endpoints.
var (
	ErrUnauthenticated = apperr.New(apperr.KindUnauthenticated, "CALLBACK_UNAUTHENTICATED", "The callback's token or signature does not verify.")
	ErrMalformed       = apperr.New(apperr.KindValidation, "CALLBACK_MALFORMED", "The callback body is not a callback paygate understands.")
	ErrNotProcessed    = apperr.New(apperr.KindUnavailable, "CALLBACK_NOT_PROCESSED", "The callback was stored but not processed; deliver it again.")
)

// ErrBusy is ErrNotProcessed for a callback refused by the admission
// limit, with a Retry-After.
var ErrBusy = func() *apperr.Error {
	e := ErrNotProcessed.With("Too many callbacks are being processed; deliver this one again.")
	e.RetryAfter = busyRetryAfter
	return e
}()

// processBudget bounds the processing of one callback: the provider
// counts a delivery without an answer within its timeout (30 s at
// Xendit) as failed, and paygate answers within a second, processed or
// not (a callback not processed in time answers 503 and is delivered
// again).
const processBudget = 900 * time.Millisecond

// busyRetryAfter is the Retry-After of a callback refused by the
// admission limit.
const busyRetryAfter = time.Second

// Handler serves the callback endpoints and the admin list.
type Handler struct {
	// slots admits at most cap(slots) callbacks into processing at once.
	// A provider redelivers what it could not deliver, and a backlog of
	// redeliveries (after an outage, or a burst of payments overtaking
	// their own top-ups) must not take the pool's connections from the
	// clients' requests, nor pile up waiting for them: an authenticated
	// callback over the limit is answered 503 at once, before anything is
	// stored, and delivered again later. That keeps the load the callbacks put on
	// the database bounded whatever the provider's retry rate.
	slots    chan struct{}
	name     provider.Name
	verifier provider.CallbackVerifier
	inbox    *Inbox
	pool     *pgxpool.Pool
	auth     authn.Authenticator
	log      *zap.Logger
}

// NewHandler returns the handler of the callbacks of the provider named
// name, verified by v.
func NewHandler(name provider.Name, v provider.CallbackVerifier, in *Inbox, pool *pgxpool.Pool, auth authn.Authenticator, log *zap.Logger) *Handler {
	return &Handler{name: name, verifier: v, inbox: in, pool: pool, auth: auth, log: log,
		slots: make(chan struct{}, admitted(pool))}
}

// admitted is how many callbacks may be processed at once: a quarter of
// the pool's connections, at least one. Processing a callback takes one
// connection (two for a moment: the verbatim copy is stored outside the
// transaction), so the clients keep at least half the pool.
func admitted(pool *pgxpool.Pool) int {
	if pool == nil {
		return 1
	}
	return max(1, int(pool.Config().MaxConns)/4)
}

// RegisterRoutes adds the callback routes (authenticated by the
// provider's scheme, never by a user token) and the admin list.
func (h *Handler) RegisterRoutes(r *mux.Router) {
	httpserver.NewRouter(r, paymentsDomain, h.log).Handle(http.MethodPost, "/v1/callbacks/{provider}/payments", h.receive(KindPayment))
	httpserver.NewRouter(r, payoutsDomain, h.log).Handle(http.MethodPost, "/v1/callbacks/{provider}/payouts", h.receive(KindPayout))
	admin := httpserver.NewRouter(r, paymentsDomain, h.log, h.auth.Require)
	admin.Handle(http.MethodGet, "/v1/admin/callbacks", h.list)
}

// Ack is the answer to a processed callback.
type Ack struct {
	Received bool   `json:"received"`
	Outcome  string `json:"outcome"`
}

func (h *Handler) receive(kind string) httpserver.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if mux.Vars(r)["provider"] != string(h.name) {
			return apperr.ErrNotFound
		}
		span := trace.SpanFromContext(r.Context())
		span.SetAttributes(attribute.String("paygate.provider", string(h.name)), attribute.String("paygate.callback_kind", kind))
		log := logging.WithTrace(r.Context(), h.log)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err // over the body limit: the server's 413
		}
		ev, err := h.verifier.Verify(r.Header, body)
		if errors.Is(err, provider.ErrBadSignature) {
			h.inbox.count(r.Context(), h.name, kind, OutcomeRejected)
			span.SetAttributes(attribute.String("paygate.callback_outcome", OutcomeRejected))
			// Neither the header nor the body is logged: the header is the
			// secret (or a guess at it).
			log.Warn("provider callback did not authenticate", zap.String("provider", string(h.name)), zap.String("kind", kind),
				zap.String("remote", r.RemoteAddr), zap.Int("bytes", len(body)))
			return ErrUnauthenticated
		}
		// Admitted only once authenticated: a slot is held while a callback
		// uses the database, and a stranger's slow or forged body must not
		// hold one and keep the provider's callbacks out.
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		default:
			h.inbox.count(r.Context(), h.name, kind, OutcomeBusy)
			span.SetAttributes(attribute.String("paygate.callback_outcome", OutcomeBusy))
			return ErrBusy
		}
		ctx, cancel := context.WithTimeout(r.Context(), processBudget)
		defer cancel()
		if err != nil {
			if serr := h.inbox.Malformed(ctx, h.name, kind, body, err); serr != nil {
				log.Error("storing a malformed callback failed", zap.Error(serr))
			}
			h.inbox.count(r.Context(), h.name, kind, OutcomeMalformed)
			log.Error("provider callback authenticated but did not parse", zap.String("kind", kind), zap.Error(err))
			return ErrMalformed.With(err.Error())
		}
		rec := Received{Provider: h.name, Kind: kind, Event: ev, Body: body}
		if ev.Payment != nil {
			rec.Kind = KindPayment
		} else if ev.Payout != nil {
			rec.Kind = KindPayout
		}
		span.SetAttributes(attribute.String("paygate.callback_event_id", ev.ID), attribute.String("paygate.reference", rec.reference()))
		outcome, err := h.inbox.Process(ctx, rec)
		h.inbox.count(r.Context(), h.name, rec.Kind, outcome)
		span.SetAttributes(attribute.String("paygate.callback_outcome", outcome))
		if outcome == OutcomeInFlight {
			log.Info("provider callback about a top-up still being recorded; the provider will deliver it again", zap.String("event_id", ev.ID))
			return ErrNotProcessed.With("The top-up of this payment is still being recorded; deliver the callback again.")
		}
		if err != nil {
			log.Error("provider callback not processed; the provider will deliver it again", zap.String("event_id", ev.ID), zap.Error(err))
			return ErrNotProcessed
		}
		switch outcome {
		case OutcomeUnmatched, OutcomeMismatch, OutcomeLate:
			log.Warn("provider callback needs attention", zap.String("event_id", ev.ID), zap.String("outcome", outcome),
				zap.String("reference", rec.reference()))
		}
		httpserver.WriteJSON(w, http.StatusOK, Ack{Received: true, Outcome: outcome})
		return nil
	}
}

// Page is a page of the admin list.
type Page struct {
	Data       []Entry `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// list answers GET /v1/admin/callbacks?outcome=…&limit=…&cursor=…:
// processed notifications newest first; outcome (repeatable, or
// "attention" for unmatched, mismatch, late and malformed) filters them.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	if _, err := authn.AdminFromRequest(r); err != nil {
		return err
	}
	limit, cursor, err := httpserver.PageParams(r)
	if err != nil {
		return err
	}
	var before int64
	if cursor != "" {
		if before, err = strconv.ParseInt(cursor, 10, 64); err != nil || before <= 0 {
			return apperr.Validation("cursor is not a cursor of this list.", apperr.FieldError{Field: "cursor", Message: "unknown cursor"})
		}
	}
	var outcomes []string
	for _, o := range r.URL.Query()["outcome"] {
		for _, v := range strings.Split(o, ",") {
			switch {
			case v == "attention":
				outcomes = append(outcomes, AttentionOutcomes...)
			case knownOutcome(v):
				outcomes = append(outcomes, v)
			default:
				return apperr.Validation("outcome is not an outcome of a callback.",
					apperr.FieldError{Field: "outcome", Message: "must be one of " + strings.Join(Outcomes, ", ") + " or attention"})
			}
		}
	}
	entries, err := h.inbox.store.List(r.Context(), h.pool, outcomes, before, limit+1)
	if err != nil {
		return err
	}
	page := Page{Data: entries}
	if len(entries) > limit {
		page.Data = entries[:limit]
		next := strconv.FormatInt(entries[limit-1].seq, 10)
		page.NextCursor = &next
	}
	if page.Data == nil {
		page.Data = []Entry{}
	}
	httpserver.WriteJSON(w, http.StatusOK, page)
	return nil
}

func knownOutcome(v string) bool {
	for _, o := range Outcomes {
		if o == v {
			return true
		}
	}
	return false
}
