package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// validate checks the rules envconfig's types cannot express. Each problem
// names the variable to fix.
func (c *Config) validate() []VarError {
	var out []VarError
	bad := func(name, format string, args ...any) {
		out = append(out, VarError{Var: Prefix + "_" + name, Reason: fmt.Sprintf(format, args...)})
	}
	if c.Env != "dev" && c.Env != "prod" {
		bad("ENV", "must be dev or prod, got %q", c.Env)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if _, port, err := net.SplitHostPort(c.HTTP.MetricsAddr); err != nil {
		bad("METRICS_ADDR", "%q is not host:port", c.HTTP.MetricsAddr)
	} else if _, hport, herr := net.SplitHostPort(c.HTTP.Addr); herr == nil && port == hport && port != "0" {
		bad("METRICS_ADDR", "must not use the port of PAYGATE_HTTP_ADDR (%s): metrics stay off the public listener", port)
	}
	if c.HTTP.MaxBodyBytes <= 0 {
		bad("HTTP_MAX_BODY_BYTES", "must be positive")
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT", "must be positive")
	}
	if c.HTTP.DrainDelay < 0 {
		bad("SHUTDOWN_DRAIN_DELAY", "must not be negative")
	}
	if c.Database.URL != "" {
		if u, err := url.Parse(c.Database.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// The value is not echoed: it may carry a password.
			bad("DATABASE_URL", "must be a postgres:// or postgresql:// URL")
		}
	}
	if c.Database.MaxConns < 1 {
		bad("DATABASE_MAX_CONNS", "must be at least 1")
	}
	if c.Database.MinConns < 0 || (c.Database.MaxConns >= 1 && c.Database.MinConns > c.Database.MaxConns) {
		bad("DATABASE_MIN_CONNS", "must be between 0 and PAYGATE_DATABASE_MAX_CONNS")
	}
	if c.Database.TxMaxAttempts < 1 {
		bad("DATABASE_TX_MAX_ATTEMPTS", "must be at least 1")
	}
	for _, b := range c.Kafka.Brokers {
		if _, _, err := net.SplitHostPort(strings.TrimSpace(b)); err != nil {
			bad("KAFKA_BROKERS", "%q is not host:port", b)
			break
		}
	}
	if c.Kafka.TopicPartitions < 1 {
		bad("KAFKA_TOPIC_PARTITIONS", "must be at least 1")
	}
	if c.Kafka.TopicReplication == 0 || c.Kafka.TopicReplication < -1 {
		bad("KAFKA_TOPIC_REPLICATION", "must be -1 (broker default) or at least 1")
	}
	if c.Kafka.ConsumerRetryBackoff <= 0 {
		bad("KAFKA_CONSUMER_RETRY_BACKOFF", "must be positive")
	}
	if c.Kafka.ConsumerRetryMaxBackoff < c.Kafka.ConsumerRetryBackoff {
		bad("KAFKA_CONSUMER_RETRY_MAX_BACKOFF", "must be at least PAYGATE_KAFKA_CONSUMER_RETRY_BACKOFF")
	}
	if c.Outbox.BatchSize < 1 || c.Outbox.BatchSize > 10000 {
		bad("OUTBOX_BATCH_SIZE", "must be between 1 and 10000")
	}
	if c.Outbox.PollInterval <= 0 {
		bad("OUTBOX_POLL_INTERVAL", "must be positive")
	}
	if c.Outbox.Linger < 0 || c.Outbox.Linger > time.Second {
		bad("OUTBOX_LINGER", "must be between 0 and 1s")
	}
	for name, topic := range map[string]string{"KAFKA_TOPIC_AUTH": c.Kafka.TopicAuth, "KAFKA_TOPIC_TOPUP": c.Kafka.TopicTopup,
		"KAFKA_TOPIC_TRANSFER": c.Kafka.TopicTransfer, "KAFKA_TOPIC_WITHDRAW": c.Kafka.TopicWithdraw} {
		if topic == "" {
			bad(name, "must not be empty")
		}
	}
	out = append(out, c.Kafka.validateSecurity()...)
	out = append(out, c.Auth.validate()...)
	out = append(out, c.Money.validate()...)
	out = append(out, c.validateNotify()...)
	out = append(out, c.Payout.validate()...)
	out = append(out, c.Provider.validate()...)
	if c.Outbox.Source == "" {
		bad("EVENT_SOURCE", "must not be empty")
	}
	return out
}

func (a *Auth) validate() []VarError {
	var out []VarError
	bad := func(name, format string, args ...any) {
		out = append(out, VarError{Var: Prefix + "_" + name, Reason: fmt.Sprintf(format, args...)})
	}
	if a.JWTPrivateKey != "" {
		if _, err := ParseEd25519PrivateKey(a.JWTPrivateKey); err != nil {
			// The value is a secret: only the kind of problem is reported.
			bad("JWT_PRIVATE_KEY", "%v", err)
		}
	}
	if a.JWTKeyID == "" {
		bad("JWT_KEY_ID", "must not be empty")
	}
	if _, err := ParseVerifyKeys(a.JWTVerifyKeys); err != nil {
		bad("JWT_VERIFY_KEYS", "%v", err)
	}
	if a.AccessTTL <= 0 || a.AccessTTL > 24*time.Hour {
		bad("ACCESS_TOKEN_TTL", "must be between 1s and 24h")
	}
	if a.RefreshTTL <= a.AccessTTL {
		bad("REFRESH_TOKEN_TTL", "must be longer than PAYGATE_ACCESS_TOKEN_TTL")
	}
	if a.PasswordMinLength < 8 {
		bad("PASSWORD_MIN_LENGTH", "must be at least 8")
	}
	if a.PasswordMaxLength < a.PasswordMinLength || a.PasswordMaxLength > 1024 {
		bad("PASSWORD_MAX_LENGTH", "must be between PAYGATE_PASSWORD_MIN_LENGTH and 1024")
	}
	if a.Argon2MemoryKiB < 1024 {
		bad("ARGON2_MEMORY_KIB", "must be at least 1024")
	}
	if a.Argon2Time < 1 {
		bad("ARGON2_TIME", "must be at least 1")
	}
	if a.Argon2Threads < 1 {
		bad("ARGON2_THREADS", "must be at least 1")
	}
	if a.LoginMaxFailuresPerEmail < 1 {
		bad("LOGIN_MAX_FAILURES_PER_EMAIL", "must be at least 1")
	}
	if a.LoginMaxFailuresPerIP < 1 {
		bad("LOGIN_MAX_FAILURES_PER_IP", "must be at least 1")
	}
	if a.LoginFailureWindow <= 0 {
		bad("LOGIN_FAILURE_WINDOW", "must be positive")
	}
	if _, err := ParseCIDRs(a.TrustedProxies); err != nil {
		bad("TRUSTED_PROXIES", "%v", err)
	}
	if a.TrustProxyHeaders {
		bad("TRUST_PROXY_HEADERS", "is removed: list the proxies' networks in PAYGATE_TRUSTED_PROXIES instead, and unset it")
	}
	if a.RegisterMaxPerIP < 1 {
		bad("REGISTER_MAX_PER_IP", "must be at least 1")
	}
	if a.RegisterWindow <= 0 {
		bad("REGISTER_WINDOW", "must be positive")
	}
	if a.HashConcurrency < 0 {
		bad("PASSWORD_HASH_CONCURRENCY", "must not be negative")
	}
	if a.HashQueue < 0 {
		bad("PASSWORD_HASH_QUEUE", "must not be negative")
	}
	if a.HashMaxWait <= 0 {
		bad("PASSWORD_HASH_MAX_WAIT", "must be positive")
	}
	if a.RefreshReuseGrace < 0 || a.RefreshReuseGrace > time.Minute {
		bad("REFRESH_REUSE_GRACE", "must be between 0 and 1m")
	}
	if a.SessionMaxLifetime <= a.AccessTTL {
		bad("SESSION_MAX_LIFETIME", "must be longer than PAYGATE_ACCESS_TOKEN_TTL")
	}
	if (a.BootstrapAdminEmail == "") != (a.BootstrapAdminPassword == "") {
		bad("BOOTSTRAP_ADMIN_PASSWORD", "PAYGATE_BOOTSTRAP_ADMIN_EMAIL and PAYGATE_BOOTSTRAP_ADMIN_PASSWORD go together")
	}
	if a.BootstrapAdminPassword != "" && len([]rune(a.BootstrapAdminPassword)) < a.PasswordMinLength {
		bad("BOOTSTRAP_ADMIN_PASSWORD", "is shorter than PAYGATE_PASSWORD_MIN_LENGTH")
	}
	return out
}

func (m *Money) validate() []VarError {
	var out []VarError
	bad := func(name, format string, args ...any) {
		out = append(out, VarError{Var: Prefix + "_" + name, Reason: fmt.Sprintf(format, args...)})
	}
	if len(m.Currency) != 3 || strings.ToUpper(m.Currency) != m.Currency {
		bad("CURRENCY", "must be an upper-case ISO 4217 code such as IDR")
	}
	for _, l := range []struct {
		name     string
		min, max int64
	}{{"TOPUP", m.TopupMin, m.TopupMax}, {"TRANSFER", m.TransferMin, m.TransferMax}, {"WITHDRAW", m.WithdrawMin, m.WithdrawMax}} {
		if l.min < 1 {
			bad(l.name+"_MIN", "must be at least 1")
		}
		if l.max < l.min {
			bad(l.name+"_MAX", "must not be below PAYGATE_%s_MIN", l.name)
		}
	}
	if m.VerifyInterval < time.Second {
		bad("LEDGER_VERIFY_INTERVAL", "must be at least 1s")
	}
	if m.IdempotencyRetention < 24*time.Hour {
		bad("IDEMPOTENCY_RETENTION", "must be at least 24h")
	}
	if m.BatchWindow < 0 || m.BatchWindow > 100*time.Millisecond {
		bad("BATCH_WINDOW", "must be between 0 and 100ms: it is added to a transfer's latency")
	}
	if m.BatchMaxSize < 1 || m.BatchMaxSize > 1000 {
		bad("BATCH_MAX_SIZE", "must be between 1 and 1000")
	}
	if m.BatchWorkers < 1 || m.BatchWorkers > 64 {
		bad("BATCH_WORKERS", "must be between 1 and 64")
	}
	return out
}
