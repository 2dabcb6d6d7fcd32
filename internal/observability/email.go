package observability

import (
	"fmt"

	"github.com/paygate/paygate/internal/notify"
)

// emailPanels are the email dashboard's panels.
func emailPanels() []panel {
	return []panel{
		{title: "Emails by template and result", unit: "ops", queries: []query{{rate(Emails, "template, result"), "{{template}} {{result}}"}}},
		{title: "Dead-lettered records by reason", unit: "short", queries: []query{{`sum by (reason) (increase(` + DeadLetters + `[$__rate_interval])) or vector(0)`, "{{reason}}"}}},
		{title: "Retries", unit: "ops", queries: []query{{rate(Retries, "") + " or vector(0)", "retries/s"}}},
		{title: "SMTP connections by outcome", unit: "ops", description: "Connections mails went over: dialed (new), reused (kept from an earlier mail), stale (a kept one the relay had closed; the mail went over a new one). Mostly reused under steady load.",
			queries: []query{{rate(SMTPConnections, "outcome"), "{{outcome}}"}}},
		{title: "Records per batch", unit: "short", description: "Records of one partition handled together: their mails are claimed in one statement and recorded sent in one. Above 1 when events arrive faster than they are mailed.",
			queries: []query{
				{fmt.Sprintf(`sum(rate(%[1]s_sum[$__rate_interval])) / clamp_min(sum(rate(%[1]s_count[$__rate_interval])), 1e-9)`, EmailBatchSize), "mean"},
				{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s_bucket[$__rate_interval])))`, EmailBatchSize), "p99"},
			}},
		{title: "Delivery commits: writes per commit", unit: "short", description: "The partitions' claims and sent records committed in one transaction (group commit): mean, and p99. A write is one chunk's claims, with the previous chunk's sent records.",
			queries: batchSizeQueries(notify.CommitterName)},
		{title: "Delivery commits: queue wait and duration p99", unit: "s", description: "How long a write waited for its commit to start, and how long the commit took.",
			queries: batchTimeQueries(notify.CommitterName)},
		{title: "Email consumer lag", unit: "short", queries: []query{{`sum by (group) (` + ConsumerLag + `)`, "{{group}}"}}},
	}
}
