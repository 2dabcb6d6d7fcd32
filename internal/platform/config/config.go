// Package config loads paygate's settings from PAYGATE_* environment
// variables with github.com/kelseyhightower/envconfig.
//
// Every variable has a default or is required, and a description; Load
// reports every bad or missing variable in one error rather than stopping at
// the first, so an operator fixes a deployment in one round trip. OpenTelemetry's
// standard OTEL_* variables are not part of this struct: the OTel SDK reads
// them itself, exactly as documented upstream.
package config

import (
	"time"
)

// Prefix is the prefix of every paygate environment variable.
const Prefix = "PAYGATE"

// Config is the whole of paygate's configuration. Nested structs group the
// settings of one part of the system; their variables are named
// PAYGATE_<TAG>, where TAG is the envconfig tag of the leaf field.
type Config struct {
	Env      string `envconfig:"ENV" default:"prod" desc:"Deployment flavour: prod (JSON logs) or dev (human-readable logs)."`
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"Minimum log level: debug, info, warn or error."`

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

// HTTP holds the settings of the public HTTP server.
type HTTP struct {
	Addr string `envconfig:"HTTP_ADDR" default:":8080" desc:"Address the HTTP API listens on."`
	// MetricsAddr is the operations listener: /metrics and the detailed
	// /readyz stay off the public port.
	MetricsAddr       string        `envconfig:"METRICS_ADDR" default:":9464" desc:"Address of the operations listener: GET /metrics (Prometheus) and a /readyz that names failing checks; keep it off the public network. Must differ from PAYGATE_HTTP_ADDR."`
	ReadHeaderTimeout time.Duration `envconfig:"HTTP_READ_HEADER_TIMEOUT" default:"5s" desc:"Time allowed to read request headers."`
	ReadTimeout       time.Duration `envconfig:"HTTP_READ_TIMEOUT" default:"15s" desc:"Time allowed to read a whole request."`
	WriteTimeout      time.Duration `envconfig:"HTTP_WRITE_TIMEOUT" default:"30s" desc:"Time allowed to write a response."`
	IdleTimeout       time.Duration `envconfig:"HTTP_IDLE_TIMEOUT" default:"120s" desc:"Keep-alive idle timeout."`
	MaxBodyBytes      int64         `envconfig:"HTTP_MAX_BODY_BYTES" default:"1048576" desc:"Largest accepted request body in bytes; larger bodies get 413."`
	// DrainDelay is how long /readyz reports 503 before the listener closes,
	// so load balancers stop routing new requests before in-flight ones are
	// drained.
	DrainDelay      time.Duration `envconfig:"SHUTDOWN_DRAIN_DELAY" default:"5s" desc:"Time /readyz answers 503 before the server stops accepting connections on shutdown."`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"20s" desc:"Time in-flight requests get to finish on shutdown."`
	// PprofEnabled mounts net/http/pprof on the operations listener, to
	// profile a live process (make bench takes its CPU profile there).
	PprofEnabled bool `envconfig:"PPROF_ENABLED" default:"false" desc:"Serve Go's net/http/pprof profiles under /debug/pprof/ on the operations listener (PAYGATE_METRICS_ADDR), never on the API port. A CPU profile must last less than PAYGATE_HTTP_WRITE_TIMEOUT. Off by default: profiles expose the program's internals and cost CPU while they run."`
}

// Database holds the PostgreSQL settings.
type Database struct {
	URL            string        `envconfig:"DATABASE_URL" required:"true" desc:"PostgreSQL connection URL (postgres://user:pass@host:5432/db?sslmode=...)."`
	MaxConns       int32         `envconfig:"DATABASE_MAX_CONNS" default:"20" desc:"Maximum connections in the pool."`
	MinConns       int32         `envconfig:"DATABASE_MIN_CONNS" default:"2" desc:"Connections the pool keeps open when idle."`
	ConnectTimeout time.Duration `envconfig:"DATABASE_CONNECT_TIMEOUT" default:"5s" desc:"Timeout for establishing one connection."`
	MigrateOnStart bool          `envconfig:"MIGRATE_ON_START" default:"false" desc:"Apply pending migrations at start (safe with several replicas: an advisory lock serialises them)."`
	TxMaxAttempts  int           `envconfig:"DATABASE_TX_MAX_ATTEMPTS" default:"5" desc:"Attempts of a transaction that fails with a serialization failure or deadlock."`
}

// Kafka holds the broker settings shared by the producer, consumers and topic
// administration.
type Kafka struct {
	Brokers           []string      `envconfig:"KAFKA_BROKERS" required:"true" desc:"Comma-separated Kafka bootstrap brokers (host:port)."`
	ClientID          string        `envconfig:"KAFKA_CLIENT_ID" default:"paygate" desc:"Client id sent to the brokers."`
	Version           string        `envconfig:"KAFKA_VERSION" default:"3.6.0" desc:"Kafka protocol version the client speaks."`
	CreateTopics      bool          `envconfig:"KAFKA_CREATE_TOPICS" default:"false" desc:"Create paygate's topics at start when they are missing."`
	TopicPartitions   int32         `envconfig:"KAFKA_TOPIC_PARTITIONS" default:"6" desc:"Partitions of topics created by paygate."`
	TopicReplication  int16         `envconfig:"KAFKA_TOPIC_REPLICATION" default:"-1" desc:"Replication factor of topics created by paygate (-1: the broker's default)."`
	DialTimeout       time.Duration `envconfig:"KAFKA_DIAL_TIMEOUT" default:"5s" desc:"Timeout for connecting to a broker."`
	ReconnectBackoff  time.Duration `envconfig:"KAFKA_RECONNECT_BACKOFF" default:"2s" desc:"Pause before reconnecting after the brokers were unreachable."`
	ConsumerMaxWait   time.Duration `envconfig:"KAFKA_CONSUMER_MAX_WAIT" default:"250ms" desc:"Longest a fetch waits for new records."`
	ConsumerRebalance time.Duration `envconfig:"KAFKA_CONSUMER_SESSION_TIMEOUT" default:"10s" desc:"Consumer group session timeout."`

	ConsumerRetryBackoff    time.Duration `envconfig:"KAFKA_CONSUMER_RETRY_BACKOFF" default:"200ms" desc:"First pause before a consumer tries a failed record again; it doubles per attempt, with jitter."`
	ConsumerRetryMaxBackoff time.Duration `envconfig:"KAFKA_CONSUMER_RETRY_MAX_BACKOFF" default:"30s" desc:"Longest pause between attempts at a failed record."`

	// Transport security and authentication towards the brokers; see
	// kafka_security.go for the rules.
	TLSEnabled    bool   `envconfig:"KAFKA_TLS_ENABLED" default:"false" desc:"Connect to the brokers over TLS."`
	TLSCAFile     string `envconfig:"KAFKA_TLS_CA_FILE" default:"" desc:"PEM file of the CA certificates that sign the brokers' certificates (Strimzi: ca.crt of <cluster>-cluster-ca-cert); empty trusts the system roots."`
	TLSCertFile   string `envconfig:"KAFKA_TLS_CERT_FILE" default:"" desc:"PEM client certificate for mutual TLS (Strimzi KafkaUser of type tls: user.crt); needs PAYGATE_KAFKA_TLS_KEY_FILE."`
	TLSKeyFile    string `envconfig:"KAFKA_TLS_KEY_FILE" default:"" desc:"PEM private key of the client certificate (user.key). Secret."`
	TLSServerName string `envconfig:"KAFKA_TLS_SERVER_NAME" default:"" desc:"Name checked in the brokers' certificates instead of the host name dialled."`
	SASLMechanism string `envconfig:"KAFKA_SASL_MECHANISM" default:"" desc:"SASL authentication: empty for none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (Strimzi KafkaUser of type scram-sha-512)."`
	SASLUsername  string `envconfig:"KAFKA_SASL_USERNAME" default:"" desc:"SASL user name."`
	SASLPassword  string `envconfig:"KAFKA_SASL_PASSWORD" default:"" desc:"SASL password; set it from a secret. Secret."`

	TopicAuth     string `envconfig:"KAFKA_TOPIC_AUTH" default:"paygate.auth.v1" desc:"Topic of user and account events (user.registered, user.password_changed)."`
	TopicTopup    string `envconfig:"KAFKA_TOPIC_TOPUP" default:"paygate.topup.v1" desc:"Topic of top-up events."`
	TopicTransfer string `envconfig:"KAFKA_TOPIC_TRANSFER" default:"paygate.transfer.v1" desc:"Topic of transfer events."`
	TopicWithdraw string `envconfig:"KAFKA_TOPIC_WITHDRAW" default:"paygate.withdraw.v1" desc:"Topic of withdrawal events."`
}

// Outbox holds the settings of the transactional outbox relay.
type Outbox struct {
	BatchSize    int           `envconfig:"OUTBOX_BATCH_SIZE" default:"100" desc:"Events the relay publishes per database transaction."`
	PollInterval time.Duration `envconfig:"OUTBOX_POLL_INTERVAL" default:"1s" desc:"Fallback polling interval when no NOTIFY arrives."`
	// Linger trades a few milliseconds of an event's publication for
	// fewer relay transactions: woken for one event, the relay waits for
	// the ones that follow, so that a moderate load is published several
	// events per transaction instead of one.
	Linger       time.Duration `envconfig:"OUTBOX_LINGER" default:"10ms" desc:"How long the relay waits after a wake-up before reading the outbox, so that events committed meanwhile go in the same batch. 0: at once. At most 1s."`
	RetryBackoff time.Duration `envconfig:"OUTBOX_RETRY_BACKOFF" default:"1s" desc:"Pause after a failed publish before the relay tries again (doubles up to 5s)."`
	Retention    time.Duration `envconfig:"OUTBOX_RETENTION" default:"168h" desc:"How long published events are kept before cleanup."`
	Source       string        `envconfig:"EVENT_SOURCE" default:"/paygate" desc:"CloudEvents source attribute of every published event."`
}

// Auth holds the settings of authentication: password hashing, tokens,
// login throttling and the bootstrap administrator.
type Auth struct {
	// JWTPrivateKey is the Ed25519 key that signs access tokens. Tokens are
	// asymmetric so that a verifier never holds signing material, and so
	// that an HMAC token forged with the public key is refused.
	JWTPrivateKey string        `envconfig:"JWT_PRIVATE_KEY" required:"true" desc:"Base64 Ed25519 private key (32-byte seed or 64-byte key) that signs access tokens; generate one with 'paygate jwt-keygen'. Secret."`
	JWTKeyID      string        `envconfig:"JWT_KEY_ID" default:"k1" desc:"Key id (kid) of the signing key, put in every token header."`
	JWTVerifyKeys []string      `envconfig:"JWT_VERIFY_KEYS" default:"" desc:"Extra verification keys as kid=base64-Ed25519-public-key, comma-separated, so tokens signed with a previous key stay valid during rotation."`
	JWTIssuer     string        `envconfig:"JWT_ISSUER" default:"paygate" desc:"Issuer (iss) of access tokens; checked on every request."`
	JWTAudience   string        `envconfig:"JWT_AUDIENCE" default:"paygate-api" desc:"Audience (aud) of access tokens; checked on every request."`
	AccessTTL     time.Duration `envconfig:"ACCESS_TOKEN_TTL" default:"15m" desc:"Lifetime of access tokens."`
	RefreshTTL    time.Duration `envconfig:"REFRESH_TOKEN_TTL" default:"720h" desc:"Lifetime of refresh tokens (default 30 days)."`

	PasswordMinLength int `envconfig:"PASSWORD_MIN_LENGTH" default:"8" desc:"Shortest accepted password, in characters."`
	PasswordMaxLength int `envconfig:"PASSWORD_MAX_LENGTH" default:"128" desc:"Longest accepted password, in characters."`

	Argon2MemoryKiB uint32 `envconfig:"ARGON2_MEMORY_KIB" default:"65536" desc:"Argon2id memory cost in KiB for new hashes (existing hashes keep theirs and are upgraded at login)."`
	Argon2Time      uint32 `envconfig:"ARGON2_TIME" default:"2" desc:"Argon2id passes over memory for new hashes."`
	Argon2Threads   uint8  `envconfig:"ARGON2_THREADS" default:"2" desc:"Argon2id parallelism for new hashes."`

	LoginMaxFailuresPerEmail int           `envconfig:"LOGIN_MAX_FAILURES_PER_EMAIL" default:"5" desc:"Failed password checks (logins and password changes) allowed per email within the window before 429."`
	LoginMaxFailuresPerIP    int           `envconfig:"LOGIN_MAX_FAILURES_PER_IP" default:"20" desc:"Failed password checks (logins and password changes) allowed per client IP within the window before 429."`
	LoginFailureWindow       time.Duration `envconfig:"LOGIN_FAILURE_WINDOW" default:"15m" desc:"Window over which failed logins are counted."`
	// TrustedProxies are the networks of the reverse proxies in front of
	// paygate; see internal/platform/clientip for how the client IP is
	// read through them.
	TrustedProxies []string `envconfig:"TRUSTED_PROXIES" default:"" desc:"Comma-separated CIDRs (or single IPs) of the reverse proxies in front of paygate. X-Forwarded-For is read only from a peer in this list, and the client IP is its rightmost entry not in it. Empty (the default): the peer address is the client IP."`
	// TrustProxyHeaders is the removed boolean that PAYGATE_TRUSTED_PROXIES
	// replaced; setting it true fails start-up so that a deployment relying
	// on it notices instead of counting every client as its proxy.
	TrustProxyHeaders bool `envconfig:"TRUST_PROXY_HEADERS" default:"false" desc:"Removed; use PAYGATE_TRUSTED_PROXIES. Setting it true fails start-up."`

	RegisterMaxPerIP   int           `envconfig:"REGISTER_MAX_PER_IP" default:"10" desc:"Registrations allowed per client IP within PAYGATE_REGISTER_WINDOW before 429."`
	RegisterWindow     time.Duration `envconfig:"REGISTER_WINDOW" default:"1h" desc:"Window over which registrations are counted per client IP."`
	HashConcurrency    int           `envconfig:"PASSWORD_HASH_CONCURRENCY" default:"0" desc:"Password hashes computed at once (each takes PAYGATE_ARGON2_MEMORY_KIB); 0 means the number of CPUs, at least 2."`
	HashQueue          int           `envconfig:"PASSWORD_HASH_QUEUE" default:"64" desc:"Requests that may wait for a hashing slot; beyond it they are refused at once with 503 and Retry-After. New passwords (registration, password change) may fill only half of it, so logins always find room."`
	HashMaxWait        time.Duration `envconfig:"PASSWORD_HASH_MAX_WAIT" default:"2s" desc:"Longest a request waits for a hashing slot before it is refused with 503 and Retry-After."`
	RefreshReuseGrace  time.Duration `envconfig:"REFRESH_REUSE_GRACE" default:"10s" desc:"A refresh token presented again this soon after its rotation (a retry after a lost response) gets a fresh pair instead of revoking the session, as long as its successor was not used; 0 disables."`
	SessionMaxLifetime time.Duration `envconfig:"SESSION_MAX_LIFETIME" default:"720h" desc:"Absolute lifetime of a session (a login): refreshing cannot extend it; ended sessions are pruned hourly."`

	BootstrapAdminEmail    string `envconfig:"BOOTSTRAP_ADMIN_EMAIL" default:"" desc:"Email of the administrator created at the first start (optional). It is created once in the life of the database and then recognised by its id, so changing its email later creates no second one."`
	BootstrapAdminPassword string `envconfig:"BOOTSTRAP_ADMIN_PASSWORD" default:"" desc:"Password of the bootstrap administrator; set it from a secret. Secret."`
}

// Money holds the currency, the limits of each money movement and the
// idempotency window. Amounts are integers in the currency's minor unit.
type Money struct {
	Currency             string        `envconfig:"CURRENCY" default:"IDR" desc:"ISO 4217 currency of wallets and movements."`
	TopupMin             int64         `envconfig:"TOPUP_MIN" default:"10000" desc:"Smallest top-up, in minor units."`
	TopupMax             int64         `envconfig:"TOPUP_MAX" default:"50000000" desc:"Largest top-up, in minor units."`
	TransferMin          int64         `envconfig:"TRANSFER_MIN" default:"10000" desc:"Smallest transfer, in minor units."`
	TransferMax          int64         `envconfig:"TRANSFER_MAX" default:"50000000" desc:"Largest transfer, in minor units."`
	WithdrawMin          int64         `envconfig:"WITHDRAW_MIN" default:"50000" desc:"Smallest withdrawal, in minor units."`
	WithdrawMax          int64         `envconfig:"WITHDRAW_MAX" default:"50000000" desc:"Largest withdrawal, in minor units."`
	IdempotencyRetention time.Duration `envconfig:"IDEMPOTENCY_RETENTION" default:"24h" desc:"How long Idempotency-Key responses are kept (at least 24h)."`
	BatchWindow          time.Duration `envconfig:"BATCH_WINDOW" default:"0s" desc:"How long a batch of transfers stays open for more after its first (group commit). 0: a batch takes what queued while the previous ones were booked, adding no wait."`
	BatchMaxSize         int           `envconfig:"BATCH_MAX_SIZE" default:"128" desc:"Most transfers booked in one transaction; 1 books each alone."`
	BatchWorkers         int           `envconfig:"BATCH_WORKERS" default:"2" desc:"Batches of transfers booked at once."`
	VerifyInterval       time.Duration `envconfig:"LEDGER_VERIFY_INTERVAL" default:"10m" desc:"How often the ledger is verified in the background, after a first run at start, by one replica at a time (feeds the verification metrics)."`
}
