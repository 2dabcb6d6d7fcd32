package config

import "time"

// Payout holds the settings of the payout processor and of the bank
// simulator that stands in for a real bank adapter.
type Payout struct {
	Enabled        bool          `envconfig:"PAYOUT_ENABLED" default:"true" desc:"Run the payout processor in this process."`
	Group          string        `envconfig:"PAYOUT_GROUP" default:"paygate-payouts" desc:"Consumer group of the payout processor."`
	Provider       string        `envconfig:"PAYOUT_PROVIDER" default:"simulator" desc:"Payout provider; only the bank simulator ships with paygate."`
	SimLatency     time.Duration `envconfig:"PAYOUT_SIM_LATENCY" default:"300ms" desc:"Simulated bank latency per payout."`
	SimFailureRate float64       `envconfig:"PAYOUT_SIM_FAILURE_RATIO" default:"0.1" desc:"Share of payouts the bank simulator refuses (0 to 1), so failed withdrawals and released holds can be seen."`
}

func (p *Payout) validate() []VarError {
	var out []VarError
	if p.Group == "" {
		out = append(out, VarError{Var: Prefix + "_PAYOUT_GROUP", Reason: "must not be empty"})
	}
	if p.Provider != "simulator" {
		out = append(out, VarError{Var: Prefix + "_PAYOUT_PROVIDER", Reason: "must be simulator"})
	}
	if p.SimLatency < 0 {
		out = append(out, VarError{Var: Prefix + "_PAYOUT_SIM_LATENCY", Reason: "must not be negative"})
	}
	if p.SimFailureRate < 0 || p.SimFailureRate > 1 {
		out = append(out, VarError{Var: Prefix + "_PAYOUT_SIM_FAILURE_RATIO", Reason: "must be between 0 and 1"})
	}
	return out
}
