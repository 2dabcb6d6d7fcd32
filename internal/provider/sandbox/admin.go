package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/provider/xendit"
)

// Errors of the admin actions.
var (
	// ErrNoPayment means no payment has the id or reference.
	ErrNoPayment = errors.New("sandbox: no such payment")
	// ErrNotPending means the payment is already paid, failed or expired.
	ErrNotPending = errors.New("sandbox: payment is not pending")
	// ErrMismatchOnSession means a hosted checkout cannot be paid with
	// another amount or currency (its webhook does not carry one).
	ErrMismatchOnSession = errors.New("sandbox: a hosted checkout is paid in full; simulate a mismatch with a payment request method")
)

// PaymentView is a payment as the admin API shows it.
type PaymentView struct {
	ID           string `json:"id"`
	Reference    string `json:"reference"`
	Kind         string `json:"kind"` // payment_request or session
	Status       string `json:"status"`
	ChannelCode  string `json:"channel_code,omitempty"`
	Amount       int64  `json:"amount"`
	Currency     string `json:"currency"`
	PaidAmount   int64  `json:"paid_amount,omitempty"`
	PaidCurrency string `json:"paid_currency,omitempty"`
	ExpiresAt    string `json:"expires_at"`
}

func (p *payment) view() PaymentView {
	v := PaymentView{ID: p.id(), Reference: p.reference(), PaidAmount: p.PaidAmount, PaidCurrency: p.PaidCurrency,
		ExpiresAt: xendit.FormatTime(p.ExpiresAt)}
	if p.Session != nil {
		v.Kind, v.Status, v.Amount, v.Currency = "session", p.Session.Status, p.Session.Amount, p.Session.Currency
		if len(p.Session.AllowedPaymentChannels) == 1 {
			v.ChannelCode = p.Session.AllowedPaymentChannels[0]
		}
		return v
	}
	v.Kind, v.Status, v.ChannelCode = "payment_request", p.Request.Status, p.Request.ChannelCode
	v.Amount, v.Currency = p.Request.RequestAmount, p.Request.Currency
	return v
}

// Pay makes the customer pay the payment with id or reference idOrRef:
// amount and currency are what was paid (zero and "" for what was
// requested). It sends the payment's webhook.
func (s *Server) Pay(idOrRef string, amount int64, currency string) (PaymentView, error) {
	return s.onPayment(idOrRef, func(p *payment) (PaymentView, error) { return s.payLocked(p, amount, currency) })
}

// payLocked is Pay, under the lock.
func (s *Server) payLocked(p *payment, amount int64, currency string) (PaymentView, error) {
	if !p.pending() {
		return p.view(), ErrNotPending
	}
	now := time.Now()
	ts := xendit.FormatTime(now)
	if p.Session != nil {
		if (amount != 0 && amount != p.Session.Amount) || (currency != "" && currency != p.Session.Currency) {
			return p.view(), ErrMismatchOnSession
		}
		ps := p.Session
		ps.Status, ps.Updated = xendit.SessionCompleted, ts
		ps.PaymentRequestID, ps.PaymentID = newID("pr-", 16), newID("py-", 16)
		p.PaymentID, p.PaidAmount, p.PaidCurrency = ps.PaymentID, ps.Amount, ps.Currency
		s.settledPaymentLocked(p, ps.PaymentSessionID, "HOSTED_CHECKOUT", ts)
		s.saveLocked()
		s.emitLocked(s.opts.PaymentsCallbackPath, xendit.EventPaymentSessionCompleted, p.target(), ps.PaymentSessionID, *ps)
		return p.view(), nil
	}
	pr := p.Request
	if amount == 0 {
		amount = pr.RequestAmount
	}
	if currency == "" {
		currency = pr.Currency
	}
	pr.Status, pr.Updated = xendit.PRStatusSucceeded, ts
	p.PaymentID, p.PaidAmount, p.PaidCurrency = newID("py-", 16), amount, currency
	s.settledPaymentLocked(p, pr.PaymentRequestID, pr.ChannelCode, ts)
	s.saveLocked()
	data := xendit.PaymentObject{PaymentID: p.PaymentID, PaymentRequestID: pr.PaymentRequestID, ReferenceID: pr.ReferenceID,
		BusinessID: businessID, Status: xendit.PRStatusSucceeded, RequestAmount: pr.RequestAmount, Currency: currency,
		Country: pr.Country, ChannelCode: pr.ChannelCode, Type: pr.Type,
		Captures: []xendit.Capture{{CaptureID: p.PaymentID, CaptureAmount: amount, CaptureTimestamp: ts}},
		Created:  ts, Updated: ts}
	s.emitLocked(s.opts.PaymentsCallbackPath, xendit.EventPaymentCapture, p.target(), pr.PaymentRequestID, data)
	return p.view(), nil
}

// settledPaymentLocked records the money-in transaction of a paid payment.
func (s *Server) settledPaymentLocked(p *payment, productID, channel, ts string) {
	s.st.Transactions = append(s.st.Transactions, xendit.Transaction{ID: newID("txn_", 12), ProductID: productID,
		Type: xendit.TransactionTypePayment, Status: xendit.TransactionStatusSuccess, ChannelCode: channel,
		ReferenceID: p.reference(), Currency: p.PaidCurrency, Amount: p.PaidAmount, Cashflow: "MONEY_IN",
		SettlementStatus: "SETTLED", Created: ts, Updated: ts})
	s.log.Info("sandbox: payment paid", zap.String("id", p.id()), zap.String("reference", p.reference()),
		zap.Int64("amount", p.PaidAmount), zap.String("currency", p.PaidCurrency))
}

// Expire expires the pending payment with id or reference idOrRef and
// sends its webhook. With late set, a payment that is no longer pending
// keeps its state but its expiry webhook is sent anyway: a late webhook
// that lost a race, as Xendit warns may happen.
func (s *Server) Expire(idOrRef string, late bool) (PaymentView, error) {
	return s.onPayment(idOrRef, func(p *payment) (PaymentView, error) { return s.expireOrLateLocked(p, late) })
}

// expireOrLateLocked is Expire, under the lock.
func (s *Server) expireOrLateLocked(p *payment, late bool) (PaymentView, error) {
	if !p.pending() {
		if !late {
			return p.view(), ErrNotPending
		}
		s.emitExpiryLocked(p, expiredCopy(p))
		return p.view(), nil
	}
	s.expireLocked(p)
	return p.view(), nil
}

// expiredCopy is the payment's object as an expiry webhook shows it.
func expiredCopy(p *payment) any {
	ts := xendit.FormatTime(time.Now())
	if p.Session != nil {
		v := *p.Session
		v.Status, v.Updated = xendit.SessionExpired, ts
		return v
	}
	v := *p.Request
	v.Status, v.Updated, v.Actions = xendit.PRStatusExpired, ts, nil
	return v
}

// expireLocked expires a pending payment and sends its webhook.
func (s *Server) expireLocked(p *payment) {
	v := expiredCopy(p)
	switch o := v.(type) {
	case xendit.SessionObject:
		*p.Session = o
	case xendit.PaymentRequestObject:
		*p.Request = o
	}
	s.saveLocked()
	s.log.Info("sandbox: payment expired", zap.String("id", p.id()), zap.String("reference", p.reference()))
	s.emitExpiryLocked(p, v)
}

func (s *Server) emitExpiryLocked(p *payment, data any) {
	event := xendit.EventPaymentRequestExpiry
	if p.Session != nil {
		event = xendit.EventPaymentSessionExpired
	}
	s.emitLocked(s.opts.PaymentsCallbackPath, event, p.target(), p.id(), data)
}

// Payment returns the payment with id or reference idOrRef.
func (s *Server) Payment(idOrRef string) (PaymentView, error) {
	return s.onPayment(idOrRef, func(p *payment) (PaymentView, error) { return p.view(), nil })
}

// DropTransactions removes the settled transactions of reference (its
// payments and payouts) from the transactions list and returns how many
// it removed; the payment or payout itself keeps its state. The
// provider's books then lack money its callbacks reported (a capture the
// provider voided after notifying, an error of the provider's): what
// paygate's reconciliation must catch.
func (s *Server) DropTransactions(reference string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.st.Transactions[:0]
	for _, t := range s.st.Transactions {
		if t.ReferenceID != reference {
			kept = append(kept, t)
		}
	}
	n := len(s.st.Transactions) - len(kept)
	s.st.Transactions = kept
	s.saveLocked()
	return n
}

// AmendTransactions sets the amount, and the currency unless it is "",
// of the settled transactions of reference and returns how many it
// changed: the provider's settlement report disagrees with what its
// callback said (a fee taken, a partial capture), another mismatch for
// reconciliation to catch.
func (s *Server) AmendTransactions(reference string, amount int64, currency string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for i := range s.st.Transactions {
		t := &s.st.Transactions[i]
		if t.ReferenceID != reference {
			continue
		}
		t.Amount = amount
		if currency != "" {
			t.Currency = currency
		}
		n++
	}
	s.saveLocked()
	return n
}

// onPayment runs f, under the lock, on the payment with id or reference
// idOrRef.
func (s *Server) onPayment(idOrRef string, f func(*payment) (PaymentView, error)) (PaymentView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.findPaymentLocked(idOrRef)
	if p == nil {
		return PaymentView{}, ErrNoPayment
	}
	return f(p)
}

// PayRequest is the optional body of POST /_sandbox/payments/{id}/pay.
type PayRequest struct {
	Amount   int64  `json:"amount,omitempty"`
	Currency string `json:"currency,omitempty"`
}

// ExpireRequest is the optional body of POST /_sandbox/payments/{id}/expire.
type ExpireRequest struct {
	Late bool `json:"late,omitempty"`
}

// AmendRequest is the body of PATCH /_sandbox/transactions/{reference}.
type AmendRequest struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency,omitempty"`
}

// ReleaseRequest is the optional body of POST /_sandbox/callbacks/release.
type ReleaseRequest struct {
	Reverse bool `json:"reverse,omitempty"`
}

// adminRoutes registers the admin API under /_sandbox. It has no
// authentication: the sandbox listens on loopback by default.
func (s *Server) adminRoutes() {
	m := s.mux
	m.HandleFunc("GET /_sandbox/healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	m.HandleFunc("GET /_sandbox/payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.Payment(r.PathValue("id"))
		answer(w, v, err)
	})
	m.HandleFunc("POST /_sandbox/payments/{id}/pay", func(w http.ResponseWriter, r *http.Request) {
		var in PayRequest
		if !readOptional(w, r, &in) {
			return
		}
		v, err := s.Pay(r.PathValue("id"), in.Amount, in.Currency)
		if err == nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			http.Redirect(w, r, "/_sandbox/checkout/"+v.ID, http.StatusSeeOther)
			return
		}
		answer(w, v, err)
	})
	m.HandleFunc("POST /_sandbox/payments/{id}/expire", func(w http.ResponseWriter, r *http.Request) {
		var in ExpireRequest
		if !readOptional(w, r, &in) {
			return
		}
		v, err := s.Expire(r.PathValue("id"), in.Late)
		answer(w, v, err)
	})
	m.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		writeJSON(w, 200, f)
	})
	m.HandleFunc("PUT /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if readOptional(w, r, &f) {
			s.SetFaults(f)
			writeJSON(w, 200, f)
		}
	})
	m.HandleFunc("DELETE /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		s.SetFaults(Faults{})
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("PUT /_sandbox/faults/{reference}", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if readOptional(w, r, &f) {
			s.SetReferenceFaults(r.PathValue("reference"), f)
			writeJSON(w, 200, f)
		}
	})
	m.HandleFunc("DELETE /_sandbox/faults/{reference}", func(w http.ResponseWriter, r *http.Request) {
		s.SetReferenceFaults(r.PathValue("reference"), Faults{})
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("PUT /_sandbox/faults/amount/{amount}", func(w http.ResponseWriter, r *http.Request) {
		amount, err := strconv.ParseInt(r.PathValue("amount"), 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "amount must be an integer")
			return
		}
		var f Faults
		if readOptional(w, r, &f) {
			s.SetAmountFaults(amount, f)
			writeJSON(w, 200, f)
		}
	})
	m.HandleFunc("PUT /_sandbox/callback-url", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			URL string `json:"url"`
		}
		if readOptional(w, r, &in) {
			s.SetCallbackBaseURL(in.URL)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	m.HandleFunc("GET /_sandbox/callbacks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Deliveries()) })
	m.HandleFunc("POST /_sandbox/callbacks/release", func(w http.ResponseWriter, r *http.Request) {
		var in ReleaseRequest
		if readOptional(w, r, &in) {
			writeJSON(w, 200, map[string]int{"released": s.Release(in.Reverse)})
		}
	})
	m.HandleFunc("DELETE /_sandbox/transactions/{reference}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]int{"dropped": s.DropTransactions(r.PathValue("reference"))})
	})
	m.HandleFunc("PATCH /_sandbox/transactions/{reference}", func(w http.ResponseWriter, r *http.Request) {
		var in AmendRequest
		if !readOptional(w, r, &in) {
			return
		}
		if in.Amount <= 0 {
			writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "amount must be positive")
			return
		}
		writeJSON(w, 200, map[string]int{"amended": s.AmendTransactions(r.PathValue("reference"), in.Amount, in.Currency)})
	})
	m.HandleFunc("GET /_sandbox/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
	m.HandleFunc("GET /_sandbox/checkout/{id}", s.checkout)
}

// readOptional decodes an optional JSON body into v; it answers 400 and
// returns false for a malformed one.
func readOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return true
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", err.Error())
		return false
	}
	return true
}

// answer writes v, or the admin error err.
func answer(w http.ResponseWriter, v PaymentView, err error) {
	switch {
	case errors.Is(err, ErrNoPayment):
		writeError(w, http.StatusNotFound, "DATA_NOT_FOUND", err.Error())
	case errors.Is(err, ErrNotPending):
		writeError(w, http.StatusConflict, "INVALID_STATE", err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", err.Error())
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

var checkoutPage = template.Must(template.New("checkout").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>paygate sandbox checkout</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>Sandbox checkout</h1>
<p>Payment <code>{{.ID}}</code> for <code>{{.Reference}}</code>{{if .ChannelCode}} via {{.ChannelCode}}{{end}}:
<strong>{{.Currency}} {{.Amount}}</strong>. Status: <strong>{{.Status}}</strong>.</p>
{{if or (eq .Status "REQUIRES_ACTION") (eq .Status "ACTIVE")}}
<form method="post" action="/_sandbox/payments/{{.ID}}/pay"><button>Pay</button></form>
{{end}}
<p>No card number or credential is ever asked here: this is a local sandbox.</p>
</body></html>`))

// checkout is the hosted checkout page of a payment.
func (s *Server) checkout(w http.ResponseWriter, r *http.Request) {
	v, err := s.Payment(r.PathValue("id"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = checkoutPage.Execute(w, v)
}

// AdminClient talks to a running sandbox's admin API (the CLI's `paygate
// sandbox pay` and tests of a sandbox in another process).
type AdminClient struct {
	BaseURL string
	HTTP    *http.Client // http.DefaultClient when nil
}

// Pay makes the customer pay; amount and currency zero and "" pay what
// was requested.
func (a AdminClient) Pay(ctx context.Context, idOrRef string, amount int64, currency string) (PaymentView, error) {
	var v PaymentView
	err := a.do(ctx, http.MethodPost, "/_sandbox/payments/"+url.PathEscape(idOrRef)+"/pay", PayRequest{Amount: amount, Currency: currency}, &v)
	return v, err
}

// Expire expires a pending payment.
func (a AdminClient) Expire(ctx context.Context, idOrRef string) (PaymentView, error) {
	var v PaymentView
	err := a.do(ctx, http.MethodPost, "/_sandbox/payments/"+url.PathEscape(idOrRef)+"/expire", ExpireRequest{}, &v)
	return v, err
}

// Stats reads the counters.
func (a AdminClient) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	err := a.do(ctx, http.MethodGet, "/_sandbox/stats", nil, &st)
	return st, err
}

// SetAmountFaults sets the faults of every request of amount.
func (a AdminClient) SetAmountFaults(ctx context.Context, amount int64, f Faults) error {
	return a.do(ctx, http.MethodPut, "/_sandbox/faults/amount/"+strconv.FormatInt(amount, 10), f, nil)
}

// SetFaults sets the global faults, or a reference's when reference is
// not empty.
func (a AdminClient) SetFaults(ctx context.Context, reference string, f Faults) error {
	path := "/_sandbox/faults"
	if reference != "" {
		path += "/" + url.PathEscape(reference)
	}
	return a.do(ctx, http.MethodPut, path, f, nil)
}

// DropTransactions removes the settled transactions of reference and
// returns how many.
func (a AdminClient) DropTransactions(ctx context.Context, reference string) (int, error) {
	var out struct {
		Dropped int `json:"dropped"`
	}
	err := a.do(ctx, http.MethodDelete, "/_sandbox/transactions/"+url.PathEscape(reference), nil, &out)
	return out.Dropped, err
}

// AmendTransactions sets the amount (and the currency unless "") of the
// settled transactions of reference and returns how many it changed.
func (a AdminClient) AmendTransactions(ctx context.Context, reference string, amount int64, currency string) (int, error) {
	var out struct {
		Amended int `json:"amended"`
	}
	err := a.do(ctx, http.MethodPatch, "/_sandbox/transactions/"+url.PathEscape(reference), AmendRequest{Amount: amount, Currency: currency}, &out)
	return out.Amended, err
}

// Release sends the held callbacks.
func (a AdminClient) Release(ctx context.Context, reverse bool) error {
	return a.do(ctx, http.MethodPost, "/_sandbox/callbacks/release", ReleaseRequest{Reverse: reverse}, nil)
}

func (a AdminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(a.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sandbox: %s %s: %w", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e xendit.ErrorBody
		_ = json.Unmarshal(raw, &e)
		return fmt.Errorf("sandbox: %s %s: status %d: %s", method, path, resp.StatusCode, e.Message)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("sandbox: %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}
