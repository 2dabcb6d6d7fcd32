package withdraw

import (
	"time"

	"github.com/google/uuid"
)

// CloudEvents types of this domain; payloads are documented in
// docs/events.md.
const (
	EventRequested = "paygate.withdrawal.requested"
	EventSucceeded = "paygate.withdrawal.succeeded"
	EventFailed    = "paygate.withdrawal.failed"
)

// Event is the data of every withdrawal event; Status tells which. The
// bank account number is never in an event, only its last four digits.
type Event struct {
	WithdrawalID     uuid.UUID  `json:"withdrawal_id"`
	UserID           uuid.UUID  `json:"user_id"`
	Email            string     `json:"email"`
	Firstname        string     `json:"firstname"`
	Amount           int64      `json:"amount"`
	Currency         string     `json:"currency"`
	Status           string     `json:"status"`
	BankCode         string     `json:"bank_code"`
	BankAccountLast4 string     `json:"bank_account_last4"`
	BankAccountName  string     `json:"bank_account_name"`
	AvailableAfter   int64      `json:"available_after"`
	FailureReason    string     `json:"failure_reason,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	SettledAt        *time.Time `json:"settled_at,omitempty"`
}
