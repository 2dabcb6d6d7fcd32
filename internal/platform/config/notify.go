package config

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// MaxNotifyRetryBackoff caps the doubling pause between two delivery
// attempts of an email.
const MaxNotifyRetryBackoff = 5 * time.Minute

// SMTP holds the settings of the SMTP server paygate sends email through.
type SMTP struct {
	Host      string        `envconfig:"SMTP_HOST" default:"127.0.0.1" desc:"Host name of the SMTP server email is sent through (also the name checked in its TLS certificate)."`
	Port      int           `envconfig:"SMTP_PORT" default:"1025" desc:"Port of the SMTP server (usually 587 with starttls, 465 with tls)."`
	TLS       string        `envconfig:"SMTP_TLS" default:"none" desc:"Transport security: none, starttls (STARTTLS required) or tls (implicit TLS from the first byte)."`
	TLSCAFile string        `envconfig:"SMTP_TLS_CA_FILE" default:"" desc:"PEM file of CA certificates that sign the SMTP server's certificate; empty trusts the system roots."`
	Username  string        `envconfig:"SMTP_USERNAME" default:"" desc:"SMTP AUTH user name; empty sends without authentication. Secret."`
	Password  string        `envconfig:"SMTP_PASSWORD" default:"" desc:"SMTP AUTH password; set it from a secret. Secret."`
	Timeout   time.Duration `envconfig:"SMTP_TIMEOUT" default:"10s" desc:"Timeout of one SMTP conversation: connecting, and every command after it."`
	From      string        `envconfig:"MAIL_FROM" default:"paygate <no-reply@paygate.local>" desc:"From address of every email (RFC 5322, with or without a display name)."`
}

// Notify holds the settings of the email consumer.
type Notify struct {
	Enabled      bool          `envconfig:"NOTIFY_ENABLED" default:"true" desc:"Run the email consumer in this process."`
	Group        string        `envconfig:"NOTIFY_GROUP" default:"paygate-email" desc:"Kafka consumer group of the email consumer."`
	RetryTopic   string        `envconfig:"NOTIFY_RETRY_TOPIC" default:"paygate.notify.retry.v1" desc:"Topic where events whose email failed for a transient reason wait for their next attempt."`
	DLQTopic     string        `envconfig:"NOTIFY_DLQ_TOPIC" default:"paygate.notify.dlq.v1" desc:"Dead-letter topic: events that cannot be mailed (poison, rejected, or out of attempts), with the error in a header."`
	MaxAttempts  int           `envconfig:"NOTIFY_MAX_ATTEMPTS" default:"5" desc:"Delivery attempts of an event's email before it is dead-lettered."`
	RetryBackoff time.Duration `envconfig:"NOTIFY_RETRY_BACKOFF" default:"2s" desc:"Pause before the second delivery attempt; it doubles for each further attempt, up to 5m."`
	// DeliveryRetention bounds notify_deliveries: a sent record is what keeps
	// a redelivered event from mailing twice, so it must outlive every
	// record a consumer could still read (the topics' retention, 7 days in
	// k8s/strimzi) with a margin.
	DeliveryRetention time.Duration `envconfig:"NOTIFY_DELIVERY_RETENTION" default:"336h" desc:"How long records of sent mails are kept (they stop redelivered events from mailing twice); keep it above the Kafka topics' retention. At least 24h."`
}

// validateNotify checks the SMTP and Notify sections, and the topics of the
// email consumer against the domain topics it reads. Whether
// PAYGATE_SMTP_TLS_CA_FILE exists and parses is checked when the sender is
// built (notify.NewSMTPSender), which names the variable as well.
func (c *Config) validateNotify() []VarError {
	var out []VarError
	bad := func(name, format string, args ...any) {
		out = append(out, VarError{Var: Prefix + "_" + name, Reason: fmt.Sprintf(format, args...)})
	}
	s, n := c.SMTP, c.Notify
	if strings.TrimSpace(s.Host) == "" {
		bad("SMTP_HOST", "must not be empty")
	}
	if s.Port < 1 || s.Port > 65535 {
		bad("SMTP_PORT", "must be between 1 and 65535")
	}
	switch s.TLS {
	case "none", "starttls", "tls":
	default:
		bad("SMTP_TLS", "must be none, starttls or tls, got %q", s.TLS)
	}
	if s.TLSCAFile != "" && s.TLS == "none" {
		// A CA without TLS is a half-done setup that would otherwise
		// silently send in clear.
		bad("SMTP_TLS_CA_FILE", "is set but PAYGATE_SMTP_TLS is none: it needs starttls or tls")
	}
	// Credentials are secrets: only the kind of problem is reported.
	if (s.Username == "") != (s.Password == "") {
		bad("SMTP_PASSWORD", "PAYGATE_SMTP_USERNAME and PAYGATE_SMTP_PASSWORD go together")
	}
	if s.Username != "" && s.TLS == "none" {
		bad("SMTP_TLS", "must be starttls or tls when PAYGATE_SMTP_USERNAME is set: credentials are never sent in clear")
	}
	if s.Timeout <= 0 {
		bad("SMTP_TIMEOUT", "must be positive")
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		bad("MAIL_FROM", "must be an email address such as 'paygate <no-reply@example.com>'")
	}
	if strings.TrimSpace(n.Group) == "" {
		bad("NOTIFY_GROUP", "must not be empty")
	}
	domain := map[string]bool{c.Kafka.TopicAuth: true, c.Kafka.TopicTopup: true, c.Kafka.TopicTransfer: true, c.Kafka.TopicWithdraw: true}
	switch {
	case n.RetryTopic == "":
		bad("NOTIFY_RETRY_TOPIC", "must not be empty")
	case domain[n.RetryTopic]:
		bad("NOTIFY_RETRY_TOPIC", "must differ from the domain topics")
	}
	switch {
	case n.DLQTopic == "":
		bad("NOTIFY_DLQ_TOPIC", "must not be empty")
	case domain[n.DLQTopic] || n.DLQTopic == n.RetryTopic:
		bad("NOTIFY_DLQ_TOPIC", "must differ from the domain topics and PAYGATE_NOTIFY_RETRY_TOPIC")
	}
	if n.MaxAttempts < 1 || n.MaxAttempts > 100 {
		bad("NOTIFY_MAX_ATTEMPTS", "must be between 1 and 100")
	}
	if n.DeliveryRetention < 24*time.Hour {
		bad("NOTIFY_DELIVERY_RETENTION", "must be at least 24h")
	}
	if n.RetryBackoff <= 0 || n.RetryBackoff > MaxNotifyRetryBackoff {
		bad("NOTIFY_RETRY_BACKOFF", "must be positive and at most %s", MaxNotifyRetryBackoff)
	}
	return out
}
