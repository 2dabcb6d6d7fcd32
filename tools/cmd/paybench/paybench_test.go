package main

import (
	"fmt"
	"net"
	"net/smtp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMergeDoc: a run replaces its own label's section and keeps the
// others in place; a new label is appended; the preamble is regenerated.
func TestMergeDoc(t *testing.T) {
	doc := mergeDoc("", "before", "## before\nOLD-NUMBERS\n")
	doc = mergeDoc(doc, "latest", "## latest\nFIRST-RUN\n")
	doc = mergeDoc(doc, "latest", "## latest\nSECOND-RUN\n")
	if !strings.HasPrefix(doc, docPreamble) {
		t.Fatal("the preamble is not first")
	}
	if strings.Count(doc, "<!-- bench:begin latest -->") != 1 || strings.Contains(doc, "FIRST-RUN") || !strings.Contains(doc, "SECOND-RUN") {
		t.Fatalf("latest not replaced:\n%s", doc)
	}
	if i, j := strings.Index(doc, "OLD-NUMBERS"), strings.Index(doc, "SECOND-RUN"); i < 0 || j < i {
		t.Fatalf("before lost or moved:\n%s", doc)
	}
	// A hand-written section keeps its text and place through later runs.
	hand := strings.Replace(doc, "<!-- bench:begin before -->",
		"<!-- bench:begin analysis -->\nBY-HAND\n<!-- bench:end analysis -->\n<!-- bench:begin before -->", 1)
	if kept := mergeDoc(hand, "latest", "## latest\nTHIRD-RUN\n"); !strings.Contains(kept, "BY-HAND") ||
		strings.Index(kept, "BY-HAND") > strings.Index(kept, "OLD-NUMBERS") {
		t.Fatalf("the hand-written section was lost or moved:\n%s", kept)
	}
	again := mergeDoc(doc, "before", "## before\nNEW-NUMBERS\n")
	if strings.Contains(again, "OLD-NUMBERS") || strings.Index(again, "NEW-NUMBERS") > strings.Index(again, "SECOND-RUN") {
		t.Fatalf("before not replaced in place:\n%s", again)
	}
}

// TestParsePgbench reads pgbench 15's summary, and refuses one with
// failed transactions or without a TPS.
func TestParsePgbench(t *testing.T) {
	out := `pgbench (15.14 (Debian 15.14-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 64
query mode: simple
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 12 s
number of transactions actually processed: 16912
number of failed transactions: 0 (0.000%)
latency average = 11.340 ms
initial connection time = 21.456 ms
tps = 1410.926342 (without initial connection time)
`
	r, err := parsePgbench(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.TPS != 1410.926342 || r.AvgMS != 11.34 || r.Seconds != 12 || r.OK != 16912 {
		t.Fatalf("parsed %+v", r)
	}
	if _, err := parsePgbench(strings.Replace(out, "failed transactions: 0", "failed transactions: 3", 1)); err == nil {
		t.Error("failed transactions accepted")
	}
	if _, err := parsePgbench("pgbench: error: connection refused\n"); err == nil {
		t.Error("output without tps accepted")
	}
}

// TestScenarios: uniform never pays oneself; hot source always pays out
// of user 0 and hot sink into it; the payers are those debited.
func TestScenarios(t *testing.T) {
	for range 1000 {
		if f, to := uniform.pick(32); f == to || f < 0 || to < 0 || f >= 32 || to >= 32 {
			t.Fatalf("uniform %d -> %d", f, to)
		}
		if f, to := hotSource.pick(32); f != 0 || to == 0 {
			t.Fatalf("hot source %d -> %d", f, to)
		}
		if f, to := hotSink.pick(32); to != 0 || f == 0 {
			t.Fatalf("hot sink %d -> %d", f, to)
		}
	}
	if len(uniform.payers(32)) != 32 || len(hotSource.payers(32)) != 1 || len(hotSink.payers(32)) != 31 {
		t.Fatal("payers")
	}
}

// TestSMTPSink: net/smtp delivers a mail to the sink, which counts it.
func TestSMTPSink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mails atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSMTP(c, &mails)
		}
	}()
	msg := "Subject: hi\r\n\r\nline\r\n..dot-stuffed\r\n"
	for range 2 {
		if err := smtp.SendMail(ln.Addr().String(), nil, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(time.Second); mails.Load() != 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := mails.Load(); n != 2 {
		t.Fatalf("%d mails counted, want 2", n)
	}
}

// TestPercentiles picks nearest-rank values in milliseconds.
func TestPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	var r Result
	r.percentiles(lat)
	if r.P50 != 51 || r.P95 != 96 || r.P99 != 100 || r.Max != 100 {
		t.Fatalf("%+v", r)
	}
}

// TestBatchStats: the transfer committer's series are picked out of an
// exposition (another committer's and other metrics' are not), and the
// window's figures are the differences of sums over counts; a window in
// which no batch was counted is an error.
func TestBatchStats(t *testing.T) {
	expo := func(batches, items, waitSum, durSum float64) string {
		return strings.Join([]string{
			"# HELP paygate_batch_size Items booked per batch.",
			"# TYPE paygate_batch_size histogram",
			`paygate_batch_size_bucket{committer="transfer",otel_scope_name="x",le="8"} 3`,
			fmt.Sprintf(`paygate_batch_size_sum{committer="transfer",otel_scope_name="x"} %g`, items),
			fmt.Sprintf(`paygate_batch_size_count{committer="transfer",otel_scope_name="x"} %g`, batches),
			`paygate_batch_size_sum{committer="other",otel_scope_name="x"} 999`,
			`paygate_batch_size_count{committer="other",otel_scope_name="x"} 999`,
			fmt.Sprintf(`paygate_batch_queue_wait_seconds_sum{committer="transfer",otel_scope_name="x"} %g`, waitSum),
			fmt.Sprintf(`paygate_batch_queue_wait_seconds_count{committer="transfer",otel_scope_name="x"} %g`, items),
			fmt.Sprintf(`paygate_batch_duration_seconds_sum{committer="transfer",otel_scope_name="x"} %g`, durSum),
			fmt.Sprintf(`paygate_batch_duration_seconds_count{committer="transfer",otel_scope_name="x"} %g`, batches),
			`paygate_http_requests_total{committer="transfer"} 5`,
		}, "\n") + "\n"
	}
	before, err := parseBatches(strings.NewReader(expo(10, 40, 0.4, 0.1)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseBatches(strings.NewReader(expo(110, 840, 8.4, 1.1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 6 {
		t.Fatalf("picked %d series, want the transfer committer's 6: %v", len(after), after)
	}
	var r Result
	if err := batchStats(&r, before, after, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// 100 batches of 800 items in 10 s; 8 s of waiting over 800 items; 1 s
	// of booking over 100 batches.
	if r.Batches != 10 || r.BatchMean != 8 || r.BatchWaitMS != 10 || r.BatchDurMS != 10 {
		t.Fatalf("batches/s %g, mean %g, wait %g ms, booking %g ms; want 10, 8, 10, 10", r.Batches, r.BatchMean, r.BatchWaitMS, r.BatchDurMS)
	}
	if err := batchStats(&r, after, after, 10*time.Second); err == nil {
		t.Fatal("a window without batches was not an error")
	}
	if _, err := parseBatches(strings.NewReader(`paygate_batch_size_sum{committer="transfer"} x` + "\n")); err == nil {
		t.Fatal("a malformed value was accepted")
	}
}
