package xendit

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/paygate/paygate/internal/provider"
)

// Verifier authenticates Xendit's webhooks by their x-callback-token, the
// verification token of the dashboard's webhook settings, and parses
// them; it implements provider.CallbackVerifier.
type Verifier struct {
	token []byte
}

var _ provider.CallbackVerifier = (*Verifier)(nil)

// NewVerifier returns a Verifier for the callback token. An empty token
// verifies nothing: every callback is provider.ErrBadSignature.
func NewVerifier(token string) *Verifier { return &Verifier{token: []byte(token)} }

// ErrUnknownEvent is returned for an authenticated webhook of an event the
// adapter does not handle.
var ErrUnknownEvent = errors.New("xendit: unknown webhook event")

// Verify checks the x-callback-token in constant time, then parses the
// body. It never returns or logs the token.
func (v *Verifier) Verify(header map[string][]string, body []byte) (provider.Event, error) {
	var got []string
	for name, values := range header {
		if strings.EqualFold(name, HeaderCallbackToken) {
			got = append(got, values...)
		}
	}
	if len(v.token) == 0 || len(got) != 1 ||
		subtle.ConstantTimeCompare([]byte(got[0]), v.token) != 1 {
		return provider.Event{}, provider.ErrBadSignature
	}
	return ParseWebhook(body)
}

// ParseWebhook parses an authenticated webhook body into an event whose ID
// is the same for every redelivery of one notification.
func ParseWebhook(body []byte) (provider.Event, error) {
	var w Webhook
	if err := json.Unmarshal(body, &w); err != nil {
		return provider.Event{}, fmt.Errorf("xendit: webhook body: %w", err)
	}
	if len(w.Data) == 0 {
		return provider.Event{}, errors.New("xendit: webhook without data")
	}
	switch w.Event {
	case EventPaymentCapture, EventPaymentFailure, EventPaymentFailed:
		d, err := webhookData(w, func(d PaymentObject) bool { return !(d.PaymentRequestID == "" || d.ReferenceID == "") })
		if err != nil {
			return provider.Event{}, err
		}
		p := capturedPayment(w.Event, d)
		return provider.Event{ID: w.Event + ":" + firstNonEmpty(d.PaymentID, d.PaymentRequestID), Payment: &p}, nil
	case EventPaymentRequestExpiry:
		d, err := webhookData(w, func(d PaymentRequestObject) bool { return !(d.PaymentRequestID == "" || d.ReferenceID == "") })
		if err != nil {
			return provider.Event{}, err
		}
		p := requestPayment(d, familyOfCode(d.ChannelCode))
		p.Status = provider.PaymentExpired
		return provider.Event{ID: w.Event + ":" + d.PaymentRequestID, Payment: &p}, nil
	case EventPaymentSessionCompleted, EventPaymentSessionExpired:
		d, err := webhookData(w, func(d SessionObject) bool { return !(d.PaymentSessionID == "" || d.ReferenceID == "") })
		if err != nil {
			return provider.Event{}, err
		}
		d.Status = SessionExpired
		if w.Event == EventPaymentSessionCompleted {
			d.Status = SessionCompleted
		}
		p := sessionPayment(d, sessionChannel(d))
		return provider.Event{ID: w.Event + ":" + d.PaymentSessionID, Payment: &p}, nil
	case EventPayoutSucceeded, EventPayoutFailed:
		d, err := webhookData(w, func(d PayoutObject) bool { return !(d.ID == "" || d.ReferenceID == "") })
		if err != nil {
			return provider.Event{}, err
		}
		d.Status = PayoutStatusFailed
		if w.Event == EventPayoutSucceeded {
			d.Status = PayoutStatusSucceeded
		}
		p := payout(d)
		return provider.Event{ID: w.Event + ":" + d.ID, Payout: &p}, nil
	default:
		return provider.Event{}, fmt.Errorf("%w: %q", ErrUnknownEvent, w.Event)
	}
}

// webhookData decodes a webhook's data and checks that it names its
// objects.
func webhookData[T any](w Webhook, named func(T) bool) (T, error) {
	var d T
	if err := json.Unmarshal(w.Data, &d); err != nil {
		return d, fmt.Errorf("xendit: %s data: %w", w.Event, err)
	}
	if !named(d) {
		return d, fmt.Errorf("xendit: %s data without its ids", w.Event)
	}
	return d, nil
}

// capturedPayment is the payment of a payment webhook: requested amount,
// and what the captures say was paid.
func capturedPayment(event string, d PaymentObject) provider.Payment {
	p := provider.Payment{
		ID: d.PaymentRequestID, Reference: d.ReferenceID, Amount: d.RequestAmount, Currency: d.Currency,
		FailureCode:  d.FailureCode,
		Instructions: provider.Instructions{Family: familyOfCode(d.ChannelCode), Channel: d.ChannelCode},
	}
	if event != EventPaymentCapture || d.Status != PRStatusSucceeded {
		p.Status = provider.PaymentFailed
		if p.FailureCode == "" {
			p.FailureCode = d.Status
		}
		p.FailureReason = PaymentFailureReason(p.FailureCode)
		return p
	}
	p.Status = provider.PaymentSucceeded
	p.PaidCurrency = d.Currency
	for _, c := range d.Captures {
		p.PaidAmount += c.CaptureAmount
		if t := parseTime(c.CaptureTimestamp); !t.IsZero() {
			p.PaidAt = &t
		}
	}
	if len(d.Captures) == 0 {
		p.PaidAmount = d.RequestAmount
	}
	if p.PaidAt == nil {
		if t := parseTime(d.Updated); !t.IsZero() {
			p.PaidAt = &t
		}
	}
	return p
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
