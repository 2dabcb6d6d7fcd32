package observability

// emailPanels are the email dashboard's panels.
func emailPanels() []panel {
	return []panel{
		{title: "Emails by template and result", unit: "ops", queries: []query{{rate(Emails, "template, result"), "{{template}} {{result}}"}}},
		{title: "Dead-lettered records by reason", unit: "short", queries: []query{{`sum by (reason) (increase(` + DeadLetters + `[$__rate_interval])) or vector(0)`, "{{reason}}"}}},
		{title: "Retries", unit: "ops", queries: []query{{rate(Retries, "") + " or vector(0)", "retries/s"}}},
		{title: "SMTP connections by outcome", unit: "ops", description: "Connections mails went over: dialed (new), reused (kept from an earlier mail), stale (a kept one the relay had closed; the mail went over a new one). Mostly reused under steady load.",
			queries: []query{{rate(SMTPConnections, "outcome"), "{{outcome}}"}}},
		{title: "Email consumer lag", unit: "short", queries: []query{{`sum by (group) (` + ConsumerLag + `)`, "{{group}}"}}},
	}
}
