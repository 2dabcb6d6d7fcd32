package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
// 100 on every Linux architecture Go runs on.
const clockTicks = 100

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	st, err := procStat(pid)
	return err == nil && st.state != "Z"
}

type stat struct {
	state                        string
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procStat parses /proc/<pid>/stat (proc(5)): the fields after the
// command name, which may itself hold spaces and parentheses.
func procStat(pid int) (stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k], 10, 64); return v }
	// f[0] is field 3 (state); utime is field 14, so f[11].
	return stat{state: f[0], ppid: int(n(1)), utime: n(11), stime: n(12), cutime: n(13), cstime: n(14)}, nil
}

// cpuTicks is the CPU time pid has used, in clock ticks; with tree, also
// its children's: the live ones' own time and, through cutime and cstime,
// the time of those that ended (PostgreSQL's postmaster waits for its
// backends, so a backend that exits still counts).
func cpuTicks(pid int, tree bool) int64 {
	if pid <= 0 {
		return 0
	}
	st, err := procStat(pid)
	if err != nil {
		return 0
	}
	t := st.utime + st.stime
	if !tree {
		return t
	}
	t += st.cutime + st.cstime
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		p, err := strconv.Atoi(filepath.Base(d))
		if err != nil || p == pid {
			continue
		}
		if c, err := procStat(p); err == nil && c.ppid == pid {
			t += c.utime + c.stime
		}
	}
	return t
}

// rssKiB is VmRSS of pid, in KiB.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// rssSampler records the largest VmRSS of a process, sampled every 100ms,
// and notices when the process is gone.
type rssSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	max    int64
	exited bool
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	if pid <= 0 {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	kib, err := rssKiB(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || !alive(s.pid) {
		s.exited = true
		return
	}
	s.max = max(s.max, kib)
}

// Stop ends the sampling and returns the largest RSS seen, or an error if
// the process exited meanwhile.
func (s *rssSampler) Stop() (int64, error) {
	if s.pid > 0 {
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited {
		return s.max, fmt.Errorf("the gateway (pid %d) exited during the run", s.pid)
	}
	return s.max, nil
}

// cpuMeter measures the cores used by the gateway, PostgreSQL (the
// postmaster and its backends) and this process over a window.
type cpuMeter struct {
	gw, pg          int
	t0              time.Time
	gw0, pg0, self0 int64
}

func startCPU(gw, pg int) *cpuMeter {
	return &cpuMeter{gw: gw, pg: pg, t0: time.Now(), gw0: cpuTicks(gw, false), pg0: cpuTicks(pg, true),
		self0: cpuTicks(os.Getpid(), false)}
}

// cores returns the average cores used since start: gateway, PostgreSQL,
// load generator.
func (m *cpuMeter) cores() (gw, pg, self float64) {
	secs := time.Since(m.t0).Seconds() * clockTicks
	c := func(now, then int64) float64 {
		if now < then {
			return 0
		}
		return float64(now-then) / secs
	}
	return c(cpuTicks(m.gw, false), m.gw0), c(cpuTicks(m.pg, true), m.pg0), c(cpuTicks(os.Getpid(), false), m.self0)
}
