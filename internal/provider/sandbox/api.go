package sandbox

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/provider/xendit"
)

// businessID is the sandbox's Xendit business id.
const businessID = "5andb0x0000000000000000"

// routes registers the API and the admin API.
func (s *Server) routes() {
	api := func(pattern string, h http.HandlerFunc) { s.mux.Handle(pattern, s.auth(h)) }
	api("POST "+xendit.PathPaymentRequests, versioned(s.createPaymentRequest))
	api("GET "+xendit.PathPaymentRequests+"/{id}", versioned(s.getPayment))
	api("POST "+xendit.PathSessions, s.createSession)
	api("GET "+xendit.PathSessions+"/{id}", s.getPayment)
	api("POST "+xendit.PathPayouts, s.createPayout)
	api("GET "+xendit.PathPayouts+"/{id}", s.getPayout)
	api("GET "+xendit.PathTransactions, s.listTransactions)
	s.adminRoutes()
}

// auth checks basic auth with the secret key, as Xendit does.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.SecretKey)) != 1 {
			writeError(w, http.StatusUnauthorized, "INVALID_API_KEY", "API key is invalid")
			return
		}
		s.mu.Lock()
		down := s.faults.Down
		s.mu.Unlock()
		if down {
			writeError(w, http.StatusServiceUnavailable, "SERVER_ERROR", "sandbox: down as told")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// versioned refuses a Payments API v3 request without its api-version.
func versioned(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get(xendit.HeaderAPIVersion); v != xendit.PaymentsAPIVersion {
			writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "api-version "+xendit.PaymentsAPIVersion+" is required")
			return
		}
		next(w, r)
	}
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers status with Xendit's error body.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, xendit.ErrorBody{ErrorCode: code, Message: msg})
}

// errConflict is an idempotency key reused with another body.
var errConflict = errors.New("sandbox: idempotency key reused with another request")

// create runs the common part of every create: count, faults, the
// idempotency key, then build (under the lock) unless the key already
// created an object. It answers the request.
func (s *Server) create(w http.ResponseWriter, r *http.Request, scope string, keyRequired bool, reference func([]byte) (target, error),
	build func(body []byte) (id string, status int, err error), view func(id string) any) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "cannot read the body")
		return
	}
	key := r.Header.Get(xendit.HeaderIdempotencyKey)
	if keyRequired && (key == "" || len(key) > 100) {
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", "Idempotency-key header of 1 to 100 characters is required")
		return
	}
	t, err := reference(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", err.Error())
		return
	}
	s.mu.Lock()
	if key != "" {
		s.stats.creates[key]++
	}
	f := s.faultsLocked(t)
	delay := time.Duration(f.CreateDelay)
	failStatus := 0
	if f.FailCreates > 0 {
		f.FailCreates--
		failStatus = f.FailStatus
		if failStatus == 0 {
			failStatus = http.StatusServiceUnavailable
		}
	}
	failAfter := f.FailAfterCreate
	s.mu.Unlock()
	switch s.wait(r.Context(), delay) {
	case waitClosing:
		writeError(w, http.StatusServiceUnavailable, "SERVER_ERROR", "sandbox: shutting down")
		return
	case waitClientGone:
		// The client gave up; the create still happens, as at a slow
		// provider, so that a retry finds it.
		if failStatus == 0 || failAfter {
			s.mu.Lock()
			_, _, _ = s.makeOnceLocked(scope, key, body, build)
			s.mu.Unlock()
		}
		return
	}
	if failStatus != 0 && !failAfter {
		writeError(w, failStatus, "SERVER_ERROR", "sandbox: create failed as told")
		return
	}
	s.mu.Lock()
	id, status, err := s.makeOnceLocked(scope, key, body, build)
	var v any
	if err == nil {
		v = view(id)
	}
	s.mu.Unlock()
	switch {
	case errors.Is(err, errConflict):
		writeError(w, http.StatusConflict, "DUPLICATE_ERROR", err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, "API_VALIDATION_ERROR", err.Error())
	case failStatus != 0:
		writeError(w, failStatus, "SERVER_ERROR", "sandbox: created, then failed as told")
	default:
		writeJSON(w, status, v)
	}
}

// makeOnceLocked creates the object of a key once: the same key and body
// return the same object, the same key and another body errConflict.
func (s *Server) makeOnceLocked(scope, key string, body []byte, build func([]byte) (string, int, error)) (string, int, error) {
	fp := fingerprint(body)
	if key != "" {
		if rec, ok := s.st.Idempotency[scope+" "+key]; ok {
			if rec.Fingerprint != fp {
				return "", 0, errConflict
			}
			return rec.ObjectID, http.StatusOK, nil
		}
	}
	id, status, err := build(body)
	if err != nil {
		return "", 0, err
	}
	if key != "" {
		s.st.Idempotency[scope+" "+key] = idemRecord{Fingerprint: fp, ObjectID: id}
	}
	s.saveLocked()
	return id, status, nil
}

// The outcomes of wait.
const (
	waitDone = iota
	waitClientGone
	waitClosing
)

// wait waits d, or until the client gives up or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) int {
	if d <= 0 {
		return waitDone
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return waitDone
	case <-ctx.Done():
		return waitClientGone
	case <-s.ctx.Done():
		return waitClosing
	}
}

// fingerprint identifies a JSON body regardless of formatting.
func fingerprint(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) == nil {
		if b, err := json.Marshal(v); err == nil {
			body = b
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// referenceOf reads reference_id and the amount from a create body.
func referenceOf(body []byte) (target, error) {
	var v struct {
		ReferenceID   string `json:"reference_id"`
		RequestAmount int64  `json:"request_amount"`
		Amount        int64  `json:"amount"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return target{}, errors.New("body is not JSON")
	}
	if v.ReferenceID == "" {
		return target{}, errors.New("reference_id is required")
	}
	return target{Reference: v.ReferenceID, Amount: max(v.RequestAmount, v.Amount)}, nil
}

func (s *Server) createPaymentRequest(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r)
	s.create(w, r, "payment_requests", false, referenceOf, func(body []byte) (string, int, error) {
		var b xendit.CreatePaymentRequestBody
		if err := json.Unmarshal(body, &b); err != nil {
			return "", 0, errors.New("body is not a payment request")
		}
		if b.RequestAmount <= 0 || b.Currency == "" || b.ChannelCode == "" || b.Type != "PAY" {
			return "", 0, errors.New("type PAY, request_amount, currency and channel_code are required")
		}
		now := time.Now()
		pr := &xendit.PaymentRequestObject{PaymentRequestID: newID("pr-", 16), ReferenceID: b.ReferenceID, BusinessID: businessID,
			Type: b.Type, Country: b.Country, Currency: b.Currency, RequestAmount: b.RequestAmount, CaptureMethod: b.CaptureMethod,
			ChannelCode: b.ChannelCode, ChannelProperties: b.ChannelProperties, Status: xendit.PRStatusRequiresAction,
			Description: b.Description, Created: xendit.FormatTime(now), Updated: xendit.FormatTime(now)}
		expires := now.Add(24 * time.Hour)
		if t, err := time.Parse(time.RFC3339Nano, b.ChannelProperties.ExpiresAt); err == nil {
			expires = t
		}
		pr.ChannelProperties.ExpiresAt = xendit.FormatTime(expires)
		switch {
		case strings.HasSuffix(b.ChannelCode, "_VIRTUAL_ACCOUNT"):
			pr.Actions = []xendit.Action{{Type: xendit.ActionPresentToCustomer, Descriptor: xendit.DescriptorVirtualAccountNumber, Value: "8808" + digits(12)}}
		case b.ChannelCode == "ALFAMART" || b.ChannelCode == "INDOMARET":
			pr.Actions = []xendit.Action{{Type: xendit.ActionPresentToCustomer, Descriptor: xendit.DescriptorPaymentCode, Value: "SBX" + digits(9)}}
		case b.ChannelCode == "QRIS":
			pr.Actions = []xendit.Action{{Type: xendit.ActionPresentToCustomer, Descriptor: xendit.DescriptorQRString, Value: "00020101021226" + digits(20)}}
		default:
			pr.Actions = []xendit.Action{
				{Type: xendit.ActionRedirectCustomer, Descriptor: xendit.DescriptorWebURL, Value: base + "/_sandbox/checkout/" + pr.PaymentRequestID},
				{Type: xendit.ActionRedirectCustomer, Descriptor: xendit.DescriptorDeeplinkURL, Value: "sandbox://pay/" + pr.PaymentRequestID},
			}
		}
		p := &payment{Request: pr, ExpiresAt: expires, Seq: s.nextSeq()}
		s.st.Payments[pr.PaymentRequestID] = p
		s.afterCreatePaymentLocked(p)
		return pr.PaymentRequestID, http.StatusCreated, nil
	}, s.paymentView)
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r)
	s.create(w, r, "sessions", false, referenceOf, func(body []byte) (string, int, error) {
		var b xendit.CreateSessionBody
		if err := json.Unmarshal(body, &b); err != nil {
			return "", 0, errors.New("body is not a payment session")
		}
		if b.Amount <= 0 || b.Currency == "" || b.SessionType != "PAY" || b.Customer.ReferenceID == "" {
			return "", 0, errors.New("session_type PAY, amount, currency and customer are required")
		}
		now := time.Now()
		expires := now.Add(30 * time.Minute)
		if t, err := time.Parse(time.RFC3339Nano, b.ExpiresAt); err == nil {
			expires = t
		}
		ps := &xendit.SessionObject{PaymentSessionID: newID("ps-", 12), ReferenceID: b.ReferenceID, BusinessID: businessID,
			SessionType: b.SessionType, Mode: b.Mode, Amount: b.Amount, Currency: b.Currency, Country: b.Country,
			AllowedPaymentChannels: b.AllowedPaymentChannels, ExpiresAt: xendit.FormatTime(expires), Status: xendit.SessionActive,
			Created: xendit.FormatTime(now), Updated: xendit.FormatTime(now)}
		ps.PaymentLinkURL = base + "/_sandbox/checkout/" + ps.PaymentSessionID
		p := &payment{Session: ps, ExpiresAt: expires, Seq: s.nextSeq()}
		s.st.Payments[ps.PaymentSessionID] = p
		s.afterCreatePaymentLocked(p)
		return ps.PaymentSessionID, http.StatusCreated, nil
	}, s.paymentView)
}

// afterCreatePaymentLocked schedules the auto-payment of a new payment.
func (s *Server) afterCreatePaymentLocked(p *payment) {
	s.log.Info("sandbox: payment created", zap.String("id", p.id()), zap.String("reference", p.reference()))
	if !s.opts.AutoPay {
		return
	}
	id := p.id()
	s.after(s.opts.AutoPayDelay, func() {
		if _, err := s.Pay(id, 0, ""); err != nil {
			s.log.Info("sandbox: auto-pay skipped", zap.String("id", id), zap.Error(err))
		}
	})
}

// paymentView is the API's view of a payment (locked).
func (s *Server) paymentView(id string) any {
	p := s.st.Payments[id]
	if p.Session != nil {
		v := *p.Session
		return v
	}
	v := *p.Request
	return v
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.st.Payments[id]
	isSession := strings.HasPrefix(r.URL.Path, xendit.PathSessions)
	if !ok || (p.Session != nil) != isSession {
		writeError(w, http.StatusNotFound, "DATA_NOT_FOUND", "no such object")
		return
	}
	writeJSON(w, http.StatusOK, s.paymentView(id))
}

func (s *Server) createPayout(w http.ResponseWriter, r *http.Request) {
	s.create(w, r, "payouts", true, referenceOf, func(body []byte) (string, int, error) {
		var b xendit.CreatePayoutBody
		if err := json.Unmarshal(body, &b); err != nil {
			return "", 0, errors.New("body is not a payout")
		}
		if b.Amount <= 0 || b.Currency == "" || !strings.HasPrefix(b.ChannelCode, "ID_") ||
			b.ChannelProperties.AccountNumber == "" || b.ChannelProperties.AccountHolderName == "" {
			return "", 0, errors.New("amount, currency, channel_code (ID_…) and channel_properties are required")
		}
		now := xendit.FormatTime(time.Now())
		o := xendit.PayoutObject{ID: newID("disb-", 12), ReferenceID: b.ReferenceID, BusinessID: businessID,
			ChannelCode: b.ChannelCode, ChannelProperties: b.ChannelProperties, Amount: b.Amount, Description: b.Description,
			Currency: b.Currency, Status: xendit.PayoutStatusAccepted, Created: now, Updated: now,
			EstimatedArrivalTime: xendit.FormatTime(time.Now().Add(s.opts.PayoutDelay))}
		s.st.Payouts[o.ID] = &payout{Object: o}
		s.log.Info("sandbox: payout accepted", zap.String("id", o.ID), zap.String("reference", o.ReferenceID))
		s.schedulePayout(o.ID)
		return o.ID, http.StatusOK, nil
	}, func(id string) any { return s.st.Payouts[id].Object })
}

// schedulePayout settles a payout after PayoutDelay: it fails with the
// reference's PayoutFailureCode, if any, and succeeds otherwise.
func (s *Server) schedulePayout(id string) {
	s.after(s.opts.PayoutDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		p := s.st.Payouts[id]
		if p == nil || p.Object.Status != xendit.PayoutStatusAccepted {
			return
		}
		o := &p.Object
		now := time.Now()
		o.Updated = xendit.FormatTime(now)
		event := xendit.EventPayoutSucceeded
		t := target{Reference: o.ReferenceID, Amount: o.Amount}
		if code := s.faultsLocked(t).PayoutFailureCode; code != "" {
			o.Status, o.FailureCode, event = xendit.PayoutStatusFailed, code, xendit.EventPayoutFailed
		} else {
			o.Status = xendit.PayoutStatusSucceeded
			s.st.Transactions = append(s.st.Transactions, xendit.Transaction{ID: newID("txn_", 12), ProductID: o.ID,
				Type: xendit.TransactionTypeDisbursement, Status: xendit.TransactionStatusSuccess, ChannelCategory: "BANK",
				ChannelCode: o.ChannelCode, ReferenceID: o.ReferenceID, Currency: o.Currency, Amount: o.Amount,
				Cashflow: "MONEY_OUT", SettlementStatus: "SETTLED", Created: o.Created, Updated: o.Updated})
		}
		s.saveLocked()
		s.log.Info("sandbox: payout settled", zap.String("id", id), zap.String("status", o.Status))
		s.emitLocked(s.opts.PayoutsCallbackPath, event, t, o.ID, *o)
	})
}

func (s *Server) getPayout(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.st.Payouts[r.PathValue("id")]
	if !ok {
		writeError(w, http.StatusNotFound, "DATA_NOT_FOUND", "no such payout")
		return
	}
	writeJSON(w, http.StatusOK, p.Object)
}

// listTransactions serves GET /transactions: filters types, statuses,
// created[gte], created[gt], created[lte], created[lt], limit and
// after_id.
func (s *Server) listTransactions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 10
	if v, err := strconv.Atoi(q.Get("limit")); err == nil && v > 0 && v <= 50 {
		limit = v
	}
	in := func(list []string, v string) bool {
		if len(list) == 0 {
			return true
		}
		for _, x := range list {
			if x == v {
				return true
			}
		}
		return false
	}
	bound := func(name string) (time.Time, bool) {
		t, err := time.Parse(time.RFC3339Nano, q.Get(name))
		return t, err == nil
	}
	s.mu.Lock()
	all := s.sortedTransactionsLocked()
	s.mu.Unlock()
	var match []xendit.Transaction
	for _, t := range all {
		c, _ := time.Parse(time.RFC3339Nano, t.Created)
		if b, ok := bound("created[gte]"); ok && c.Before(b) {
			continue
		}
		if b, ok := bound("created[gt]"); ok && !c.After(b) {
			continue
		}
		if b, ok := bound("created[lte]"); ok && c.After(b) {
			continue
		}
		if b, ok := bound("created[lt]"); ok && !c.Before(b) {
			continue
		}
		if in(q["types"], t.Type) && in(q["statuses"], t.Status) {
			match = append(match, t)
		}
	}
	if after := q.Get("after_id"); after != "" {
		for i, t := range match {
			if t.ID == after {
				match = match[i+1:]
				break
			}
		}
	}
	page := xendit.TransactionList{Data: match, Links: []xendit.Link{}}
	if len(match) > limit {
		page.Data, page.HasMore = match[:limit], true
		next := r.URL.Query()
		next.Set("after_id", page.Data[limit-1].ID)
		page.Links = append(page.Links, xendit.Link{Href: xendit.PathTransactions + "?" + next.Encode(), Rel: "next", Method: "GET"})
	}
	if page.Data == nil {
		page.Data = []xendit.Transaction{}
	}
	writeJSON(w, http.StatusOK, page)
}

// baseURL is the sandbox's URL as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
