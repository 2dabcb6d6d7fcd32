// Package observability is the catalog of every metric paygate exports,
// as Prometheus sees it: names derived from the constants the instruments
// are created with, types, and the bounded set of values each label may
// take. Dashboards and alerts are generated from and tested against it,
// and a test scrapes a running gateway and fails on any metric or label
// value the catalog does not allow.
package observability

import (
	"net/http"
	"strings"

	"github.com/paygate/paygate/internal/auth"
	"github.com/paygate/paygate/internal/callbacks"
	"github.com/paygate/paygate/internal/deadletters"
	"github.com/paygate/paygate/internal/ledger"
	"github.com/paygate/paygate/internal/movement"
	"github.com/paygate/paygate/internal/notify"
	"github.com/paygate/paygate/internal/payout"
	"github.com/paygate/paygate/internal/platform/batch"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/outbox"
	"github.com/paygate/paygate/internal/reconcile"
	"github.com/paygate/paygate/internal/topup"
	"github.com/paygate/paygate/internal/transfer"
	"github.com/paygate/paygate/internal/withdraw"
)

// Type is a Prometheus metric type.
type Type string

// The metric types.
const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Metric is one exported metric family.
type Metric struct {
	// Name is the Prometheus name (for histograms, without _bucket etc.).
	Name string
	Type Type
	// Domain is the paygate.domain the metric belongs to ("" for
	// platform metrics).
	Domain string
	// Labels maps each label to its allowed values; a nil slice means the
	// values are checked by a rule of the test (route templates, groups).
	Labels map[string][]string
}

// promName converts an OpenTelemetry instrument name to the name the
// Prometheus exporter gives it: dots become underscores, a unit suffix is
// added for seconds, and counters end in _total.
func promName(otel string, t Type, seconds bool) string {
	n := strings.ReplaceAll(otel, ".", "_")
	if seconds {
		n += "_seconds"
	}
	if t == Counter {
		n += "_total"
	}
	return n
}

func counter(domain, otel string, labels map[string][]string) Metric {
	return Metric{Name: promName(otel, Counter, false), Type: Counter, Domain: domain, Labels: labels}
}

func gauge(domain, otel string, seconds bool, labels map[string][]string) Metric {
	return Metric{Name: promName(otel, Gauge, seconds), Type: Gauge, Domain: domain, Labels: labels}
}

// StatusClasses are the values of http_response_status_class.
var StatusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Methods are the values of http_request_method.
var Methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, "_OTHER"}

// LabelDomain is the paygate.domain label of the HTTP metric.
const LabelDomain = "paygate_domain"

// Committers are the group-commit committers (internal/platform/batch)
// and so the values of their metrics' "committer" label: the transfers'
// and the email consumer's delivery records. The batch metrics are listed
// under the transfer domain, whose smoke load exports both.
var Committers = []string{transfer.CommitterName, notify.CommitterName}

// Domains are paygate's business domains, each with its dashboard.
var Domains = []string{"auth", "user", "saldo", "topup", "transfer", "withdraw", "email"}

// HTTPDomains are the values of the HTTP metric's domain label: the
// domains that serve HTTP, "platform" for probes and metrics, and "none"
// for requests no route matched.
var HTTPDomains = []string{"auth", "user", "saldo", "topup", "transfer", "withdraw", "platform", "none"}

// PayoutResults are the values of the payout result label.
var PayoutResults = []string{withdraw.ResultAccepted, withdraw.ResultSucceeded, withdraw.ResultFailed, "refused", "error"}

// Providers are the values of the provider label.
var Providers = []string{config.ProviderSandbox, config.ProviderXendit}

// Label names whose values are checked by rule rather than by list.
const (
	LabelRoute = "http_route"
	LabelGroup = "group"
	// LabelPoolName is the pgx pool's host/database: one value per process.
	LabelPoolName = "db_client_connection_pool_name"
)

func topupMethods() []string { return append(append([]string{}, topup.Methods...), "unknown") }

// Well-known metric names, for dashboards and alerts.
var (
	HTTPDuration      = promName(httpserver.MetricRequestDuration, Histogram, true)
	OutboxPending     = promName(outbox.MetricPending, Gauge, false)
	OutboxOldestAge   = promName(outbox.MetricOldestAge, Gauge, true)
	OutboxParked      = promName(outbox.MetricParked, Gauge, false)
	ConsumerLag       = promName(kafka.MetricConsumerLag, Gauge, false)
	LedgerOK          = promName(ledger.MetricVerificationOK, Gauge, false)
	LedgerViolations  = promName(ledger.MetricVerificationViolations, Gauge, false)
	LedgerVerifiedAt  = promName(ledger.MetricVerificationTime, Gauge, true)
	Unreconciled      = promName(reconcile.MetricUnreconciled, Gauge, false)
	ReconciledAt      = promName(reconcile.MetricLastRun, Gauge, true)
	Registrations     = promName(auth.MetricRegistrations, Counter, false)
	Logins            = promName(auth.MetricLogins, Counter, false)
	Refreshes         = promName(auth.MetricRefreshes, Counter, false)
	AuthThrottled     = promName(auth.MetricThrottled, Counter, false)
	HashShed          = promName(auth.MetricHashShed, Counter, false)
	TopUps            = promName(topup.MetricTopUps, Counter, false)
	TopUpAmount       = promName(topup.MetricAmount, Counter, false)
	TopUpSettlements  = promName(topup.MetricSettlements, Counter, false)
	Callbacks         = promName(callbacks.MetricCallbacks, Counter, false)
	Transfers         = promName(transfer.MetricTransfers, Counter, false)
	TransferAmount    = promName(transfer.MetricAmount, Counter, false)
	Withdrawals       = promName(withdraw.MetricRequests, Counter, false)
	WithdrawalsSettle = promName(withdraw.MetricSettled, Counter, false)
	WithdrawnAmount   = promName(withdraw.MetricAmount, Counter, false)
	Payouts           = promName(payout.MetricPayouts, Counter, false)
	ConsumerRetries   = promName(kafka.MetricConsumerRetries, Counter, false)
	BatchSize         = promName(batch.MetricSize, Histogram, false)
	BatchQueueWait    = promName(batch.MetricQueueWait, Histogram, true)
	BatchDuration     = promName(batch.MetricDuration, Histogram, true)
	BatchHeld         = promName(batch.MetricHeld, Counter, false)
	ConsumerDead      = promName(kafka.MetricConsumerDeadLetters, Counter, false)
	DeadLetterReplays = promName(deadletters.MetricReplays, Counter, false)
	Emails            = promName(notify.MetricEmails, Counter, false)
	DeadLetters       = promName(notify.MetricDeadLetters, Counter, false)
	Retries           = promName(notify.MetricRetries, Counter, false)
	SMTPConnections   = promName(notify.MetricSMTPConnections, Counter, false)
	EmailBatchSize    = promName(notify.MetricBatchSize, Histogram, false)
	// ProviderClientDuration is the duration of calls to the payment
	// provider's API.
	ProviderClientDuration = "http_client_request_duration_seconds"
	DBPoolAcquired         = "pgxpool_acquired_connections"
	DBPoolIdle             = "pgxpool_idle_connections"
	DBPoolMax              = "pgxpool_max_connections"
)

// Catalog returns every metric paygate exports beyond the Go runtime and
// process collectors.
func Catalog() []Metric {
	result := func(vals []string) map[string][]string { return map[string][]string{"result": vals} }
	return append([]Metric{
		{Name: HTTPDuration, Type: Histogram, Labels: map[string][]string{
			LabelRoute: nil, "http_request_method": Methods, "http_response_status_class": StatusClasses,
			LabelDomain: HTTPDomains}},
		counter("auth", auth.MetricRegistrations, nil),
		counter("auth", auth.MetricLogins, result(auth.LoginResults)),
		counter("auth", auth.MetricRefreshes, result(auth.RefreshResults)),
		counter("auth", auth.MetricThrottled, map[string][]string{"operation": auth.ThrottledOps, "scope": auth.ThrottledScopes}),
		counter("auth", auth.MetricHashShed, map[string][]string{"kind": auth.HashShedKinds}),
		counter("topup", topup.MetricTopUps, map[string][]string{"method": topupMethods(), "result": movement.Results}),
		counter("topup", topup.MetricAmount, map[string][]string{"method": topup.Methods}),
		counter("topup", topup.MetricSettlements, map[string][]string{"method": topup.Methods, "result": topup.SettlementResults}),
		counter("topup", callbacks.MetricCallbacks, map[string][]string{"provider": Providers,
			"kind": {callbacks.KindPayment, callbacks.KindPayout}, "outcome": callbacks.Outcomes}),
		counter("transfer", transfer.MetricTransfers, result(movement.Results)),
		counter("transfer", transfer.MetricAmount, nil),
		counter("withdraw", withdraw.MetricRequests, result(movement.Results)),
		counter("withdraw", withdraw.MetricSettled, map[string][]string{"status": withdraw.Statuses}),
		counter("withdraw", withdraw.MetricAmount, map[string][]string{"status": withdraw.Statuses}),
		counter("withdraw", payout.MetricPayouts, result(PayoutResults)),
		counter("email", notify.MetricEmails, map[string][]string{"template": notify.Templates,
			"result": {notify.ResultSent, notify.ResultFailed, notify.ResultDuplicate}}),
		counter("email", notify.MetricDeadLetters, map[string][]string{"reason": {notify.ReasonPoison, notify.ReasonRejected, notify.ReasonExhausted}}),
		counter("email", notify.MetricRetries, nil),
		{Name: EmailBatchSize, Type: Histogram, Domain: "email"},
		counter("email", notify.MetricSMTPConnections, map[string][]string{"outcome": {notify.ConnDialed, notify.ConnReused, notify.ConnStale}}),
		{Name: BatchSize, Type: Histogram, Domain: "transfer", Labels: map[string][]string{"committer": Committers}},
		{Name: BatchQueueWait, Type: Histogram, Domain: "transfer", Labels: map[string][]string{"committer": Committers}},
		{Name: BatchDuration, Type: Histogram, Domain: "transfer", Labels: map[string][]string{"committer": Committers}},
		counter("transfer", batch.MetricHeld, map[string][]string{"committer": Committers}),
		gauge("", outbox.MetricPending, false, nil),
		gauge("", outbox.MetricOldestAge, true, nil),
		gauge("", outbox.MetricParked, false, nil),
		gauge("", kafka.MetricConsumerLag, false, map[string][]string{LabelGroup: nil}),
		counter("", kafka.MetricConsumerRetries, map[string][]string{LabelGroup: nil}),
		counter("", kafka.MetricConsumerDeadLetters, map[string][]string{LabelGroup: nil, "reason": kafka.DeadLetterReasons}),
		counter("", deadletters.MetricReplays, map[string][]string{"consumer": {"email", "payouts"}}),
		gauge("saldo", ledger.MetricVerificationOK, false, nil),
		gauge("saldo", ledger.MetricVerificationViolations, false, nil),
		gauge("saldo", ledger.MetricVerificationTime, true, nil),
		// The payment provider client's metrics (otelhttp): one server
		// address, the provider's.
		{Name: ProviderClientDuration, Type: Histogram, Labels: providerClientLabels()},
		{Name: "http_client_request_body_size_bytes", Type: Histogram, Labels: providerClientLabels()},
		gauge("saldo", reconcile.MetricUnreconciled, false, map[string][]string{"kind": reconcile.KindNames()}),
		gauge("saldo", reconcile.MetricLastRun, true, nil),
		// Database client metrics of otelpgx.
		{Name: "db_client_operation_duration_seconds", Type: Histogram, Labels: map[string][]string{
			"db_system": {"postgresql"}, "db_system_name": {"postgresql"},
			"pgx_operation_type": {"acquire", "query", "batch", "copy", "prepare", "connect"},
			"db_operation_name":  nil, "pgx_status": nil, "error_type": nil}},
	}, poolMetrics()...)
}

// providerClientLabels are the labels otelhttp gives client metrics.
func providerClientLabels() map[string][]string {
	return map[string][]string{"http_request_method": Methods, "http_response_status_code": nil, "server_address": nil,
		"server_port": nil, "url_scheme": {"http", "https"}, "network_protocol_name": {"http"}, "network_protocol_version": nil,
		"error_type": nil}
}

// poolMetrics are the pgx pool statistics otelpgx exports.
func poolMetrics() []Metric {
	labels := map[string][]string{"db_system": {"postgresql"}, LabelPoolName: nil}
	var out []Metric
	for _, g := range []string{DBPoolAcquired, DBPoolIdle, DBPoolMax, "pgxpool_total_connections", "pgxpool_constructing_connections"} {
		out = append(out, Metric{Name: g, Type: Gauge, Labels: labels})
	}
	for _, c := range []string{"pgxpool_acquires_total", "pgxpool_canceled_acquires_total", "pgxpool_empty_acquire_total",
		"pgxpool_new_connections_total", "pgxpool_max_idle_destroys_total", "pgxpool_max_lifetime_destroys_total",
		"pgxpool_acquire_duration_nanoseconds_total", "pgxpool_empty_acquire_wait_time_nanoseconds_total"} {
		out = append(out, Metric{Name: c, Type: Counter, Labels: labels})
	}
	return out
}
