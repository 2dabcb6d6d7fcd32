package config

import (
	"net/url"
	"time"
)

// The payment providers PAYGATE_PROVIDER may name.
const (
	ProviderSandbox = "sandbox"
	ProviderXendit  = "xendit"
)

// The sandbox's development credentials: what `paygate sandbox` and `make
// run` use when none are given. They open nothing but a local sandbox;
// prod refuses to start without real ones.
const (
	SandboxDevSecretKey     = "xnd_development_paygate_sandbox"
	SandboxDevCallbackToken = "paygate-sandbox-callback-token"
)

// Default provider API base URLs.
const (
	SandboxDefaultURL = "http://127.0.0.1:8090"
	XenditDefaultURL  = "https://api.xendit.co"
)

// Provider holds the settings of the payment provider that collects
// top-ups and makes payouts, and of the jobs that keep paygate's books in
// step with it (the poller and the reconciliation).
type Provider struct {
	Name              string        `envconfig:"PROVIDER" default:"sandbox" desc:"Payment provider: sandbox (the local provider of paygate sandbox, Xendit's API) or xendit."`
	URL               string        `envconfig:"PROVIDER_URL" default:"" desc:"Provider API base URL; http://127.0.0.1:8090 for sandbox and https://api.xendit.co for xendit when empty."`
	SecretKey         string        `envconfig:"PROVIDER_SECRET_KEY" default:"" desc:"Secret API key (HTTP basic auth user name). Required, except in dev with the sandbox, which uses the sandbox's development key. Secret."`
	CallbackToken     string        `envconfig:"PROVIDER_CALLBACK_TOKEN" default:"" desc:"Callback verification token the provider sends as x-callback-token. Required, except in dev with the sandbox, which uses the sandbox's. Secret."`
	Timeout           time.Duration `envconfig:"PROVIDER_TIMEOUT" default:"10s" desc:"Timeout of one provider API call."`
	MaxAttempts       int           `envconfig:"PROVIDER_MAX_ATTEMPTS" default:"3" desc:"Attempts of a provider call whose outcome is unknown; creates are retried only under their idempotency key."`
	SuccessReturnURL  string        `envconfig:"PROVIDER_SUCCESS_RETURN_URL" default:"https://paygate.local/topups/done" desc:"Where hosted checkout sends the customer after paying."`
	FailureReturnURL  string        `envconfig:"PROVIDER_FAILURE_RETURN_URL" default:"https://paygate.local/topups/failed" desc:"Where hosted checkout sends the customer after a failed or cancelled payment."`
	TopupExpiry       time.Duration `envconfig:"TOPUP_EXPIRY" default:"24h" desc:"How long a pending top-up waits for the customer's payment."`
	PollInterval      time.Duration `envconfig:"PROVIDER_POLL_INTERVAL" default:"1m" desc:"How often pending top-ups and payouts are checked with the provider, by one replica at a time."`
	PollAfter         time.Duration `envconfig:"PROVIDER_POLL_AFTER" default:"5m" desc:"Age after which a pending top-up or payout is asked about, in case its callback was lost."`
	ExpiryGrace       time.Duration `envconfig:"PROVIDER_EXPIRY_GRACE" default:"10m" desc:"After a top-up's expiry, how long the provider may still report it pending before paygate expires it itself."`
	ReconcileInterval time.Duration `envconfig:"RECONCILE_INTERVAL" default:"1h" desc:"How often the provider's settled transactions are reconciled with the ledger (feeds the unreconciled gauge)."`
	ReconcileWindow   time.Duration `envconfig:"RECONCILE_WINDOW" default:"48h" desc:"The period the scheduled reconciliation covers (at most 744h). It ends PAYGATE_PROVIDER_POLL_AFTER plus PAYGATE_PROVIDER_POLL_INTERVAL ago: by then paygate has booked what the provider settled."`
}

// BaseURL is the provider's API base URL: PROVIDER_URL or the provider's
// default.
func (p Provider) BaseURL() string {
	if p.URL != "" {
		return p.URL
	}
	if p.Name == ProviderXendit {
		return XenditDefaultURL
	}
	return SandboxDefaultURL
}

// withDevCredentials fills in the sandbox's development credentials for
// a dev deployment against the sandbox that sets none.
func (p *Provider) withDevCredentials(env string) {
	if env != "dev" || p.Name != ProviderSandbox {
		return
	}
	if p.SecretKey == "" {
		p.SecretKey = SandboxDevSecretKey
	}
	if p.CallbackToken == "" {
		p.CallbackToken = SandboxDevCallbackToken
	}
}

func (p *Provider) validate() []VarError {
	var out []VarError
	bad := func(name, reason string) { out = append(out, VarError{Var: Prefix + "_" + name, Reason: reason}) }
	if p.Name != ProviderSandbox && p.Name != ProviderXendit {
		bad("PROVIDER", "must be sandbox or xendit")
	}
	if u, err := url.Parse(p.BaseURL()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("PROVIDER_URL", "must be an http:// or https:// URL")
	}
	// The values are never echoed: they are secrets.
	if p.SecretKey == "" {
		bad("PROVIDER_SECRET_KEY", "is required (dev with the sandbox has a default)")
	}
	if p.CallbackToken == "" {
		bad("PROVIDER_CALLBACK_TOKEN", "is required (dev with the sandbox has a default)")
	}
	if p.Timeout <= 0 {
		bad("PROVIDER_TIMEOUT", "must be positive")
	}
	if p.MaxAttempts < 1 {
		bad("PROVIDER_MAX_ATTEMPTS", "must be at least 1")
	}
	if p.TopupExpiry < time.Minute {
		bad("TOPUP_EXPIRY", "must be at least 1m")
	}
	if p.PollInterval <= 0 {
		bad("PROVIDER_POLL_INTERVAL", "must be positive")
	}
	if p.PollAfter <= 0 {
		bad("PROVIDER_POLL_AFTER", "must be positive")
	}
	if p.ExpiryGrace < 0 {
		bad("PROVIDER_EXPIRY_GRACE", "must not be negative")
	}
	if p.ReconcileInterval <= 0 {
		bad("RECONCILE_INTERVAL", "must be positive")
	}
	// One reconciliation covers at most 31 days (reconcile.MaxWindow; the
	// config does not import the domain).
	if p.ReconcileWindow <= 0 || p.ReconcileWindow > 31*24*time.Hour {
		bad("RECONCILE_WINDOW", "must be positive and at most 744h")
	}
	return out
}
