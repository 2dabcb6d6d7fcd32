// Package notify is paygate's email consumer. It reads the domain events
// the outbox relay publishes (CloudEvents 1.0, Kafka binary mode) in its
// own consumer group, turns each into the emails it causes (a transfer
// causes two: one to the sender, one to the recipient, each showing only
// that person's own balance) and sends them over SMTP.
//
// Every mail is sent exactly once per (event, recipient, template) as far
// as the SMTP server's acceptance can be observed: a delivery row is
// claimed in PostgreSQL before the SMTP conversation and marked sent after
// the server accepted the mail, so a redelivered event sends nothing again
// and a crash between acceptance and marking resends that one mail, never
// loses it (docs/events.md explains the choice).
//
// Failures never block a partition: an event whose mail failed for a
// transient reason (connection refused, timeout, 4xx reply) is republished
// to the retry topic with its attempt count, a not-before time and the last
// error in headers, and the original record is committed; after
// PAYGATE_NOTIFY_MAX_ATTEMPTS, or at once for a poison record or a 5xx
// rejection, the record goes to the dead-letter topic with the error.
package notify

import (
	"context"
	"errors"
	"fmt"
)

// Domain is the paygate.domain attribute of this package's spans.
const Domain = "email"

// Mail kinds: each has a text and an HTML template, and names the mail in
// the deliveries table, in metrics and in spans.
const (
	TemplateWelcome             = "welcome"
	TemplatePasswordChanged     = "password_changed"
	TemplateTopupPending        = "topup_pending"
	TemplateTopupSucceeded      = "topup_succeeded"
	TemplateTopupExpired        = "topup_expired"
	TemplateTopupFailed         = "topup_failed"
	TemplateTransferSent        = "transfer_sent"
	TemplateTransferReceived    = "transfer_received"
	TemplateWithdrawalRequested = "withdrawal_requested"
	TemplateWithdrawalSucceeded = "withdrawal_succeeded"
	TemplateWithdrawalFailed    = "withdrawal_failed"
)

// Templates lists every mail kind.
var Templates = []string{
	TemplateWelcome, TemplatePasswordChanged, TemplateTopupPending, TemplateTopupSucceeded, TemplateTopupExpired,
	TemplateTopupFailed, TemplateTransferSent, TemplateTransferReceived, TemplateWithdrawalRequested,
	TemplateWithdrawalSucceeded, TemplateWithdrawalFailed,
}

// Message is one rendered email to one recipient.
type Message struct {
	// ID is the Message-ID without angle brackets. It is derived from the
	// event and the template, so a mail sent again after a crash carries
	// the same id and mail clients can fold the two.
	ID       string
	To       string
	Subject  string
	Text     string
	HTML     string
	Template string
}

// Sender sends one message. The consumer declares it; the SMTP
// implementation is SMTPSender. An error is transient unless IsPermanent
// reports otherwise.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// PermanentError marks a failure that sending again will not cure: a 5xx
// reply, an address the server or the client refuses.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a *PermanentError.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is a permanent send failure; every other
// error is transient and retried.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// ErrPoison marks a record that can never be mailed: not a CloudEvent, an
// unknown type, a payload that does not decode or lacks the recipient.
var ErrPoison = errors.New("poison record")

func poison(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPoison, fmt.Sprintf(format, args...))
}
