package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/paygate/paygate/internal/platform/periodic"

	"go.uber.org/zap"

	"github.com/paygate/paygate/internal/provider/xendit"
)

// Duration is a time.Duration written in JSON as "1.5s".
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("sandbox: duration %s: want a string like \"2s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("sandbox: duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Faults tell the sandbox to misbehave: for the requests and callbacks of
// one reference (SetReferenceFaults), else for those of one amount
// (SetAmountFaults, like a provider's magic test amounts: a test does not
// know the reference paygate will make up), else for all (SetFaults).
type Faults struct {
	// FailCreates answers the next n creates with FailStatus.
	FailCreates int `json:"fail_creates,omitempty"`
	// FailStatus is the status of a failed create; 503 when zero.
	FailStatus int `json:"fail_status,omitempty"`
	// FailAfterCreate makes a failed create happen anyway, answered with
	// FailStatus: the client cannot know the outcome.
	FailAfterCreate bool `json:"fail_after_create,omitempty"`
	// CreateDelay answers creates this late (a slow provider; longer than
	// the client's timeout, a timeout). The create still happens.
	CreateDelay Duration `json:"create_delay,omitempty"`
	// PayoutFailureCode makes payouts fail with this code, e.g.
	// INVALID_DESTINATION, INSUFFICIENT_BALANCE.
	PayoutFailureCode string `json:"payout_failure_code,omitempty"`
	// Down answers every API request with 503 and does nothing (global
	// faults only): the provider is down.
	Down bool `json:"down,omitempty"`
	// Callbacks misbehave as told.
	Callbacks CallbackFaults `json:"callbacks"`
}

// CallbackFaults tell the sandbox how to deliver callbacks.
type CallbackFaults struct {
	// Duplicate sends this many extra copies of each callback.
	Duplicate int `json:"duplicate,omitempty"`
	// Delay sends callbacks this late.
	Delay Duration `json:"delay,omitempty"`
	// Drop drops the next n callbacks: they are never sent.
	Drop int `json:"drop,omitempty"`
	// Hold keeps callbacks until Release, which can send them in reverse
	// order.
	Hold bool `json:"hold,omitempty"`
}

// SetFaults sets the global faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// SetReferenceFaults sets the faults of one reference; a zero Faults
// removes them.
func (s *Server) SetReferenceFaults(reference string, f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Faults{}) {
		delete(s.perRef, reference)
		return
	}
	s.perRef[reference] = &f
}

// SetAmountFaults sets the faults of every request of one amount; a zero
// Faults removes them.
func (s *Server) SetAmountFaults(amount int64, f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == (Faults{}) {
		delete(s.perAmount, amount)
		return
	}
	s.perAmount[amount] = &f
}

// target is what faults are chosen by.
type target struct {
	Reference string
	Amount    int64
}

// faultsLocked are the faults that apply to t.
func (s *Server) faultsLocked(t target) *Faults {
	if f, ok := s.perRef[t.Reference]; ok {
		return f
	}
	if f, ok := s.perAmount[t.Amount]; ok {
		return f
	}
	return &s.faults
}

// DeliveryStatus is where a callback delivery stands.
type DeliveryStatus string

// The delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"   // being sent or retried
	DeliveryDelivered DeliveryStatus = "delivered" // answered 2xx
	DeliveryDropped   DeliveryStatus = "dropped"   // dropped as told
	DeliveryHeld      DeliveryStatus = "held"      // waiting for Release
	DeliveryFailed    DeliveryStatus = "failed"    // MaxAttempts used up
	DeliveryNoTarget  DeliveryStatus = "no_target" // no callback URL configured
)

// Delivery is one callback the sandbox sends (a duplicate is another
// delivery of the same body).
type Delivery struct {
	Seq        int             `json:"seq"`
	Event      string          `json:"event"`
	Reference  string          `json:"reference"`
	ObjectID   string          `json:"object_id"`
	Path       string          `json:"path"`
	Status     DeliveryStatus  `json:"status"`
	Attempts   int             `json:"attempts"`
	LastStatus int             `json:"last_status,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	Body       json.RawMessage `json:"body"`
}

type delivery struct {
	Delivery
	url   string
	delay time.Duration
}

// Deliveries lists the callbacks in the order they were queued.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.dels))
	for i, d := range s.dels {
		out[i] = d.Delivery
	}
	return out
}

// Release sends the held callbacks one after the other (each once
// delivered), in reverse order when reverse is set, and stops holding; it
// returns how many it released.
func (s *Server) Release(reverse bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.held
	s.held = nil
	s.faults.Callbacks.Hold = false
	for _, f := range s.perRef {
		f.Callbacks.Hold = false
	}
	for _, f := range s.perAmount {
		f.Callbacks.Hold = false
	}
	if reverse {
		for i, j := 0, len(held)-1; i < j; i, j = i+1, j-1 {
			held[i], held[j] = held[j], held[i]
		}
	}
	for _, d := range held {
		d.Status = DeliveryPending
	}
	// One after the other, each until delivered, so the order holds.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for _, d := range held {
			s.deliver(d, 0)
		}
	}()
	return len(held)
}

// emitLocked queues a webhook about t, applying its faults.
func (s *Server) emitLocked(path, event string, t target, objectID string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		s.log.Error("sandbox: encode webhook", zap.Error(err))
		return
	}
	body, _ := json.Marshal(xendit.Webhook{Event: event, BusinessID: businessID,
		Created: xendit.FormatTime(time.Now()), Data: raw})
	f := s.faultsLocked(t)
	reference := t.Reference
	copies := 1 + max(f.Callbacks.Duplicate, 0)
	for range copies {
		d := &delivery{Delivery: Delivery{Seq: len(s.dels) + 1, Event: event, Reference: reference, ObjectID: objectID,
			Path: path, Status: DeliveryPending, Body: body}, url: s.opts.CallbackBaseURL + path, delay: time.Duration(f.Callbacks.Delay)}
		s.dels = append(s.dels, d)
		switch {
		case f.Callbacks.Drop > 0:
			f.Callbacks.Drop--
			d.Status = DeliveryDropped
		case s.opts.CallbackBaseURL == "":
			d.Status = DeliveryNoTarget
		case f.Callbacks.Hold:
			d.Status = DeliveryHeld
			s.held = append(s.held, d)
		default:
			s.sendLater(d, d.delay)
		}
		s.log.Info("sandbox: callback queued", zap.String("event", event), zap.String("reference", reference),
			zap.String("status", string(d.Status)))
	}
}

// sendLater delivers d after wait, in the background.
func (s *Server) sendLater(d *delivery, wait time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.deliver(d, wait)
	}()
}

// deliver sends d after wait, retrying with backoff until a 2xx, until
// MaxAttempts are used or until the server closes.
func (s *Server) deliver(d *delivery, wait time.Duration) {
	backoff := s.opts.RetryBase
	for attempt := 1; ; attempt++ {
		if !periodic.Sleep(s.ctx, wait) {
			return
		}
		code, err := s.post(d)
		s.mu.Lock()
		d.Attempts, d.LastStatus = attempt, code
		d.LastError = ""
		if err != nil {
			d.LastError = err.Error()
		}
		done := err == nil && code >= 200 && code < 300
		if done {
			d.Status = DeliveryDelivered
		} else if s.opts.MaxAttempts > 0 && attempt >= s.opts.MaxAttempts {
			d.Status = DeliveryFailed
			done = true
		}
		s.mu.Unlock()
		if done {
			return
		}
		wait = backoff
		backoff = min(backoff*2, s.opts.RetryMax)
	}
}

// post sends one attempt of d, once one of the MaxInFlight slots is free.
func (s *Server) post(d *delivery) (int, error) {
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(xendit.HeaderCallbackToken, s.opts.CallbackToken)
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
