package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"
)

var (
	pgbenchTPS      = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)
	pgbenchLatency  = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	pgbenchFailed   = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	pgbenchDuration = regexp.MustCompile(`(?m)^duration: ([0-9]+) s`)
	pgbenchDone     = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
)

// parsePgbench reads pgbench's summary into a result.
func parsePgbench(out string) (Result, error) {
	var r Result
	m := pgbenchTPS.FindStringSubmatch(out)
	if m == nil {
		return r, errors.New("no tps line in pgbench's output")
	}
	r.TPS, _ = strconv.ParseFloat(m[1], 64)
	if m := pgbenchLatency.FindStringSubmatch(out); m != nil {
		r.AvgMS, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := pgbenchDuration.FindStringSubmatch(out); m != nil {
		r.Seconds, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := pgbenchDone.FindStringSubmatch(out); m != nil {
		r.OK, _ = strconv.Atoi(m[1])
	}
	if m := pgbenchFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.Atoi(m[1])
	}
	if r.Failed > 0 {
		return r, fmt.Errorf("pgbench: %d transactions failed", r.Failed)
	}
	if r.TPS <= 0 {
		return r, errors.New("pgbench measured no transactions")
	}
	return r, nil
}

// pgbenchCmd runs the pgbench command line after "--", prints its output,
// and records its TPS, average latency and the cores it and PostgreSQL
// used. A pgbench that fails, or whose transactions fail, fails this.
func pgbenchCmd(args []string) error {
	fs := flag.NewFlagSet("pgbench", flag.ContinueOnError)
	mode := fs.String("mode", "", "label of the server settings")
	clients := fs.Int("clients", 0, "pgbench's -c, recorded")
	scale := fs.Int("scale", 0, "pgbench's scale factor, recorded")
	pgPid := fs.Int("pg-pid", 0, "the postmaster's pid: PostgreSQL's CPU is measured")
	results := fs.String("results", "", "file the result line is appended to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: paybench pgbench [flags] -- pgbench [args]")
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cpu := startCPU(0, *pgPid)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(t0).Seconds()
	_, pg, _ := cpu.cores()
	os.Stdout.Write(out)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	r, err := parsePgbench(string(out))
	if err != nil {
		return err
	}
	r.Kind, r.Mode, r.Clients, r.Scale, r.PostgresCores = "pgbench", *mode, *clients, *scale, pg
	if st := cmd.ProcessState; st != nil && wall > 0 {
		r.LoadgenCores = (st.UserTime() + st.SystemTime()).Seconds() / wall
	}
	return appendResult(*results, r)
}
