package chaos

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one fault's line of the table.
type row struct {
	fault     string
	midflight string // what was in flight when it struck

	requests, replays       int // HTTP attempts, of which replays
	s2xx, s4xx              int
	s5xxIn, s5xxOut         int // inside and outside the fault window
	connIn, connOut         int // no HTTP answer (refused, reset, timeout)
	kinds                   map[string]int
	outside                 []string
	internal                []string // answers 500: a fault the gateway did not map
	outage, lagZero, settle time.Duration

	mailsExpected, mailsSent, mailsDup int
}

func (r row) brief() string {
	return fmt.Sprintf("%d requests, %d 5xx and %d connection errors in the fault window, lag 0 after %s, mails %d/%d",
		r.requests, r.s5xxIn, r.connIn, dur(r.lagZero), r.mailsSent, r.mailsExpected)
}

// errorKinds lists the row's error answers by kind, most frequent first.
func (r row) errorKinds() string {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range r.kinds {
		kvs = append(kvs, kv{strings.TrimSpace(k), n})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].n > kvs[j].n || kvs[i].n == kvs[j].n && kvs[i].k < kvs[j].k })
	var parts []string
	for _, e := range kvs {
		parts = append(parts, fmt.Sprintf("%s ×%d", e.k, e.n))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// table prints the rows: requests and their answers, the 5xx and
// connection errors inside and outside the fault window, how long the
// fault lasted, how soon after it lag and the outbox were back to 0 and
// everything was settled, and the fault's mails (of the events made
// during its phase) expected, sent and sent more than once; then what
// each fault struck in and its errors by kind.
func table(rows []row) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fault\trequests\t2xx\t4xx\t5xx window\t5xx outside\tconn window\tconn outside\treplays\toutage\tlag→0\tsettled\tmails expected\tsent\tdup\t")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t\n", r.fault, r.requests, r.s2xx, r.s4xx,
			r.s5xxIn, r.s5xxOut, r.connIn, r.connOut, r.replays, dur(r.outage), dur(r.lagZero), dur(r.settle),
			r.mailsExpected, r.mailsSent, r.mailsDup)
	}
	_ = w.Flush()
	for _, r := range rows {
		fmt.Fprintf(&b, "%s: struck with %s; errors: %s\n", r.fault, r.midflight, r.errorKinds())
	}
	return b.String()
}

// dur rounds d for the table; a negative one was never reached.
func dur(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return d.Round(100 * time.Millisecond).String()
}
