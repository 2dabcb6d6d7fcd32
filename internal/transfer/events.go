package transfer

import (
	"time"

	"github.com/google/uuid"
)

// CloudEvents types of this domain; payloads are documented in
// docs/events.md.
const (
	EventSucceeded = "paygate.transfer.succeeded"
	EventReversed  = "paygate.transfer.reversed"
)

// Party is one side of a transfer. BalanceAfter is that party's own
// balance after the transfer: each party's mail shows only its own.
type Party struct {
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	Lastname      string    `json:"lastname"`
	AccountNumber string    `json:"account_number"`
	BalanceAfter  int64     `json:"balance_after"`
}

// Succeeded is the data of paygate.transfer.succeeded: one event per
// transfer, carrying both parties so that consumers can tell them apart.
type Succeeded struct {
	TransferID uuid.UUID `json:"transfer_id"`
	Amount     int64     `json:"amount"`
	Currency   string    `json:"currency"`
	Note       string    `json:"note"`
	Sender     Party     `json:"sender"`
	Recipient  Party     `json:"recipient"`
	CreatedAt  time.Time `json:"created_at"`
}

// Reversed is the data of paygate.transfer.reversed.
type Reversed struct {
	TransferID uuid.UUID `json:"transfer_id"`
	FromUserID uuid.UUID `json:"from_user_id"`
	ToUserID   uuid.UUID `json:"to_user_id"`
	Amount     int64     `json:"amount"`
	Currency   string    `json:"currency"`
	Reason     string    `json:"reason"`
	ReversedAt time.Time `json:"reversed_at"`
}
