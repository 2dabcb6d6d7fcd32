package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// reportCmd prints the results as tables and writes them into the
// document as the section of -label, keeping the other labels' sections
// (so a "before" baseline stays next to the latest run).
func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	resultsFile := fs.String("results", "", "results file (JSON lines) of paybench run, pgbench and ready")
	dir := fs.String("dir", "", "directory of meta.env, settings-<mode>.txt, cpu-top.txt, pgss-*.md and waits.md")
	doc := fs.String("doc", "", "Markdown document to write (empty: print only)")
	label := fs.String("label", "latest", "the run's section in the document; a section of the same label is replaced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if strings.ContainsAny(*label, " \t\n>") || *label == "" {
		return fmt.Errorf("-label %q: one word, please", *label)
	}
	results, err := readResults(*resultsFile)
	if err != nil {
		return err
	}
	rep := &report{results: results, dir: *dir, label: *label, meta: readMeta(filepath.Join(*dir, "meta.env"))}
	fmt.Print(rep.tables())
	if *doc == "" {
		return nil
	}
	old, err := os.ReadFile(*doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	out := mergeDoc(string(old), *label, rep.section())
	if err := os.WriteFile(*doc, []byte(out), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nwrote %s (section %q)\n", *doc, *label)
	return nil
}

// readMeta reads key=value lines.
func readMeta(path string) map[string]string {
	m := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

type report struct {
	results []Result
	dir     string
	label   string
	meta    map[string]string
}

var (
	modeOrder     = []string{"durable", "cpu"}
	scenarioOrder = []string{string(uniform), string(hotSource), string(hotSink)}
	modeNames     = map[string]string{"durable": "durable", "cpu": "CPU-bound"}
)

func order(list []string, s string) int {
	if i := slices.Index(list, s); i >= 0 {
		return i
	}
	return len(list)
}

func (r *report) modes() []string {
	var out []string
	for _, x := range r.results {
		if x.Mode != "" && !slices.Contains(out, x.Mode) {
			out = append(out, x.Mode)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(order(modeOrder, a), order(modeOrder, b)) })
	return out
}

func (r *report) clientCounts() []int {
	var out []int
	for _, x := range r.results {
		if x.Clients > 0 && !slices.Contains(out, x.Clients) {
			out = append(out, x.Clients)
		}
	}
	slices.Sort(out)
	return out
}

// find returns the first result matching.
func (r *report) find(kind, mode, scen, loop string, clients int) (Result, bool) {
	for _, x := range r.results {
		if x.Kind == kind && x.Mode == mode && x.Scenario == scen && x.Loop == loop && (clients == 0 || x.Clients == clients) {
			return x, true
		}
	}
	return Result{}, false
}

func modeName(m string) string { return cmp.Or(modeNames[m], m) }

func mib(kib int64) string {
	if kib == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(kib)/1024)
}

func num(v float64) string {
	switch {
	case v == 0:
		return "–"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// throughput is the headline table: per mode and client count, pgbench
// and the three scenarios side by side.
func (r *report) throughput() string {
	var b strings.Builder
	b.WriteString("| mode | clients | pgbench TPS | uniform tx/s | uniform ÷ pgbench | hot source tx/s | ÷ uniform | hot sink tx/s | ÷ uniform |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.modes() {
		for _, c := range r.clientCounts() {
			pg, _ := r.find("pgbench", m, "", "", c)
			u, _ := r.find("paygate", m, string(uniform), "closed", c)
			hs, _ := r.find("paygate", m, string(hotSource), "closed", c)
			hk, _ := r.find("paygate", m, string(hotSink), "closed", c)
			if pg.TPS == 0 && u.TPS == 0 && hs.TPS == 0 && hk.TPS == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", modeName(m), c, num(pg.TPS),
				num(u.TPS), ratio(u.TPS, pg.TPS), num(hs.TPS), ratio(hs.TPS, u.TPS), num(hk.TPS), ratio(hk.TPS, u.TPS))
		}
	}
	return b.String()
}

// cells lists every closed-loop cell with its latency, memory and CPU.
func (r *report) cells() string {
	var b strings.Builder
	b.WriteString("| mode | clients | load | tx/s | p50 ms | p95 ms | p99 ms | gateway RSS MiB: idle → max | cores: gateway | postgres | load generator | gateway busy after, s |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range r.modes() {
		for _, c := range r.clientCounts() {
			if pg, ok := r.find("pgbench", m, "", "", c); ok {
				fmt.Fprintf(&b, "| %s | %d | pgbench tpcb-like (scale %d) | %s | avg %s | | | | | %s | %s | |\n", modeName(m), c, pg.Scale,
					num(pg.TPS), num(pg.AvgMS), num(pg.PostgresCores), num(pg.LoadgenCores))
			}
			for _, s := range scenarioOrder {
				x, ok := r.find("paygate", m, s, "closed", c)
				if !ok {
					continue
				}
				fmt.Fprintf(&b, "| %s | %d | paygate %s | %s | %s | %s | %s | %s → %s | %s | %s | %s | %.1f |\n", modeName(m), c, s,
					num(x.TPS), num(x.P50), num(x.P95), num(x.P99), mib(x.RSSIdleKiB), mib(x.RSSMaxKiB),
					num(x.GatewayCores), num(x.PostgresCores), num(x.LoadgenCores), x.DrainSeconds)
			}
		}
	}
	return b.String()
}

// batches lists the transfer committer's group commit in every paygate
// cell that recorded it; "" when none did.
func (r *report) batches() string {
	var b strings.Builder
	b.WriteString("| mode | clients | load | batches /s | transfers per batch | queue wait ms | booking ms (commit included) |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|\n")
	n := 0
	for _, m := range r.modes() {
		for _, c := range append(r.clientCounts(), 0) {
			for _, s := range scenarioOrder {
				loop, what := "closed", "paygate "+s
				if c == 0 {
					loop, what = "open", "paygate "+s+", open loop"
				}
				x, ok := r.find("paygate", m, s, loop, c)
				if !ok || x.Batches == 0 {
					continue
				}
				n++
				clients := strconv.Itoa(c)
				if c == 0 {
					clients = "–"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", modeName(m), clients, what,
					num(x.Batches), num(x.BatchMean), num(x.BatchWaitMS), num(x.BatchDurMS))
			}
		}
	}
	if n == 0 {
		return ""
	}
	return b.String()
}

// openLoop lists the fixed-rate runs.
func (r *report) openLoop() string {
	var b strings.Builder
	b.WriteString("| mode | scenario | rate /s | of the peak | achieved tx/s | p50 ms | p95 ms | p99 ms | max ms | gateway max RSS MiB | cores: gateway | postgres |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	n := 0
	for _, m := range r.modes() {
		for _, s := range scenarioOrder {
			x, ok := r.find("paygate", m, s, "open", 0)
			if !ok {
				continue
			}
			n++
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", modeName(m), s, num(x.TargetRate),
				ofPeak(x), num(x.TPS), num(x.P50), num(x.P95), num(x.P99), num(x.Max), mib(x.RSSMaxKiB), num(x.GatewayCores), num(x.PostgresCores))
		}
	}
	if n == 0 {
		return ""
	}
	return b.String()
}

func (r *report) startups() []float64 {
	var out []float64
	for _, x := range r.results {
		if x.Kind == "startup" {
			out = append(out, x.Seconds)
		}
	}
	return out
}

func (r *report) startup() string {
	s := r.startups()
	if len(s) == 0 {
		return ""
	}
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprintf("%.3f s", v)
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	return fmt.Sprintf("Start to ready (exec to `/readyz` 200, migrated database), %d starts: %s; median %.3f s, max %.3f s.\n",
		len(s), strings.Join(parts, ", "), sorted[len(sorted)/2], sorted[len(sorted)-1])
}

// goals states where each goal of issue 14 lands.
func (r *report) goals() string {
	var b strings.Builder
	b.WriteString("| goal (issue 14) | measured | met |\n|---|---|---|\n")
	met := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, c := range r.clientCounts() {
		pg, ok1 := r.find("pgbench", "durable", "", "", c)
		u, ok2 := r.find("paygate", "durable", string(uniform), "closed", c)
		if ok1 && ok2 {
			fmt.Fprintf(&b, "| durable uniform ≥ 1.0× pgbench, %d clients | %s / %s = %s | %s |\n", c, num(u.TPS), num(pg.TPS),
				ratio(u.TPS, pg.TPS), met(u.TPS >= pg.TPS))
		}
		for _, s := range []scenario{hotSource, hotSink} {
			h, ok := r.find("paygate", "durable", string(s), "closed", c)
			if ok && ok2 {
				fmt.Fprintf(&b, "| durable %s ≥ 0.5× uniform, %d clients | %s / %s = %s | %s |\n", s, c, num(h.TPS), num(u.TPS),
					ratio(h.TPS, u.TPS), met(h.TPS >= 0.5*u.TPS))
			}
		}
	}
	for _, s := range scenarioOrder {
		x, ok := r.find("paygate", "durable", s, "open", 0)
		switch {
		case !ok:
		case x.RateOfPeak != 0.5:
			// A fixed rate or another fraction compares settings; it
			// says nothing of the goal.
			what := "a fixed " + num(x.TargetRate) + "/s"
			if x.RateOfPeak != 0 {
				what = num(x.TargetRate) + "/s, " + ofPeak(x) + " of the peak"
			}
			fmt.Fprintf(&b, "| p99 ≤ 50 ms at half of peak, durable %s | not measured (open loop at %s) | – |\n", s, what)
		default:
			fmt.Fprintf(&b, "| p99 ≤ 50 ms at half of peak, durable %s | %.1f ms at %s/s | %s |\n", s, x.P99, num(x.TargetRate), met(x.P99 <= 50))
		}
	}
	var rss int64
	for _, x := range r.results {
		rss = max(rss, x.RSSMaxKiB)
	}
	if rss > 0 {
		fmt.Fprintf(&b, "| RSS ≤ 150 MiB under load | max %.0f MiB over all cells | %s |\n", float64(rss)/1024, met(rss <= 150*1024))
	}
	if s := r.startups(); len(s) > 0 {
		worst := slices.Max(s)
		fmt.Fprintf(&b, "| start to ready ≤ 1 s | max %.3f s of %d starts | %s |\n", worst, len(s), met(worst <= 1))
	}
	return b.String()
}

// tables is what the run prints.
func (r *report) tables() string {
	var b strings.Builder
	b.WriteString("\nThroughput (closed loop; tx/s = transfers answered 201 per second)\n\n")
	b.WriteString(r.throughput())
	b.WriteString("\nEvery cell\n\n")
	b.WriteString(r.cells())
	if t := r.batches(); t != "" {
		b.WriteString("\nGroup commit of the transfers (the gateway's batch metrics over each window)\n\n" + t)
	}
	if t := r.openLoop(); t != "" {
		b.WriteString("\nOpen loop at a fixed rate of half the 16-client peak (latency from the scheduled send time)\n\n")
		b.WriteString(t)
	}
	if s := r.startup(); s != "" {
		b.WriteString("\n" + s)
	}
	b.WriteString("\nGoals\n\n")
	b.WriteString(r.goals())
	return b.String()
}

func (r *report) file(name string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(b), "\n")
}

// settings renders settings-<mode>.txt (name|value lines) side by side.
func (r *report) settings() string {
	vals := map[string]map[string]string{}
	var names []string
	modes := r.modes()
	for _, m := range modes {
		vals[m] = map[string]string{}
		for line := range strings.SplitSeq(r.file("settings-"+m+".txt"), "\n") {
			k, v, ok := strings.Cut(line, "|")
			if !ok {
				continue
			}
			vals[m][k] = v
			if !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("| setting |")
	for _, m := range modes {
		b.WriteString(" " + modeName(m) + " |")
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(modes)) + "\n")
	for _, k := range names {
		fmt.Fprintf(&b, "| `%s` |", k)
		for _, m := range modes {
			fmt.Fprintf(&b, " %s |", cmp.Or(vals[m][k], "–"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// section is the run's part of the document.
func (r *report) section() string {
	m := r.meta
	get := func(k string) string { return cmp.Or(m[k], "?") }
	var b strings.Builder
	fmt.Fprintf(&b, "## %s: commit %s, %s\n\n", r.label, get("commit"), get("date"))
	fmt.Fprintf(&b, "Measured at commit `%s` (`git describe`: `%s`) on %s by `make bench`", get("commit"), get("describe"), get("date"))
	if v := m["command"]; v != "" {
		fmt.Fprintf(&b, " (`%s`)", v)
	}
	b.WriteString(".\n\n")
	fmt.Fprintf(&b, "**Noise.** The machine's %s cores are shared with other engineers' builds and tests. "+
		"Load average (1, 5, 15 min): %s when the run started, %s before the first cell, %s when it ended. "+
		"Expect single figures to move by tens of percent between runs; compare ratios to pgbench, measured minutes apart "+
		"on the same server, and rerun before trusting a small difference.\n\n",
		get("cpus"), get("loadavg"), get("loadavg_cells"), get("loadavg_end"))
	b.WriteString("| machine | |\n|---|---|\n")
	for _, kv := range [][2]string{{"CPU", get("cpu_model") + " × " + get("cpus")}, {"RAM", get("mem")},
		{"kernel", get("kernel")}, {"Go", get("go_version")}, {"PostgreSQL", get("pg_version")},
		{"each cell", get("cell")}, {"gateway", get("gateway")}, {"wall time of the run", get("wall")}} {
		fmt.Fprintf(&b, "| %s | %s |\n", kv[0], kv[1])
	}
	if s := r.settings(); s != "" {
		b.WriteString("\nPostgreSQL settings, as `SHOW` reported them in each mode:\n\n" + s)
	}
	b.WriteString("\n### Throughput\n\n" + r.throughput())
	b.WriteString("\n### Every cell\n\n" + r.cells())
	if t := r.batches(); t != "" {
		b.WriteString("\n### Group commit of the transfers\n\nFrom the gateway's batch metrics over each window: a batch is one database transaction and one commit.\n\n" + t)
	}
	if t := r.openLoop(); t != "" {
		b.WriteString("\n### Latency in the open loop (the goal's rate: half of the peak)\n\n" + t)
	}
	if s := r.startup(); s != "" {
		b.WriteString("\n### Start to ready\n\n" + s)
	}
	b.WriteString("\n### Goals\n\n" + r.goals())
	if top := r.file("cpu-top.txt"); top != "" {
		fmt.Fprintf(&b, "\n### CPU profile of the gateway (%s)\n\n", get("profile_cell"))
		if f := m["profile_file"]; f != "" {
			fmt.Fprintf(&b, "Raw profile: [`%s`](%s) (`go tool pprof -http :0 %s`). ", f, strings.TrimPrefix(f, "docs/"), f)
		}
		fmt.Fprintf(&b, "`go tool pprof -top`, measured at commit `%s`:\n\n```text\n%s\n```\n", get("commit"), top)
		if cum := r.file("cpu-top-cum.txt"); cum != "" {
			fmt.Fprintf(&b, "\nThe same profile by cumulative time (`go tool pprof -top -cum`):\n\n```text\n%s\n```\n", cum)
		}
	}
	var pgss []string
	for _, k := range [][2]string{{"pgss-total.md", "by total time"}, {"pgss-calls.md", "by calls"}, {"pgss-mean.md", "by mean time"}} {
		if t := r.file(k[0]); t != "" {
			pgss = append(pgss, "#### "+k[1]+"\n\n"+t+"\n")
		}
	}
	if len(pgss) > 0 {
		fmt.Fprintf(&b, "\n### pg_stat_statements (%s)\n\n%s\n\n%s", get("profile_cell"),
			"The paygate database's statements over the measured window of that cell (reset when it began); times in ms. "+
				"A statement's time includes its lock waits; a commit's WAL flush happens after the `commit` statement "+
				"has returned, so pg_stat_statements never sees it.", strings.Join(pgss, "\n"))
	}
	if w := r.file("waits.md"); w != "" {
		fmt.Fprintf(&b, "\n### PostgreSQL sessions, sampled (%s)\n\n%s\n\n%s\n", get("profile_cell"),
			"Every 100 ms of that window, each busy session of the paygate database (pg_stat_activity): the statement it runs "+
				"or last ran (by its query name), its state and what it waits on. `idle in transaction` + `Client:ClientRead` "+
				"is a transaction waiting for the gateway; `LWLock:WALWrite` and `IO:WALSync` are commits (or a one-statement "+
				"transaction's implicit commit) waiting for the WAL flush; `Lock:transactionid` is a row lock held until another "+
				"transaction commits.", w)
	}
	return b.String()
}

const docPreamble = `# Performance

Written by ` + "`make bench`" + ` (scripts/bench.sh, tools/cmd/paybench). Each run
writes its own section below, named by ` + "`BENCH_LABEL`" + ` (default ` + "`latest`" + `); a run
replaces the section of its label and keeps the others, so the ` + "`before`" + `
baseline of issue 14 stays next to later runs. Notes added by hand inside a
section stay until a run of the same label replaces it; a section no run
writes (` + "`analysis`" + `) is kept as it is.

## How to read it

- **One server, one machine.** A throwaway PostgreSQL cluster, the gateway
  (` + "`PAYGATE_ENV=prod`" + `, its Kafka producer on the dev broker, mails to a
  discarding SMTP sink, top-ups paid at ` + "`paygate sandbox`" + `, no trace
  export, so no span is recorded), the load generator and pgbench all
  share the machine's cores. Nothing here is a network benchmark.
- **Modes.** *Durable* is production: ` + "`fsync`" + `, ` + "`synchronous_commit`" + ` and
  ` + "`full_page_writes`" + ` on, so every commit waits for its WAL flush. *CPU-bound*
  turns all three off: commits cost no I/O and what is left is CPU. Each mode
  is set with ` + "`ALTER SYSTEM`" + ` and checked with ` + "`SHOW`" + ` before its cells.
- **Cells.** Before each cell the payers are funded (top-ups through the
  sandbox, waited for until ` + "`succeeded`" + `; not timed) and the gateway is idle;
  then a warm-up, then the measured window. *Closed loop*: N clients, each
  sending its next ` + "`POST /v1/transfers`" + ` (new ` + "`Idempotency-Key`" + `) when the
  last is answered; tx/s counts the 201s answered in the window. Any other
  answer fails the run.
- **Scenarios.** *uniform*: transfers between two random users of 32.
  *hot source*: every transfer pays out of one wallet. *hot sink*: every
  transfer pays into one wallet. The hot ones serialise on that wallet's
  row lock; ÷ uniform shows what that costs.
- **pgbench.** ` + "`pgbench -b tpcb-like -c N -j 2`" + ` for the same window on the
  same server, scale ≥ N: five statements and one commit per transaction,
  a fair ceiling for one transfer's transaction. ÷ pgbench is the figure to
  watch; absolute numbers move with the machine's load.
- **Open loop.** Transfers sent on a fixed schedule at half the
  closed-loop peak of that scenario at the lowest client count (16), answered
  or not; latency runs from the scheduled send time, so queueing counts (no
  coordinated omission). A run at another rate (` + "`BENCH_OPEN_RATE`" + `,
  ` + "`BENCH_RATE_OF_PEAK`" + `) says so in its table and measures no goal.
- **Memory and CPU.** RSS is the gateway's ` + "`VmRSS`" + `: when the cell began
  (idle), and the largest sampled every 100 ms during it. Go returns freed
  memory to the system lazily, so a cell can inherit a high idle RSS from
  what came before it (start-up computes an Argon2id hash of
  ` + "`PAYGATE_ARGON2_MEMORY_KIB`" + `). Cores are averages over the window from
  ` + "`/proc`" + `: the gateway, PostgreSQL (postmaster and backends), the load
  generator; their sum near the core count means the machine was the limit.
  *Busy after* is how long the gateway kept working once the load stopped:
  the outbox relay and the mail consumer catching up, work the tx/s column
  does not pay for.
- **Group commit.** The gateway's own batch metrics (` + "`paygate_batch_*`" + ` of
  the transfer committer) read from its ` + "`/metrics`" + ` at the window's start
  and end: batches per second, transfers per batch, how long a transfer
  queued for its batch and how long a batch took to book, commit included.
  With two booking workers, tx/s ≈ 2 × transfers per batch ÷ booking time.
- **Start to ready.** Time from exec to ` + "`/readyz`" + ` 200 on an already migrated
  database (` + "`PAYGATE_MIGRATE_ON_START=false`" + `, topics already created).
- **Profiles.** During the durable uniform 16-client cell (or the one
  ` + "`BENCH_PROFILE`" + ` names), a CPU profile of the gateway from its pprof endpoint
  (` + "`PAYGATE_PPROF_ENABLED`" + `, operations listener), ` + "`pg_stat_statements`" + ` and
  sampled sessions over the cell: where the time goes.
- **Run it again.** ` + "`make bench`" + `; ` + "`BENCH_DURATION`" + ` (seconds per cell),
  ` + "`BENCH_WARMUP`" + `, ` + "`BENCH_CLIENTS`" + ` (e.g. "16 64"), ` + "`BENCH_SCENARIOS`" + `,
  ` + "`BENCH_MODES`" + `, ` + "`BENCH_OPEN_MODES`" + ` and ` + "`BENCH_LABEL`" + ` change it, and
  ` + "`BENCH_GATEWAY_ENV`" + ` passes settings to the gateway for tuning experiments;
  ` + "`BENCH_OPEN_RATE`" + ` runs the open loop at a fixed rate to compare settings
  at one load, and ` + "`BENCH_PROFILE=\"durable uniform open\"`" + ` profiles the
  open-loop cell instead (scripts/bench.sh lists them all).
`

// mergeDoc returns the document with the preamble regenerated, the
// section of label replaced (or appended), and every other section kept
// in its place.
func mergeDoc(old, label, section string) string {
	type sec struct{ label, body string }
	var secs []sec
	rest := old
	for {
		i := strings.Index(rest, "<!-- bench:begin ")
		if i < 0 {
			break
		}
		rest = rest[i+len("<!-- bench:begin "):]
		j := strings.Index(rest, " -->")
		if j < 0 {
			break
		}
		l := rest[:j]
		end := "<!-- bench:end " + l + " -->"
		k := strings.Index(rest, end)
		if k < 0 {
			break
		}
		secs = append(secs, sec{l, strings.TrimSpace(rest[j+len(" -->") : k])})
		rest = rest[k+len(end):]
	}
	found := false
	for i := range secs {
		if secs[i].label == label {
			secs[i].body, found = strings.TrimSpace(section), true
		}
	}
	if !found {
		secs = append(secs, sec{label, strings.TrimSpace(section)})
	}
	var b strings.Builder
	b.WriteString(docPreamble)
	for _, s := range secs {
		fmt.Fprintf(&b, "\n<!-- bench:begin %s -->\n%s\n<!-- bench:end %s -->\n", s.label, s.body, s.label)
	}
	return b.String()
}

// ofPeak is an open loop's rate as a fraction of the peak, or "fixed".
func ofPeak(x Result) string {
	if x.RateOfPeak == 0 {
		return "fixed"
	}
	return strconv.FormatFloat(x.RateOfPeak, 'g', -1, 64) + "×"
}
