package main

import (
	"os"
	"strings"
	"testing"
)

// TestPerformanceDocStartsWithThePreamble: docs/performance.md begins
// with the preamble the next run writes, so that an edit made to the
// document alone, which that run would undo, fails here instead.
func TestPerformanceDocStartsWithThePreamble(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/performance.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(doc), docPreamble) {
		t.Fatal("docs/performance.md does not start with docPreamble: edit the preamble in tools/cmd/paybench/report.go and copy it to the document")
	}
}

// TestOnlyAnOpenLoopAtHalfThePeakMeasuresTheLatencyGoal: the goals table
// judges the p99 goal from an open loop run at half of the peak, and
// names any other rate (a fixed one, another fraction) without a verdict;
// the open-loop table says which rate each run used.
func TestOnlyAnOpenLoopAtHalfThePeakMeasuresTheLatencyGoal(t *testing.T) {
	open := func(scen string, rate, ofPeak, p99 float64) Result {
		return Result{Kind: "paygate", Mode: "durable", Scenario: scen, Loop: "open", TargetRate: rate, RateOfPeak: ofPeak, P99: p99, TPS: rate}
	}
	r := &report{results: []Result{open("uniform", 367, 0.5, 54.5), open("hot-source", 300, 0, 20), open("hot-sink", 100, 0.25, 10)}}
	goals := r.goals()
	for _, want := range []string{
		"| p99 ≤ 50 ms at half of peak, durable uniform | 54.5 ms at 367/s | **no** |",
		"| p99 ≤ 50 ms at half of peak, durable hot-source | not measured (open loop at a fixed 300/s) | – |",
		"| p99 ≤ 50 ms at half of peak, durable hot-sink | not measured (open loop at 100/s, 0.25× of the peak) | – |",
	} {
		if !strings.Contains(goals, want) {
			t.Errorf("goals lack %q:\n%s", want, goals)
		}
	}
	table := r.openLoop()
	for _, want := range []string{"| durable | uniform | 367 | 0.5× |", "| durable | hot-source | 300 | fixed |"} {
		if !strings.Contains(table, want) {
			t.Errorf("open-loop table lacks %q:\n%s", want, table)
		}
	}
}
