package topup

import (
	"time"

	"github.com/google/uuid"
)

// CloudEvents types of this domain; payloads are documented in
// docs/events.md.
const (
	EventSucceeded = "paygate.topup.succeeded"
	EventReversed  = "paygate.topup.reversed"
)

// Succeeded is the data of paygate.topup.succeeded.
type Succeeded struct {
	TopUpID       uuid.UUID `json:"topup_id"`
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	AccountNumber string    `json:"account_number"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Method        string    `json:"method"`
	Reference     string    `json:"reference"`
	BalanceAfter  int64     `json:"balance_after"`
	CreatedAt     time.Time `json:"created_at"`
}

// Reversed is the data of paygate.topup.reversed.
type Reversed struct {
	TopUpID      uuid.UUID `json:"topup_id"`
	UserID       uuid.UUID `json:"user_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	BalanceAfter int64     `json:"balance_after"`
	Reason       string    `json:"reason"`
	ReversedAt   time.Time `json:"reversed_at"`
}
