package auth

import (
	"time"

	"github.com/google/uuid"
)

// CloudEvents types this domain publishes. Their payloads are documented
// in docs/events.md.
const (
	EventUserRegistered  = "paygate.user.registered"
	EventPasswordChanged = "paygate.user.password_changed"
)

// UserRegistered is the data of paygate.user.registered.
type UserRegistered struct {
	UserID        uuid.UUID `json:"user_id"`
	Email         string    `json:"email"`
	Firstname     string    `json:"firstname"`
	Lastname      string    `json:"lastname"`
	AccountNumber string    `json:"account_number"`
	Role          string    `json:"role"`
	RegisteredAt  time.Time `json:"registered_at"`
}

// PasswordChanged is the data of paygate.user.password_changed.
type PasswordChanged struct {
	UserID    uuid.UUID `json:"user_id"`
	Email     string    `json:"email"`
	Firstname string    `json:"firstname"`
	ChangedAt time.Time `json:"changed_at"`
}
