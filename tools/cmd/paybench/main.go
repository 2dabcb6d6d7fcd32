// Command paybench is the load generator and the reporter of `make bench`
// (scripts/bench.sh), which measures paygate's transfers over its public
// HTTP API next to pgbench on the same PostgreSQL. Subcommands:
//
//	seed       register and log in the users transfers run between
//	run        fund the payers of a scenario (not timed), wait for an idle
//	           gateway, then drive transfers: closed loop (-clients) or open
//	           loop at a fixed rate (-rate); one JSON result line per run
//	pgbench    run pgbench, parse it, and record its result line
//	ready      time a starting gateway from exec to /readyz 200
//	quiesce    wait until the gateway is idle (its async work drained)
//	smtp-sink  an SMTP server that accepts and discards every mail
//	report     print the results as tables and write docs/performance.md
//
// Every subcommand fails with a non-zero exit status when what it measures
// fails: a transfer answered other than 201, a gateway that exits, a
// pgbench that fails. A benchmark that silently measures errors is worse
// than none.
package main

import (
	"fmt"
	"os"
)

func main() {
	cmds := map[string]func([]string) error{
		"seed":      seedCmd,
		"run":       runCmd,
		"pgbench":   pgbenchCmd,
		"ready":     readyCmd,
		"quiesce":   quiesceCmd,
		"smtp-sink": smtpSinkCmd,
		"report":    reportCmd,
	}
	if len(os.Args) < 2 || cmds[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: paybench seed|run|pgbench|ready|quiesce|smtp-sink|report [flags] (see scripts/bench.sh)")
		os.Exit(2)
	}
	if err := cmds[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "paybench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
