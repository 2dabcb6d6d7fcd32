//lint:file-ignore SA1019 the dashboards are Grafana v1 JSON, which the v1 dashboard builders write; dashboardv2 is another format that this Grafana setup does not load.

package observability

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/paygate/paygate/internal/transfer"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DashboardsDir is where the generated dashboards are committed, relative
// to the repository root.
const DashboardsDir = "grafana-dashboards"

// ds is the panels' datasource: the dashboard's datasource variable.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is a Prometheus query of a panel.
type query struct {
	expr, legend string
}

// panel describes one panel before it is built.
type panel struct {
	title, description, unit string
	stat                     bool
	queries                  []query
}

func (p panel) build() cog.Builder[dashboard.Panel] {
	targets := func(add func(*prometheus.DataqueryBuilder)) {
		for i, q := range p.queries {
			add(prometheus.NewDataqueryBuilder().Expr(q.expr).LegendFormat(q.legend).RefId(string(rune('A' + i))).Datasource(ds))
		}
	}
	if p.stat {
		b := stat.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).Datasource(ds).Height(6).Span(6)
		targets(func(q *prometheus.DataqueryBuilder) { b.WithTarget(q) })
		return b
	}
	b := timeseries.NewPanelBuilder().Title(p.title).Description(p.description).Unit(p.unit).Datasource(ds).Height(8).Span(12).Min(0)
	targets(func(q *prometheus.DataqueryBuilder) { b.WithTarget(q) })
	return b
}

// red returns the rate, errors and duration panels of one HTTP domain.
func red(domain string) []panel {
	sel := fmt.Sprintf(`%s=%q`, LabelDomain, domain)
	count := HTTPDuration + "_count"
	return []panel{
		{title: "Requests by route", unit: "reqps", queries: []query{{
			fmt.Sprintf(`sum by (http_route, http_request_method) (rate(%s{%s}[$__rate_interval]))`, count, sel), "{{http_request_method}} {{http_route}}"}}},
		// "or vector(0)": no 5xx series at all means a ratio of 0, not "no data".
		{title: "Error ratio (5xx)", unit: "percentunit", queries: []query{{
			fmt.Sprintf(`(sum(rate(%s{%s,http_response_status_class="5xx"}[$__rate_interval])) or vector(0)) / clamp_min(sum(rate(%s{%s}[$__rate_interval])), 1e-9)`, count, sel, count, sel), "5xx ratio"}}},
		{title: "Client errors by route (4xx)", unit: "reqps", queries: []query{{
			fmt.Sprintf(`sum by (http_route) (rate(%s{%s,http_response_status_class="4xx"}[$__rate_interval])) or vector(0)`, count, sel), "{{http_route}}"}}},
		{title: "Latency p50 / p95 / p99", unit: "s", queries: []query{
			{fmt.Sprintf(`histogram_quantile(0.50, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))`, HTTPDuration, sel), "p50"},
			{fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))`, HTTPDuration, sel), "p95"},
			{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))`, HTTPDuration, sel), "p99"},
		}},
	}
}

func rate(metric, by string) string {
	if by == "" {
		return fmt.Sprintf(`sum(rate(%s[$__rate_interval]))`, metric)
	}
	return fmt.Sprintf(`sum by (%s) (rate(%s[$__rate_interval]))`, by, metric)
}

// domainPanels are the business panels of each domain dashboard.
func domainPanels(domain string) []panel {
	switch domain {
	case "auth":
		return []panel{
			{title: "Registrations", unit: "ops", queries: []query{{rate(Registrations, ""), "registrations/s"}}},
			{title: "Logins by result", unit: "ops", queries: []query{{rate(Logins, "result"), "{{result}}"}}},
			{title: "Token refreshes by result", unit: "ops", queries: []query{{rate(Refreshes, "result"), "{{result}}"}}},
			{title: "Throttled attempts", description: "Password checks and registrations refused with 429, by operation and by the limit (email or client IP) that refused them.",
				unit: "ops", queries: []query{{rate(AuthThrottled, "operation, scope"), "{{operation}} by {{scope}}"}}},
			{title: "Password hashing shed", description: "Requests refused with 503 because the bounded hashing queue was full or the wait too long: verifications (logins) and new passwords (registrations, password changes).",
				unit: "ops", queries: []query{{rate(HashShed, "kind"), "{{kind}}"}}},
		}
	case "user":
		return nil
	case "saldo":
		return []panel{
			{title: "Ledger verification", description: "1 when the last verification passed.", stat: true, queries: []query{{"min(" + LedgerOK + ")", "ok"}}},
			{title: "Ledger violations", stat: true, queries: []query{{"max(" + LedgerViolations + ")", "violations"}}},
			{title: "Since last verification", unit: "s", stat: true, queries: []query{{"time() - max(" + LedgerVerifiedAt + ")", "age"}}},
		}
	case "topup":
		return []panel{
			{title: "Top-ups requested by method and result", description: "success: pending with the provider's payment instructions.",
				unit: "ops", queries: []query{{rate(TopUps, "method, result"), "{{method}} {{result}}"}}},
			{title: "Top-ups ended by result", description: "succeeded (credited), failed, expired, mismatch (paid another amount; nothing credited).",
				unit: "ops", queries: []query{{rate(TopUpSettlements, "result"), "{{result}}"}}},
			{title: "Credited volume by method", unit: "short", description: "Minor units per second credited to wallets.", queries: []query{{rate(TopUpAmount, "method"), "{{method}}"}}},
			{title: "Payment callbacks by outcome", unit: "ops", queries: []query{{fmt.Sprintf(
				`sum by (outcome) (rate(%s{kind="payment"}[$__rate_interval]))`, Callbacks), "{{outcome}}"}}},
			{title: "Provider API latency p50 / p99", description: "Calls to the payment provider: payment and payout creates, status reads, the settled transactions list.",
				unit: "s", queries: []query{
					{fmt.Sprintf(`histogram_quantile(0.50, sum by (le) (rate(%s_bucket[$__rate_interval])))`, ProviderClientDuration), "p50"},
					{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket[$__rate_interval])))`, ProviderClientDuration), "p99"},
				}},
			{title: "Provider API answers by status", unit: "ops", queries: []query{{fmt.Sprintf(
				`sum by (http_response_status_code) (rate(%s_count[$__rate_interval]))`, ProviderClientDuration), "{{http_response_status_code}}"}}},
			{title: "Callbacks needing attention (1h)", description: "Unmatched references, amount mismatches, payments after a top-up ended and malformed bodies: listed by GET /v1/admin/callbacks?outcome=attention.",
				stat: true, queries: []query{{fmt.Sprintf(
					`sum(increase(%s{outcome=~"unmatched|mismatch|late|malformed"}[1h])) or vector(0)`, Callbacks), "callbacks"}}},
		}
	case "transfer":
		return []panel{
			{title: "Transfers by result", unit: "ops", queries: []query{{rate(Transfers, "result"), "{{result}}"}}},
			{title: "Transfer volume", unit: "short", description: "Minor units per second.", queries: []query{{rate(TransferAmount, ""), "volume"}}},
			{title: "Group commit: transfers per batch", description: "Transfers booked in one transaction (one commit): mean, and p99.",
				unit: "short", queries: batchSizeQueries(transfer.CommitterName)},
			{title: "Group commit: queue wait and batch duration p99", description: "How long a transfer waited for its batch, and how long a batch took to book and commit.",
				unit: "s", queries: batchTimeQueries(transfer.CommitterName)},
			{title: "Group commit: transfers held back", description: "Transfers a batch passed over because a batch in flight held one of their wallets; they start with a later batch instead of waiting for the lock inside the database.",
				unit: "percentunit", queries: []query{
					{fmt.Sprintf(`sum(rate(%[1]s{committer=%[3]q}[$__rate_interval])) / clamp_min(sum(rate(%[2]s_count{committer=%[3]q}[$__rate_interval])), 1e-9)`, BatchHeld, BatchQueueWait, transfer.CommitterName), "share of transfers"},
				}},
		}
	case "withdraw":
		return []panel{
			{title: "Withdrawal requests by result", unit: "ops", queries: []query{{rate(Withdrawals, "result"), "{{result}}"}}},
			{title: "Settled withdrawals by status", unit: "ops", queries: []query{{rate(WithdrawalsSettle, "status"), "{{status}}"}}},
			{title: "Settled volume by status", unit: "short", description: "Minor units per second.", queries: []query{{rate(WithdrawnAmount, "status"), "{{status}}"}}},
			{title: "Payout creates by result", description: "accepted: the provider took it and will call back; refused: the provider rejected the request; error: outcome unknown, retried under the same idempotency key.",
				unit: "ops", queries: []query{{rate(Payouts, "result"), "{{result}}"}}},
			{title: "Consumer retries and dead letters", description: "Events the payout processor (and any consumer with the platform's retry policy) moved to its retry topic, and those it gave up on; GET /v1/admin/dead-letters lists and replays them.",
				unit: "ops", queries: []query{
					{fmt.Sprintf(`sum by (group) (rate(%s[$__rate_interval]))`, ConsumerRetries), "{{group}} retries"},
					{fmt.Sprintf(`sum by (group, reason) (rate(%s[$__rate_interval]))`, ConsumerDead), "{{group}} dead letter: {{reason}}"},
				}},
			{title: "Payout callbacks by outcome", unit: "ops", queries: []query{{fmt.Sprintf(
				`sum by (outcome) (rate(%s{kind="payout"}[$__rate_interval]))`, Callbacks), "{{outcome}}"}}},
		}
	case "email":
		return emailPanels()
	}
	return nil
}

// batchSizeQueries are the mean and p99 items per batch of the committer
// (internal/platform/batch) named committer.
func batchSizeQueries(committer string) []query {
	sel := fmt.Sprintf(`{committer=%q}`, committer)
	return []query{
		{fmt.Sprintf(`sum(rate(%[1]s_sum%[2]s[$__rate_interval])) / clamp_min(sum(rate(%[1]s_count%[2]s[$__rate_interval])), 1e-9)`, BatchSize, sel), "mean"},
		{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket%s[$__rate_interval])))`, BatchSize, sel), "p99"},
	}
}

// batchTimeQueries are the p99 queue wait and batch duration of the
// committer named committer.
func batchTimeQueries(committer string) []query {
	sel := fmt.Sprintf(`{committer=%q}`, committer)
	return []query{
		{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket%s[$__rate_interval])))`, BatchQueueWait, sel), "queue wait p99"},
		{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket%s[$__rate_interval])))`, BatchDuration, sel), "batch p99"},
	}
}

// row is a titled row of panels.
type row struct {
	title  string
	panels []panel
}

// unreconciledTotal is the number of mismatches the last scheduled
// reconciliation found, across kinds: the max over replicas per kind,
// since every replica reports its own last run over a window of the same
// length, and summing them would count one mismatch once per replica.
var unreconciledTotal = "sum(max by (kind) (" + Unreconciled + "))"

// domainRows are the rows of a domain dashboard after its business
// panels.
func domainRows(domain string) []row {
	if domain != "saldo" {
		return nil
	}
	return []row{{title: "Reconciliation with the payment provider", panels: []panel{
		{title: "Unreconciled transactions", description: "Mismatches between the provider's settled transactions and the ledger found by the last scheduled reconciliation; `paygate reconcile` lists them.",
			stat: true, queries: []query{{unreconciledTotal, "unreconciled"}}},
		{title: "Since last reconciliation", unit: "s", stat: true, queries: []query{{"time() - max(" + ReconciledAt + ")", "age"}}},
		{title: "Unreconciled by kind", unit: "short", description: "paid_not_credited, credited_not_paid, amount_differs, paid_out_not_settled, settled_not_paid_out.",
			queries: []query{{"max by (kind) (" + Unreconciled + ")", "{{kind}}"}}},
	}}}
}

// jaegerLink searches Jaeger for the domain's traces.
func jaegerLink(domain string) cog.Builder[dashboard.DashboardLink] {
	tags := url.QueryEscape(fmt.Sprintf(`{"paygate.domain":%q}`, domain))
	u := "${jaeger_url}/search?service=paygate&tags=" + tags
	if domain == "" {
		u = "${jaeger_url}/search?service=paygate"
	}
	return dashboard.NewDashboardLinkBuilder("Traces in Jaeger").Type(dashboard.DashboardLinkTypeLink).
		Url(u).TargetBlank(true).Icon("external link").Tooltip("Search this domain's traces")
}

func newDashboard(uid, title string, domain string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Tags([]string{"paygate", "generated"}).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(dashboard.NewConstantVariableBuilder("jaeger_url").
			Value(dashboard.StringOrMap{String: cog.ToPtr("http://jaeger-query:16686")})).
		Link(jaegerLink(domain))
}

// DomainDashboard builds the dashboard of one domain.
func DomainDashboard(domain string) (dashboard.Dashboard, error) {
	b := newDashboard("paygate-"+domain, "paygate / "+domain, domain)
	if domain != "email" {
		b.WithRow(dashboard.NewRowBuilder("HTTP: rate, errors, duration"))
		for _, p := range red(domain) {
			b.WithPanel(p.build())
		}
	}
	if ps := domainPanels(domain); len(ps) > 0 {
		b.WithRow(dashboard.NewRowBuilder("Business"))
		for _, p := range ps {
			b.WithPanel(p.build())
		}
	}
	for _, r := range domainRows(domain) {
		b.WithRow(dashboard.NewRowBuilder(r.title))
		for _, p := range r.panels {
			b.WithPanel(p.build())
		}
	}
	return b.Build()
}

// SLOTarget is the availability objective of the API: 99.9% of requests
// without a server error.
const SLOTarget = 0.999

// OverviewDashboard builds the overview: RED per domain, SLO burn, outbox
// and lag, ledger health and reconciliation, database pool.
func OverviewDashboard() (dashboard.Dashboard, error) {
	count := HTTPDuration + "_count"
	b := newDashboard("paygate-overview", "paygate / overview", "")
	b.WithRow(dashboard.NewRowBuilder("RED by domain"))
	for _, p := range []panel{
		{title: "Requests by domain", unit: "reqps", queries: []query{{rate(count, LabelDomain), "{{" + LabelDomain + "}}"}}},
		{title: "5xx ratio by domain", unit: "percentunit", queries: []query{{fmt.Sprintf(
			`(sum by (%[1]s) (rate(%[2]s{http_response_status_class="5xx"}[$__rate_interval])) or (0 * sum by (%[1]s) (rate(%[2]s[$__rate_interval])))) / clamp_min(sum by (%[1]s) (rate(%[2]s[$__rate_interval])), 1e-9)`,
			LabelDomain, count), "{{" + LabelDomain + "}}"}}},
		{title: "p99 latency by domain", unit: "s", queries: []query{{fmt.Sprintf(
			`histogram_quantile(0.99, sum by (%s, le) (rate(%s_bucket[$__rate_interval])))`, LabelDomain, HTTPDuration), "{{" + LabelDomain + "}}"}}},
		{title: "SLO burn rate (1h)", unit: "short", description: fmt.Sprintf("Error budget burn rate against a %.1f%% availability objective; 1 spends the budget exactly over the SLO window.", SLOTarget*100),
			queries: []query{{fmt.Sprintf(`((sum(rate(%[1]s{http_response_status_class="5xx"}[1h])) or vector(0)) / clamp_min(sum(rate(%[1]s[1h])), 1e-9)) / %g`, count, 1-SLOTarget), "burn rate"}}},
	} {
		b.WithPanel(p.build())
	}
	b.WithRow(dashboard.NewRowBuilder("Events"))
	for _, p := range []panel{
		{title: "Outbox backlog", unit: "short", queries: []query{{"sum(" + OutboxPending + ")", "pending events"}}},
		{title: "Oldest pending event", unit: "s", queries: []query{{"max(" + OutboxOldestAge + ")", "age"}}},
		{title: "Parked events", description: "Events the broker refused for good; each needs an operator.", unit: "short", queries: []query{{"max(" + OutboxParked + ")", "parked"}}},
		{title: "Consumer lag by group", unit: "short", queries: []query{{"sum by (group) (" + ConsumerLag + ")", "{{group}}"}}},
	} {
		b.WithPanel(p.build())
	}
	b.WithRow(dashboard.NewRowBuilder("Ledger and database"))
	for _, p := range []panel{
		{title: "Ledger verification", stat: true, queries: []query{{"min(" + LedgerOK + ")", "ok"}}},
		{title: "Ledger violations", stat: true, queries: []query{{"max(" + LedgerViolations + ")", "violations"}}},
		{title: "Unreconciled transactions", description: "Mismatches with the payment provider found by the last scheduled reconciliation.",
			stat: true, queries: []query{{unreconciledTotal, "unreconciled"}}},
		{title: "DB pool", unit: "short", queries: []query{
			{"sum(" + DBPoolAcquired + ")", "in use"}, {"sum(" + DBPoolIdle + ")", "idle"}, {"sum(" + DBPoolMax + ")", "max"}}},
	} {
		b.WithPanel(p.build())
	}
	return b.Build()
}

// Dashboards returns every dashboard by file name, encoded as committed.
func Dashboards() (map[string][]byte, error) {
	out := map[string][]byte{}
	enc := func(name string, d dashboard.Dashboard, err error) error {
		if err != nil {
			return fmt.Errorf("dashboard %s: %w", name, err)
		}
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return err
		}
		out[name] = append(b, '\n')
		return nil
	}
	for _, domain := range Domains {
		d, err := DomainDashboard(domain)
		if err := enc(domain+".json", d, err); err != nil {
			return nil, err
		}
	}
	d, err := OverviewDashboard()
	if err := enc("overview.json", d, err); err != nil {
		return nil, err
	}
	return out, nil
}
