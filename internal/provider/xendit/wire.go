package xendit

import "encoding/json"

// This file holds Xendit's wire format: the JSON bodies of the endpoints
// and webhooks the adapter uses, with Xendit's field names. Package
// sandbox serves the same shapes, so both sides of a test speak one format.

// The endpoints the adapter calls, relative to the base URL.
const (
	PathPaymentRequests = "/v3/payment_requests"
	PathSessions        = "/sessions"
	PathPayouts         = "/v2/payouts"
	PathTransactions    = "/transactions"
)

// The headers the adapter sends and the webhooks carry.
const (
	// HeaderIdempotencyKey is the create's idempotency header. HTTP
	// header names are case-insensitive: payouts v2 document it as
	// Idempotency-key, payment requests as idempotency-key.
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderAPIVersion selects the version of the Payments API v3.
	HeaderAPIVersion = "Api-Version"
	// HeaderCallbackToken carries the webhook verification token.
	HeaderCallbackToken = "X-Callback-Token"
)

// PaymentsAPIVersion is the version of the Payments API v3 the adapter
// speaks.
const PaymentsAPIVersion = "2024-11-11"

// Payment request statuses (Payments API v3).
const (
	PRStatusRequiresAction    = "REQUIRES_ACTION"
	PRStatusAcceptingPayments = "ACCEPTING_PAYMENTS"
	PRStatusPending           = "PENDING"
	PRStatusAuthorized        = "AUTHORIZED"
	PRStatusSucceeded         = "SUCCEEDED"
	PRStatusFailed            = "FAILED"
	PRStatusCanceled          = "CANCELED"
	PRStatusExpired           = "EXPIRED"
)

// Payment session statuses.
const (
	SessionActive    = "ACTIVE"
	SessionCompleted = "COMPLETED"
	SessionExpired   = "EXPIRED"
	SessionCanceled  = "CANCELED"
)

// Payout statuses (payouts v2).
const (
	PayoutStatusAccepted  = "ACCEPTED"
	PayoutStatusRequested = "REQUESTED"
	PayoutStatusSucceeded = "SUCCEEDED"
	PayoutStatusFailed    = "FAILED"
	PayoutStatusCancelled = "CANCELLED"
	PayoutStatusReversed  = "REVERSED"
)

// Webhook events the verifier understands.
const (
	EventPaymentCapture          = "payment.capture"
	EventPaymentFailure          = "payment.failure"
	EventPaymentFailed           = "payment.failed"
	EventPaymentRequestExpiry    = "payment_request.expiry"
	EventPaymentSessionCompleted = "payment_session.completed"
	EventPaymentSessionExpired   = "payment_session.expired"
	EventPayoutSucceeded         = "payout.succeeded"
	EventPayoutFailed            = "payout.failed"
)

// Action types and descriptors of a payment request's actions.
const (
	ActionPresentToCustomer = "PRESENT_TO_CUSTOMER"
	ActionRedirectCustomer  = "REDIRECT_CUSTOMER"

	DescriptorVirtualAccountNumber = "VIRTUAL_ACCOUNT_NUMBER"
	DescriptorPaymentCode          = "PAYMENT_CODE"
	DescriptorQRString             = "QR_STRING"
	DescriptorWebURL               = "WEB_URL"
	DescriptorDeeplinkURL          = "DEEPLINK_URL"
)

// ChannelProperties are the channel_properties of a payment request: the
// part a channel needs.
type ChannelProperties struct {
	DisplayName      string `json:"display_name,omitempty"` // virtual accounts
	PayerName        string `json:"payer_name,omitempty"`   // retail outlets
	ExpiresAt        string `json:"expires_at,omitempty"`
	SuccessReturnURL string `json:"success_return_url,omitempty"`
	FailureReturnURL string `json:"failure_return_url,omitempty"`
}

// CreatePaymentRequestBody is the body of POST /v3/payment_requests.
type CreatePaymentRequestBody struct {
	ReferenceID       string            `json:"reference_id"`
	Type              string            `json:"type"`
	Country           string            `json:"country"`
	Currency          string            `json:"currency"`
	RequestAmount     int64             `json:"request_amount"`
	CaptureMethod     string            `json:"capture_method"`
	ChannelCode       string            `json:"channel_code"`
	ChannelProperties ChannelProperties `json:"channel_properties"`
	Description       string            `json:"description,omitempty"`
}

// Action is one step the customer takes to pay.
type Action struct {
	Type       string `json:"type"`
	Descriptor string `json:"descriptor"`
	Value      string `json:"value"`
}

// PaymentRequestObject is a payment request as Xendit returns it.
type PaymentRequestObject struct {
	PaymentRequestID  string            `json:"payment_request_id"`
	ReferenceID       string            `json:"reference_id"`
	BusinessID        string            `json:"business_id,omitempty"`
	Type              string            `json:"type"`
	Country           string            `json:"country"`
	Currency          string            `json:"currency"`
	RequestAmount     int64             `json:"request_amount"`
	CaptureMethod     string            `json:"capture_method"`
	ChannelCode       string            `json:"channel_code"`
	ChannelProperties ChannelProperties `json:"channel_properties"`
	Actions           []Action          `json:"actions,omitempty"`
	Status            string            `json:"status"`
	FailureCode       string            `json:"failure_code,omitempty"`
	Description       string            `json:"description,omitempty"`
	Created           string            `json:"created"`
	Updated           string            `json:"updated"`
}

// SessionCustomer is the customer of a payment session.
type SessionCustomer struct {
	ReferenceID      string           `json:"reference_id"`
	Type             string           `json:"type"`
	IndividualDetail IndividualDetail `json:"individual_detail"`
}

// IndividualDetail names a customer.
type IndividualDetail struct {
	GivenNames string `json:"given_names"`
}

// CreateSessionBody is the body of POST /sessions (hosted checkout).
type CreateSessionBody struct {
	ReferenceID            string          `json:"reference_id"`
	SessionType            string          `json:"session_type"`
	Mode                   string          `json:"mode"`
	Amount                 int64           `json:"amount"`
	Currency               string          `json:"currency"`
	Country                string          `json:"country"`
	Customer               SessionCustomer `json:"customer"`
	AllowedPaymentChannels []string        `json:"allowed_payment_channels,omitempty"`
	ExpiresAt              string          `json:"expires_at,omitempty"`
	SuccessReturnURL       string          `json:"success_return_url,omitempty"`
	CancelReturnURL        string          `json:"cancel_return_url,omitempty"`
	Description            string          `json:"description,omitempty"`
}

// SessionObject is a payment session as Xendit returns it, and the data
// of its webhooks.
type SessionObject struct {
	PaymentSessionID       string   `json:"payment_session_id"`
	ReferenceID            string   `json:"reference_id"`
	BusinessID             string   `json:"business_id,omitempty"`
	SessionType            string   `json:"session_type"`
	Mode                   string   `json:"mode"`
	Amount                 int64    `json:"amount"`
	Currency               string   `json:"currency"`
	Country                string   `json:"country"`
	AllowedPaymentChannels []string `json:"allowed_payment_channels,omitempty"`
	ExpiresAt              string   `json:"expires_at,omitempty"`
	Status                 string   `json:"status"`
	PaymentLinkURL         string   `json:"payment_link_url"`
	PaymentRequestID       string   `json:"payment_request_id,omitempty"`
	PaymentID              string   `json:"payment_id,omitempty"`
	Created                string   `json:"created"`
	Updated                string   `json:"updated"`
}

// Capture is one capture of a payment.
type Capture struct {
	CaptureID        string `json:"capture_id"`
	CaptureAmount    int64  `json:"capture_amount"`
	CaptureTimestamp string `json:"capture_timestamp"`
}

// PaymentObject is the data of a payment webhook (payment.capture,
// payment.failure).
type PaymentObject struct {
	PaymentID        string    `json:"payment_id"`
	PaymentRequestID string    `json:"payment_request_id"`
	ReferenceID      string    `json:"reference_id"`
	BusinessID       string    `json:"business_id,omitempty"`
	Status           string    `json:"status"`
	RequestAmount    int64     `json:"request_amount"`
	Currency         string    `json:"currency"`
	Country          string    `json:"country,omitempty"`
	ChannelCode      string    `json:"channel_code"`
	Type             string    `json:"type,omitempty"`
	Captures         []Capture `json:"captures,omitempty"`
	FailureCode      string    `json:"failure_code,omitempty"`
	Created          string    `json:"created"`
	Updated          string    `json:"updated"`
}

// PayoutChannelProperties is the destination of a payout.
type PayoutChannelProperties struct {
	AccountNumber     string `json:"account_number"`
	AccountHolderName string `json:"account_holder_name"`
}

// CreatePayoutBody is the body of POST /v2/payouts.
type CreatePayoutBody struct {
	ReferenceID       string                  `json:"reference_id"`
	ChannelCode       string                  `json:"channel_code"`
	ChannelProperties PayoutChannelProperties `json:"channel_properties"`
	Amount            int64                   `json:"amount"`
	Description       string                  `json:"description,omitempty"`
	Currency          string                  `json:"currency"`
}

// PayoutObject is a payout as Xendit returns it, and the data of its
// webhooks.
type PayoutObject struct {
	ID                   string                  `json:"id"`
	ReferenceID          string                  `json:"reference_id"`
	BusinessID           string                  `json:"business_id,omitempty"`
	ChannelCode          string                  `json:"channel_code"`
	ChannelProperties    PayoutChannelProperties `json:"channel_properties"`
	Amount               int64                   `json:"amount"`
	Description          string                  `json:"description,omitempty"`
	Currency             string                  `json:"currency"`
	Status               string                  `json:"status"`
	FailureCode          string                  `json:"failure_code,omitempty"`
	Created              string                  `json:"created"`
	Updated              string                  `json:"updated"`
	EstimatedArrivalTime string                  `json:"estimated_arrival_time,omitempty"`
}

// Transaction is one entry of GET /transactions.
type Transaction struct {
	ID               string `json:"id"`
	ProductID        string `json:"product_id"`
	Type             string `json:"type"` // PAYMENT, DISBURSEMENT
	Status           string `json:"status"`
	ChannelCategory  string `json:"channel_category,omitempty"`
	ChannelCode      string `json:"channel_code,omitempty"`
	ReferenceID      string `json:"reference_id"`
	Currency         string `json:"currency"`
	Amount           int64  `json:"amount"`
	Cashflow         string `json:"cashflow"` // MONEY_IN, MONEY_OUT
	SettlementStatus string `json:"settlement_status,omitempty"`
	Created          string `json:"created"`
	Updated          string `json:"updated"`
}

// Link is a pagination link of a list.
type Link struct {
	Href   string `json:"href"`
	Rel    string `json:"rel"`
	Method string `json:"method"`
}

// TransactionList is the answer of GET /transactions.
type TransactionList struct {
	HasMore bool          `json:"has_more"`
	Data    []Transaction `json:"data"`
	Links   []Link        `json:"links,omitempty"`
}

// Transaction types and statuses of GET /transactions.
const (
	TransactionTypePayment      = "PAYMENT"
	TransactionTypeDisbursement = "DISBURSEMENT"
	TransactionStatusSuccess    = "SUCCESS"
)

// Webhook is the envelope of every webhook the adapter handles.
type Webhook struct {
	Event      string          `json:"event"`
	BusinessID string          `json:"business_id,omitempty"`
	Created    string          `json:"created"`
	Data       json.RawMessage `json:"data"`
}

// ErrorBody is Xendit's error answer.
type ErrorBody struct {
	ErrorCode string `json:"error_code"`
	Message   string `json:"message"`
}
