package config

// Payout holds the settings of the payout processor, the consumer group
// that pays withdrawals out through the payment provider.
type Payout struct {
	Enabled bool   `envconfig:"PAYOUT_ENABLED" default:"true" desc:"Run the payout processor in this process."`
	Group   string `envconfig:"PAYOUT_GROUP" default:"paygate-payouts" desc:"Consumer group of the payout processor."`
}

func (p *Payout) validate() []VarError {
	var out []VarError
	if p.Group == "" {
		out = append(out, VarError{Var: Prefix + "_PAYOUT_GROUP", Reason: "must not be empty"})
	}
	return out
}
