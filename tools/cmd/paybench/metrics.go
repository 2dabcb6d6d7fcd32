package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The transfer committer's histograms, as the gateway exports them
// (internal/platform/batch's metric names through the Prometheus
// exporter). A window with transfers but no batch under these names is an
// error, so a renamed metric cannot turn into a silently empty table.
const (
	batchSizeMetric = "paygate_batch_size"
	batchWaitMetric = "paygate_batch_queue_wait_seconds"
	batchDurMetric  = "paygate_batch_duration_seconds"
	batchCommitter  = `committer="transfer"`
)

// counters is the _sum and _count of some histograms at one moment, keyed
// by the series' name (name_sum, name_count).
type counters map[string]float64

// scrapeBatches reads the transfer committer's histogram sums and counts
// from the gateway's /metrics.
func scrapeBatches(url string) (counters, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return parseBatches(resp.Body)
}

// parseBatches picks the transfer committer's _sum and _count lines out of
// a Prometheus text exposition.
func parseBatches(r io.Reader) (counters, error) {
	c := counters{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || !strings.Contains(line, batchCommitter) {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		switch strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count") {
		case batchSizeMetric, batchWaitMetric, batchDurMetric:
		default:
			continue
		}
		if !strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") {
			continue
		}
		_, val, ok := strings.Cut(rest, "} ")
		if !ok {
			return nil, fmt.Errorf("metrics: malformed line %q", line)
		}
		v, err := strconv.ParseFloat(strings.Fields(val)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", line, err)
		}
		c[name] = v
	}
	return c, sc.Err()
}

// batchStats fills r's group-commit figures from the counters at the
// window's start and end: batches per second, their mean size, the mean
// time an item queued for its batch, and a batch's mean booking time
// (its transaction, commit included). It fails when no batch was counted.
func batchStats(r *Result, before, after counters, window time.Duration) error {
	delta := func(name string) float64 { return after[name] - before[name] }
	n := delta(batchSizeMetric + "_count")
	if n <= 0 {
		return fmt.Errorf("no %s_count{%s} grew over the window", batchSizeMetric, batchCommitter)
	}
	r.Batches = n / window.Seconds()
	r.BatchMean = delta(batchSizeMetric+"_sum") / n
	if items := delta(batchWaitMetric + "_count"); items > 0 {
		r.BatchWaitMS = 1000 * delta(batchWaitMetric+"_sum") / items
	}
	if d := delta(batchDurMetric + "_count"); d > 0 {
		r.BatchDurMS = 1000 * delta(batchDurMetric+"_sum") / d
	}
	return nil
}
