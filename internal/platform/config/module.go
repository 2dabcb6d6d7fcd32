package config

import "go.uber.org/fx"

// Sections splits the configuration into the parts other modules depend on,
// so that a module asks only for what it uses.
type Sections struct {
	fx.Out

	HTTP     HTTP
	Database Database
	Kafka    Kafka
	Outbox   Outbox
	Auth     Auth
	Money    Money
	SMTP     SMTP
	Notify   Notify
	Payout   Payout
	Provider Provider
}

// Split returns the sections of cfg for injection.
func Split(cfg Config) Sections {
	return Sections{HTTP: cfg.HTTP, Database: cfg.Database, Kafka: cfg.Kafka, Outbox: cfg.Outbox, Auth: cfg.Auth, Money: cfg.Money,
		SMTP: cfg.SMTP, Notify: cfg.Notify, Payout: cfg.Payout, Provider: cfg.Provider}
}

// Module provides the configuration sections from an already loaded Config.
// Loading happens before fx starts so that configuration errors are reported
// on their own, not wrapped in dependency-injection noise.
func Module(cfg Config) fx.Option {
	return fx.Module("config",
		fx.Supply(cfg),
		fx.Provide(Split),
	)
}
