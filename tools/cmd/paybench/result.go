package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Result is one measured cell of the benchmark, one JSON line in the
// results file.
type Result struct {
	// Kind is paygate (transfers over HTTP), pgbench, or startup (the
	// gateway's exec to /readyz 200).
	Kind     string `json:"kind"`
	Mode     string `json:"mode,omitempty"`     // durable or cpu
	Scenario string `json:"scenario,omitempty"` // uniform, hot-source, hot-sink (paygate)
	Loop     string `json:"loop,omitempty"`     // closed or open (paygate)
	Clients  int    `json:"clients,omitempty"`
	// TargetRate is the open loop's fixed rate, per second.
	TargetRate float64 `json:"target_rate,omitempty"`
	// RateOfPeak is the fraction of the closed-loop peak TargetRate was
	// set to; 0 for a rate given as such (BENCH_OPEN_RATE). Only an open
	// loop at half of the peak measures the latency goal.
	RateOfPeak float64 `json:"rate_of_peak,omitempty"`
	Seconds    float64 `json:"seconds"` // the measured window, or the start-up time
	OK         int     `json:"ok,omitempty"`
	Failed     int     `json:"failed,omitempty"`
	// Dropped counts open-loop sends skipped because too many requests
	// were already in flight.
	Dropped int     `json:"dropped,omitempty"`
	TPS     float64 `json:"tps,omitempty"`
	// Latencies in milliseconds: of the transfers answered in the window
	// (open loop: from their scheduled send time); pgbench's average.
	P50   float64 `json:"p50_ms,omitempty"`
	P95   float64 `json:"p95_ms,omitempty"`
	P99   float64 `json:"p99_ms,omitempty"`
	Max   float64 `json:"max_ms,omitempty"`
	AvgMS float64 `json:"avg_ms,omitempty"`
	// RSSMaxKiB is the gateway's largest VmRSS during the run; RSSIdleKiB
	// its VmRSS when the run began (idle, after funding).
	RSSMaxKiB  int64 `json:"rss_max_kib,omitempty"`
	RSSIdleKiB int64 `json:"rss_idle_kib,omitempty"`
	// Cores used on average over the window.
	GatewayCores  float64 `json:"gateway_cores,omitempty"`
	PostgresCores float64 `json:"postgres_cores,omitempty"`
	LoadgenCores  float64 `json:"loadgen_cores,omitempty"`
	// DrainSeconds is how long the gateway took to go idle after the
	// window: the asynchronous work (outbox relay, mail consumer) the
	// requests left behind.
	DrainSeconds float64 `json:"drain_seconds,omitempty"`
	// The transfer committer's group commit over the window (with
	// -metrics-url): batches per second, items per batch, an item's mean
	// wait for its batch and a batch's mean booking time, commit included.
	Batches     float64 `json:"batches_per_s,omitempty"`
	BatchMean   float64 `json:"batch_mean,omitempty"`
	BatchWaitMS float64 `json:"batch_wait_ms,omitempty"`
	BatchDurMS  float64 `json:"batch_booking_ms,omitempty"`
	// Scale is pgbench's scale factor.
	Scale int `json:"scale,omitempty"`
}

func appendResult(path string, r Result) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func readResults(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// percentiles fills p50, p95, p99 and max from latencies (sorted here).
func (r *Result) percentiles(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(float64(len(lat))*p))]) }
	r.P50, r.P95, r.P99, r.Max = at(0.50), at(0.95), at(0.99), ms(lat[len(lat)-1])
}
