package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Transfers are of amountMin to amountMax-1 minor units (PAYGATE_TRANSFER_MIN
// is 10,000 by default).
const (
	amountMin = 10_000
	amountMax = 20_000
)

// scenario says who pays whom.
type scenario string

const (
	// uniform: transfers between two random distinct users of the pool.
	uniform scenario = "uniform"
	// hotSource: every transfer pays out of user 0, into a random other.
	hotSource scenario = "hot-source"
	// hotSink: every transfer pays into user 0, from a random other.
	hotSink scenario = "hot-sink"
)

func (s scenario) valid() bool { return s == uniform || s == hotSource || s == hotSink }

// pick returns the payer and the payee of the next transfer among n users.
func (s scenario) pick(n int) (from, to int) {
	switch s {
	case hotSource:
		return 0, 1 + mrand.IntN(n-1)
	case hotSink:
		return 1 + mrand.IntN(n-1), 0
	default:
		from, to = mrand.IntN(n), mrand.IntN(n-1)
		if to >= from {
			to++
		}
		return from, to
	}
}

// payers are the users whose wallets the scenario debits.
func (s scenario) payers(n int) []int {
	switch s {
	case hotSource:
		return []int{0}
	case hotSink:
		out := make([]int, 0, n-1)
		for i := 1; i < n; i++ {
			out = append(out, i)
		}
		return out
	default:
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
}

type transferBody struct {
	To     string `json:"to"`
	Amount int64  `json:"amount"`
}

// tally collects the outcome of transfers from many goroutines.
type tally struct {
	mu       sync.Mutex
	lat      []time.Duration
	ok       int
	failed   int
	failures map[string]int
}

func (t *tally) fail(code int, body []byte, err error) {
	what := fmt.Sprintf("HTTP %d: %.200s", code, strings.TrimSpace(string(body)))
	if err != nil {
		what = err.Error()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed++
	if t.failures == nil {
		t.failures = map[string]int{}
	}
	if len(t.failures) < 10 {
		t.failures[what]++
	}
}

func (t *tally) add(lat []time.Duration, ok int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lat = append(t.lat, lat...)
	t.ok += ok
}

func (t *tally) err() error {
	if t.failed == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d transfers failed:", t.failed)
	for what, n := range t.failures {
		fmt.Fprintf(&b, "\n  %dx %s", n, what)
	}
	return errors.New(b.String())
}

// runCmd funds the payers of a scenario, waits for an idle gateway and
// runs one cell: a warm-up, then the measured window.
func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	sandboxURL := fs.String("sandbox-url", "", "the payment sandbox, which is told to pay each top-up (empty: the sandbox auto-pays)")
	usersFile := fs.String("users", "users.json", "users written by paybench seed")
	scen := fs.String("scenario", "uniform", "uniform, hot-source or hot-sink")
	clients := fs.Int("clients", 16, "closed loop: concurrent clients, each sending its next transfer when the last is answered")
	rate := fs.Float64("rate", 0, "open loop: transfers per second on a fixed schedule (0: closed loop)")
	maxInflight := fs.Int("max-inflight", 2000, "open loop: sends skipped (counted as dropped) beyond this many in flight")
	duration := fs.Duration("duration", 12*time.Second, "measured window")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured load before the window")
	mode := fs.String("mode", "", "label of the server settings (durable, cpu)")
	results := fs.String("results", "", "file the result line is appended to")
	pid := fs.Int("pid", 0, "the gateway's pid: its RSS and CPU are sampled, and it must stay alive")
	pgPid := fs.Int("pg-pid", 0, "the postmaster's pid: PostgreSQL's CPU is measured")
	maxRate := fs.Float64("max-rate", 3000, "closed loop: the highest rate the payers are funded for")
	profileURL := fs.String("cpuprofile-url", "", "pprof CPU profile URL fetched during the window (e.g. http://ops/debug/pprof/profile?seconds=10)")
	profileOut := fs.String("cpuprofile-out", "", "file the CPU profile is written to")
	metricsURL := fs.String("metrics-url", "", "the gateway's /metrics: the transfer committer's batches over the window are recorded")
	atStart := fs.String("at-start", "", "shell command run when the window starts (e.g. a pg_stat_statements reset)")
	idleTimeout := fs.Duration("quiesce-timeout", 3*time.Minute, "longest wait for an idle gateway before and after the run")
	peakFraction := fs.Float64("rate-of-peak", 0, "open loop at this fraction of the closed-loop tx/s of the same mode and scenario with -peak-clients, read from -results")
	peakClients := fs.Int("peak-clients", 16, "the closed-loop cell -rate-of-peak refers to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *peakFraction > 0 {
		peak, err := closedTPS(*results, *mode, *scen, *peakClients)
		if err != nil {
			return err
		}
		*rate = *peakFraction * peak
	}
	sc := scenario(*scen)
	if !sc.valid() {
		return fmt.Errorf("unknown scenario %q", *scen)
	}
	users, err := loadUsers(*usersFile)
	if err != nil {
		return err
	}
	open := *rate > 0
	if !open && *clients < 1 {
		return errors.New("need -clients ≥ 1 or -rate > 0")
	}
	conns := *clients * 2
	if open {
		conns = 512
	}
	a := newAPI(*base, conns)
	a.sandbox = *sandboxURL
	ctx := context.Background()

	// Funding: enough for the fastest rate expected, spread over the
	// payers, with room to spare; not timed.
	fundRate := *maxRate
	if open {
		fundRate = *rate
	}
	payers := sc.payers(len(users))
	secs := (*warmup + *duration).Seconds() + 5
	need := int64(fundRate*secs*amountMax*1.5/float64(len(payers))) + 10*amountMax
	t0 := time.Now()
	n, err := a.fund(ctx, users, payers, need)
	if err != nil {
		return fmt.Errorf("funding: %w", err)
	}
	if n > 0 {
		fmt.Printf("funded %d payer(s) to %d with %d top-ups in %s\n", len(payers), need, n, time.Since(t0).Round(time.Millisecond))
	}
	if *pid > 0 {
		if _, err := quiesce(*pid, *idleTimeout); err != nil {
			return err
		}
	}

	res := Result{Kind: "paygate", Mode: *mode, Scenario: string(sc), Loop: "closed", Clients: *clients, Seconds: duration.Seconds()}
	if open {
		res.Loop, res.Clients, res.TargetRate, res.RateOfPeak = "open", 0, *rate, *peakFraction
	}
	if *pid > 0 {
		if res.RSSIdleKiB, err = rssKiB(*pid); err != nil {
			return fmt.Errorf("the gateway (pid %d): %w", *pid, err)
		}
	}
	rss := sampleRSS(*pid)
	start := time.Now()
	warmEnd := start.Add(*warmup)
	end := warmEnd.Add(*duration)
	var t tally
	var dropped atomic.Int64
	var wg sync.WaitGroup
	send := func(from, to int) (int, []byte, error) {
		return a.do(ctx, http.MethodPost, "/v1/transfers", users[from].Token,
			transferBody{To: users[to].Account, Amount: amountMin + mrand.Int64N(amountMax-amountMin)}, newKey())
	}
	if open {
		wg.Go(func() { dropped.Store(openLoop(sc, len(users), *rate, *maxInflight, start, warmEnd, end, send, &t)) })
	} else {
		for range *clients {
			wg.Go(func() { closedLoop(sc, len(users), warmEnd, end, send, &t) })
		}
	}

	// The window starts after the warm-up: reset hook, CPU meter, profile.
	time.Sleep(time.Until(warmEnd))
	if *atStart != "" {
		if out, err := exec.Command("sh", "-c", *atStart).CombinedOutput(); err != nil {
			return fmt.Errorf("-at-start %q: %v\n%s", *atStart, err, out)
		}
	}
	cpu := startCPU(*pid, *pgPid)
	var batchesBefore counters
	if *metricsURL != "" {
		if batchesBefore, err = scrapeBatches(*metricsURL); err != nil {
			return fmt.Errorf("-metrics-url: %w", err)
		}
	}
	profErr := make(chan error, 1)
	if *profileURL != "" {
		go func() { profErr <- fetchProfile(*profileURL, *profileOut) }()
	} else {
		profErr <- nil
	}
	time.Sleep(time.Until(end))
	res.GatewayCores, res.PostgresCores, res.LoadgenCores = cpu.cores()
	var batchesAfter counters
	if *metricsURL != "" {
		if batchesAfter, err = scrapeBatches(*metricsURL); err != nil {
			return fmt.Errorf("-metrics-url: %w", err)
		}
	}
	wg.Wait()
	maxRSS, rssErr := rss.Stop()
	res.RSSMaxKiB = maxRSS
	if rssErr != nil {
		return rssErr
	}
	if err := <-profErr; err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	res.OK, res.Failed, res.Dropped = t.ok, t.failed, int(dropped.Load())
	res.TPS = float64(t.ok) / duration.Seconds()
	res.percentiles(t.lat)
	if *metricsURL != "" && res.OK > 0 {
		if err := batchStats(&res, batchesBefore, batchesAfter, *duration); err != nil {
			return fmt.Errorf("-metrics-url: %w", err)
		}
	}
	if *pid > 0 {
		d, err := quiesce(*pid, *idleTimeout)
		if err != nil {
			return err
		}
		res.DrainSeconds = d.Seconds()
	}

	what := fmt.Sprintf("%d clients", *clients)
	if open {
		what = fmt.Sprintf("open loop at %.0f/s", *rate)
	}
	fmt.Printf("paygate %s %s, %s: %.1f transfers/s (ok=%d failed=%d dropped=%d) p50=%.1fms p95=%.1fms p99=%.1fms max=%.1fms"+
		" rss=%.1f→%.1fMiB cores: gateway=%.2f postgres=%.2f loadgen=%.2f; idle %.1fs after\n",
		*mode, sc, what, res.TPS, res.OK, res.Failed, res.Dropped, res.P50, res.P95, res.P99, res.Max,
		float64(res.RSSIdleKiB)/1024, float64(res.RSSMaxKiB)/1024, res.GatewayCores, res.PostgresCores, res.LoadgenCores, res.DrainSeconds)
	if err := t.err(); err != nil {
		return err
	}
	if res.Dropped > 0 {
		return fmt.Errorf("open loop: %d sends dropped with %d already in flight: the gateway cannot keep up with %.0f/s", res.Dropped, *maxInflight, *rate)
	}
	if res.OK == 0 {
		return errors.New("no transfer succeeded in the window")
	}
	return appendResult(*results, res)
}

type sendFunc func(from, to int) (int, []byte, error)

// closedLoop sends transfers one after the other until end; those answered
// within [warmEnd, end] are counted.
func closedLoop(sc scenario, n int, warmEnd, end time.Time, send sendFunc, t *tally) {
	var lat []time.Duration
	ok := 0
	for time.Now().Before(end) {
		from, to := sc.pick(n)
		start := time.Now()
		code, body, err := send(from, to)
		done := time.Now()
		if err != nil || code != http.StatusCreated {
			t.fail(code, body, err)
			continue
		}
		if !done.Before(warmEnd) && !done.After(end) {
			ok++
			lat = append(lat, done.Sub(start))
		}
	}
	t.add(lat, ok)
}

// openLoop sends a transfer every 1/rate seconds, whether or not earlier
// ones were answered, until end. A transfer's latency runs from its
// scheduled send time, so time spent queued behind a slow gateway counts
// (no coordinated omission). It returns the sends skipped in the window
// because maxInflight were already in flight.
func openLoop(sc scenario, n int, rate float64, maxInflight int, start, warmEnd, end time.Time, send sendFunc, t *tally) int64 {
	interval := time.Duration(float64(time.Second) / rate)
	var inflight atomic.Int64
	var dropped int64
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		if inflight.Load() >= int64(maxInflight) {
			if !at.Before(warmEnd) {
				dropped++
			}
			continue
		}
		inflight.Add(1)
		wg.Go(func() {
			defer inflight.Add(-1)
			from, to := sc.pick(n)
			code, body, err := send(from, to)
			done := time.Now()
			if err != nil || code != http.StatusCreated {
				t.fail(code, body, err)
				return
			}
			if !at.Before(warmEnd) {
				t.add([]time.Duration{done.Sub(at)}, 1)
			}
		})
	}
	wg.Wait()
	return dropped
}

// closedTPS is the tx/s of a closed-loop cell recorded in the results.
func closedTPS(results, mode, scen string, clients int) (float64, error) {
	rs, err := readResults(results)
	if err != nil {
		return 0, err
	}
	for _, r := range rs {
		if r.Kind == "paygate" && r.Loop == "closed" && r.Mode == mode && r.Scenario == scen && r.Clients == clients && r.TPS > 0 {
			return r.TPS, nil
		}
	}
	return 0, fmt.Errorf("%s: no closed-loop %s %s cell with %d clients to take the peak from", results, mode, scen, clients)
}

// fetchProfile GETs a pprof profile into out.
func fetchProfile(url, out string) error {
	if out == "" {
		return errors.New("-cpuprofile-out is required with -cpuprofile-url")
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %.300s (is PAYGATE_PPROF_ENABLED on?)", url, resp.StatusCode, b)
	}
	return os.WriteFile(out, b, 0o644)
}

// quiesce waits until the gateway is idle: under 5% of a core over two
// half-second windows in a row. It returns how long the gateway was still
// busy, and fails when the gateway exits or stays busy past timeout.
func quiesce(pid int, timeout time.Duration) (time.Duration, error) {
	const window = 500 * time.Millisecond
	start := time.Now()
	var calmSince time.Time
	calm := 0
	for {
		t0, w0 := cpuTicks(pid, false), time.Now()
		time.Sleep(window)
		if !alive(pid) {
			return 0, fmt.Errorf("the gateway (pid %d) exited", pid)
		}
		cores := float64(cpuTicks(pid, false)-t0) / clockTicks / time.Since(w0).Seconds()
		if cores < 0.05 {
			if calm == 0 {
				calmSince = w0
			}
			if calm++; calm == 2 {
				return calmSince.Sub(start), nil
			}
			continue
		}
		calm = 0
		if time.Since(start) > timeout {
			return 0, fmt.Errorf("the gateway (pid %d) was still busy (%.2f cores) %s after the load stopped", pid, cores, timeout)
		}
	}
}

// quiesceCmd waits for an idle gateway (before pgbench runs, so that the
// gateway's leftover work does not count against it).
func quiesceCmd(args []string) error {
	fs := flag.NewFlagSet("quiesce", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "the gateway's pid")
	timeout := fs.Duration("timeout", 3*time.Minute, "longest wait")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pid <= 0 {
		return errors.New("-pid is required")
	}
	_, err := quiesce(*pid, *timeout)
	return err
}

// readyCmd polls /readyz from the moment the gateway was exec'd (-since,
// seconds since the epoch, e.g. bash's $EPOCHREALTIME) until it answers
// 200, and records the time it took.
func readyCmd(args []string) error {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "gateway base URL")
	since := fs.String("since", "", "when the gateway was started, in seconds since the epoch")
	pid := fs.Int("pid", 0, "the gateway's pid: fail at once if it exits")
	timeout := fs.Duration("timeout", time.Minute, "longest wait")
	mode := fs.String("mode", "", "label of the server settings")
	results := fs.String("results", "", "file the result line is appended to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secs, err := strconv.ParseFloat(strings.ReplaceAll(*since, ",", "."), 64)
	if err != nil {
		return fmt.Errorf("-since %q: %w", *since, err)
	}
	t0 := time.Unix(0, int64(secs*1e9))
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(*base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if *pid > 0 && !alive(*pid) {
			return fmt.Errorf("the gateway (pid %d) exited before it was ready", *pid)
		}
		if time.Since(t0) > *timeout {
			return fmt.Errorf("the gateway was not ready after %s", *timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	d := time.Since(t0)
	fmt.Printf("gateway ready %s after exec\n", d.Round(time.Millisecond))
	return appendResult(*results, Result{Kind: "startup", Mode: *mode, Seconds: d.Seconds()})
}
