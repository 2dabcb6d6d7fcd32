package xendit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/paygate/paygate/internal/provider"
)

// Prefixes of Xendit's ids, which tell a payment request from a session.
const (
	prefixPaymentRequest = "pr-"
	prefixSession        = "ps-"
)

// HostedChannel is Instructions.Channel for a hosted checkout that offers
// every channel.
const HostedChannel = "PAYMENT_SESSION"

// CreatePayment creates a payment request, or a payment session for a
// method collected through hosted checkout, under r.Reference as
// idempotency key.
func (c *Client) CreatePayment(ctx context.Context, r provider.PaymentRequest) (provider.Payment, error) {
	ch, ok := ChannelFor(r.Method)
	if !ok {
		return provider.Payment{}, fmt.Errorf("xendit: no channel for method %q: %w", r.Method, provider.ErrRejected)
	}
	if r.Reference == "" {
		return provider.Payment{}, errors.New("xendit: a payment needs a reference")
	}
	if ch.Hosted {
		body := c.sessionBody(r, ch)
		var s SessionObject
		if err := c.do(ctx, call{method: "POST", path: PathSessions, key: r.Reference, body: body, out: &s}); err != nil {
			return provider.Payment{}, err
		}
		return sessionPayment(s, ch), nil
	}
	body := CreatePaymentRequestBody{
		ReferenceID: r.Reference, Type: "PAY", Country: "ID", Currency: r.Currency,
		RequestAmount: r.Amount, CaptureMethod: "AUTOMATIC", ChannelCode: ch.Code,
		Description: "paygate top-up " + r.Reference,
	}
	if !r.ExpiresAt.IsZero() {
		body.ChannelProperties.ExpiresAt = FormatTime(r.ExpiresAt)
	}
	switch ch.Family {
	case provider.FamilyVirtualAccount:
		body.ChannelProperties.DisplayName = r.CustomerName
	case provider.FamilyRetail:
		body.ChannelProperties.PayerName = r.CustomerName
	default:
		body.ChannelProperties.SuccessReturnURL = c.opts.SuccessReturnURL
		body.ChannelProperties.FailureReturnURL = c.opts.FailureReturnURL
	}
	var pr PaymentRequestObject
	if err := c.do(ctx, call{method: "POST", path: PathPaymentRequests, key: r.Reference, body: body, out: &pr}); err != nil {
		return provider.Payment{}, err
	}
	return requestPayment(pr, ch.Family), nil
}

// sessionBody is the hosted checkout's create body for r.
func (c *Client) sessionBody(r provider.PaymentRequest, ch Channel) CreateSessionBody {
	name := r.CustomerName
	if name == "" {
		name = "paygate customer"
	}
	body := CreateSessionBody{
		ReferenceID: r.Reference, SessionType: "PAY", Mode: "PAYMENT_LINK",
		Amount: r.Amount, Currency: r.Currency, Country: "ID",
		Customer: SessionCustomer{ReferenceID: "customer-" + r.Reference, Type: "INDIVIDUAL",
			IndividualDetail: IndividualDetail{GivenNames: name}},
		SuccessReturnURL: c.opts.SuccessReturnURL, CancelReturnURL: c.opts.FailureReturnURL,
		Description: "paygate top-up " + r.Reference,
	}
	if ch.Code != "" {
		body.AllowedPaymentChannels = []string{ch.Code}
	}
	if !r.ExpiresAt.IsZero() {
		body.ExpiresAt = FormatTime(r.ExpiresAt)
	}
	return body
}

// GetPayment reads a payment request or a session by the id CreatePayment
// returned.
func (c *Client) GetPayment(ctx context.Context, id string) (provider.Payment, error) {
	switch {
	case strings.HasPrefix(id, prefixSession):
		var s SessionObject
		if err := c.do(ctx, call{method: "GET", path: PathSessions + "/" + url.PathEscape(id), out: &s, notFound: true}); err != nil {
			return provider.Payment{}, err
		}
		return sessionPayment(s, sessionChannel(s)), nil
	case strings.HasPrefix(id, prefixPaymentRequest):
		var pr PaymentRequestObject
		if err := c.do(ctx, call{method: "GET", path: PathPaymentRequests + "/" + url.PathEscape(id), out: &pr, notFound: true}); err != nil {
			return provider.Payment{}, err
		}
		return requestPayment(pr, familyOfCode(pr.ChannelCode)), nil
	default:
		return provider.Payment{}, fmt.Errorf("xendit: payment id %q is neither a payment request nor a session: %w", id, provider.ErrNotFound)
	}
}

// requestPayment is a payment request in paygate's terms.
func requestPayment(pr PaymentRequestObject, family provider.Family) provider.Payment {
	p := provider.Payment{
		ID: pr.PaymentRequestID, Reference: pr.ReferenceID, Status: requestStatus(pr.Status),
		Amount: pr.RequestAmount, Currency: pr.Currency, FailureCode: pr.FailureCode,
		ExpiresAt:    parseTime(pr.ChannelProperties.ExpiresAt),
		Instructions: provider.Instructions{Family: family, Channel: pr.ChannelCode},
	}
	if p.Status == provider.PaymentSucceeded {
		// A payment request succeeds only when paid in full (closed
		// amounts); the webhook's captures carry what was paid.
		p.PaidAmount, p.PaidCurrency = pr.RequestAmount, pr.Currency
		if t := parseTime(pr.Updated); !t.IsZero() {
			p.PaidAt = &t
		}
	}
	in := &p.Instructions
	for _, a := range pr.Actions {
		switch a.Descriptor {
		case DescriptorVirtualAccountNumber:
			in.VirtualAccountNumber = a.Value
			in.BankCode = strings.TrimSuffix(pr.ChannelCode, "_VIRTUAL_ACCOUNT")
		case DescriptorPaymentCode:
			in.PaymentCode = a.Value
			in.Retailer = pr.ChannelCode
		case DescriptorWebURL:
			in.CheckoutURL = a.Value
		case DescriptorDeeplinkURL:
			in.DeeplinkURL = a.Value
		}
	}
	if p.Status == provider.PaymentFailed {
		p.FailureReason = PaymentFailureReason(p.FailureCode)
	}
	return p
}

// requestStatus maps a payment request's status.
func requestStatus(s string) provider.PaymentStatus {
	switch s {
	case PRStatusSucceeded:
		return provider.PaymentSucceeded
	case PRStatusFailed, PRStatusCanceled:
		return provider.PaymentFailed
	case PRStatusExpired:
		return provider.PaymentExpired
	default:
		return provider.PaymentPending
	}
}

// sessionPayment is a payment session in paygate's terms.
func sessionPayment(s SessionObject, ch Channel) provider.Payment {
	code := ch.Code
	if code == "" {
		code = HostedChannel
	}
	p := provider.Payment{
		ID: s.PaymentSessionID, Reference: s.ReferenceID, Amount: s.Amount, Currency: s.Currency,
		ExpiresAt:    parseTime(s.ExpiresAt),
		Instructions: provider.Instructions{Family: ch.Family, Channel: code, CheckoutURL: s.PaymentLinkURL},
	}
	switch s.Status {
	case SessionCompleted:
		p.Status = provider.PaymentSucceeded
		p.PaidAmount, p.PaidCurrency = s.Amount, s.Currency
		if t := parseTime(s.Updated); !t.IsZero() {
			p.PaidAt = &t
		}
	case SessionExpired:
		p.Status = provider.PaymentExpired
	case SessionCanceled:
		p.Status = provider.PaymentFailed
		p.FailureCode = SessionCanceled
	default:
		p.Status = provider.PaymentPending
	}
	if p.Status == provider.PaymentFailed {
		p.FailureReason = PaymentFailureReason(p.FailureCode)
	}
	return p
}

// sessionChannel is the channel a session was created for, from the
// channels it allows.
func sessionChannel(s SessionObject) Channel {
	if len(s.AllowedPaymentChannels) == 1 {
		code := s.AllowedPaymentChannels[0]
		for _, c := range Channels {
			if c.Hosted && c.Code == code {
				return c
			}
		}
	}
	return Channel{Family: provider.FamilyCheckout, Hosted: true}
}

// familyOfCode is the family of a payment request's channel code.
func familyOfCode(code string) provider.Family {
	for _, c := range Channels {
		if !c.Hosted && c.Code == code {
			return c.Family
		}
	}
	return ""
}
