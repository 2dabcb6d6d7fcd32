package config

import "time"

// Payout holds the settings of the payout processor, the consumer group
// that pays withdrawals out through the payment provider.
type Payout struct {
	Enabled      bool          `envconfig:"PAYOUT_ENABLED" default:"true" desc:"Run the payout processor in this process."`
	Group        string        `envconfig:"PAYOUT_GROUP" default:"paygate-payouts" desc:"Consumer group of the payout processor."`
	RetryTopic   string        `envconfig:"PAYOUT_RETRY_TOPIC" default:"paygate.payout.retry.v1" desc:"Topic of withdrawal events whose payout failed for now (the provider or the database away), waiting for their next attempt."`
	DLQTopic     string        `envconfig:"PAYOUT_DLQ_TOPIC" default:"paygate.payout.dlq.v1" desc:"Dead-letter topic of the payout processor: events that cannot be read or failed every attempt; listed and replayed by GET /v1/admin/dead-letters."`
	MaxAttempts  int           `envconfig:"PAYOUT_MAX_ATTEMPTS" default:"8" desc:"Deliveries of a withdrawal event (each tried 3 times in place) before it is dead-lettered."`
	RetryBackoff time.Duration `envconfig:"PAYOUT_RETRY_BACKOFF" default:"10s" desc:"Wait before a failed withdrawal event's second delivery, doubled for each further one up to 10m."`
}

// MaxPayoutRetryBackoff caps the wait between deliveries of a withdrawal
// event.
const MaxPayoutRetryBackoff = 10 * time.Minute

func (p *Payout) validate() []VarError {
	var out []VarError
	bad := func(name, reason string) { out = append(out, VarError{Var: Prefix + "_" + name, Reason: reason}) }
	if p.Group == "" {
		bad("PAYOUT_GROUP", "must not be empty")
	}
	if p.RetryTopic == "" || p.RetryTopic == p.DLQTopic {
		bad("PAYOUT_RETRY_TOPIC", "must be set and differ from PAYGATE_PAYOUT_DLQ_TOPIC")
	}
	if p.DLQTopic == "" {
		bad("PAYOUT_DLQ_TOPIC", "must not be empty")
	}
	if p.MaxAttempts < 1 {
		bad("PAYOUT_MAX_ATTEMPTS", "must be at least 1")
	}
	if p.RetryBackoff <= 0 || p.RetryBackoff > MaxPayoutRetryBackoff {
		bad("PAYOUT_RETRY_BACKOFF", "must be positive and at most 10m")
	}
	return out
}
