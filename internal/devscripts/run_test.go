package devscripts_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeRunStopsEverythingOnRepeatedSignals starts `make run` in a
// process group of its own, on free ports with its state in a throwaway
// directory, waits until the gateway is ready, then signals the group as
// a supervisor or `timeout` does (TERM to the whole group, which GNU make
// also forwards to the script), again and again, TERM and INT mixed, until
// make exits. Every process make run started (PostgreSQL, devkafka,
// mailpit, Prometheus, the payment sandbox, the gateway) must be gone by
// then and every port free. Before, the second signal made the script exit in the middle of
// its stop and left the services running.
func TestMakeRunStopsEverythingOnRepeatedSignals(t *testing.T) {
	// make test installs what make run needs; a missing tool is a
	// failure, never a skip.
	for _, tool := range []string{"make", "setsid", "prometheus"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make test installs it): %v", tool, err)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: the postgres user must reach the cluster's directory.
	state, err := os.MkdirTemp("", "paygate-runstop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(state) })
	if err := os.Chmod(state, 0o755); err != nil {
		t.Fatal(err)
	}

	ports := map[string]int{}
	for _, name := range []string{"PAYGATE_DEV_PG_PORT", "PAYGATE_DEV_KAFKA_PORT", "PAYGATE_DEV_SMTP_PORT",
		"PAYGATE_DEV_MAIL_UI_PORT", "PAYGATE_DEV_PROMETHEUS_PORT", "PAYGATE_DEV_SANDBOX_PORT", "http", "metrics"} {
		ports[name] = freePort(t)
	}
	env := []string{"PAYGATE_STATE=" + state}
	for _, kv := range os.Environ() {
		// The services make run would otherwise skip or reuse.
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PAYGATE_DATABASE_URL", "PAYGATE_KAFKA_BROKERS", "PAYGATE_SMTP_HOST", "PAYGATE_SMTP_PORT",
			"PAYGATE_PROVIDER", "PAYGATE_PROVIDER_URL", "PAYGATE_HTTP_ADDR", "PAYGATE_METRICS_ADDR",
			"PAYGATE_DEV_PG_DIR", "JAEGER", "MAKEFLAGS", "MFLAGS":
			continue
		}
		env = append(env, kv)
	}
	for name, port := range ports {
		if strings.HasPrefix(name, "PAYGATE_") {
			env = append(env, fmt.Sprintf("%s=%d", name, port))
		}
	}
	env = append(env, fmt.Sprintf("PAYGATE_HTTP_ADDR=127.0.0.1:%d", ports["http"]),
		fmt.Sprintf("PAYGATE_METRICS_ADDR=127.0.0.1:%d", ports["metrics"]))

	// make run's output goes through a pipe to a reader in the same
	// process group, as under a supervisor that logs it: the signals kill
	// the reader too, so the stop must survive its output going away.
	logPath := filepath.Join(state, "make-run.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "run")
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reader := exec.Command("cat")
	reader.Stdin, reader.Stdout = pr, logFile
	reader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: cmd.Process.Pid}
	if err := reader.Start(); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	_, _ = pr.Close(), pw.Close()
	go func() { _ = reader.Wait() }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var started []int
	t.Cleanup(func() {
		// Whatever a failed stop left behind, so that the next run can
		// start.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range started {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("make run output:\n%s", out)
		}
	})

	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports["http"])
	deadline := time.After(5 * time.Minute)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !isReady(ready) {
		select {
		case err := <-exited:
			t.Fatalf("make run exited before the gateway was ready: %v", err)
		case <-deadline:
			t.Fatal("the gateway was not ready within 5 minutes")
		case <-tick.C:
		}
	}

	// Everything make run started: the processes below make, and the
	// PostgreSQL server, which pg_ctl detached.
	started = descendants(cmd.Process.Pid)
	if pid := postmaster(t, filepath.Join(state, "run", "pg")); pid > 0 {
		started = append(started, pid)
	}
	if len(started) < 6 {
		t.Fatalf("make run started only %v", started)
	}
	// Each service listens on the port the test gave it, so that the
	// check after the stop means something; the payment sandbox runs from
	// the gateway's binary, as a process of its own.
	for name, port := range ports {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			t.Fatalf("nothing listens on port %d (%s) while make run runs: %v", port, name, err)
		}
		_ = c.Close()
	}
	sandbox := fmt.Sprintf(" sandbox -auto-pay -listen 127.0.0.1:%d ", ports["PAYGATE_DEV_SANDBOX_PORT"])
	found := false
	for _, pid := range started {
		found = found || strings.Contains(cmdline(pid)+" ", sandbox)
	}
	if !found {
		t.Errorf("no process of make run runs%q", sandbox)
	}

	// A burst of TERMs and INTs at once (`timeout` and make deliver two
	// TERMs within microseconds; a second lands while the first is being
	// handled), then one every 20ms until make has exited.
	group := -cmd.Process.Pid
	sent := 0
	for ; sent < 50; sent++ {
		sig := syscall.SIGTERM
		if sent%3 == 2 {
			sig = syscall.SIGINT
		}
		_ = syscall.Kill(group, sig)
	}
	signals := time.NewTicker(20 * time.Millisecond)
	defer signals.Stop()
	stopDeadline := time.After(2 * time.Minute)
wait:
	for {
		select {
		case <-exited:
			break wait
		case <-stopDeadline:
			t.Fatal("make run did not exit within 2 minutes of the signals")
		case <-signals.C:
			sig := syscall.SIGTERM
			if sent%2 == 1 {
				sig = syscall.SIGINT
			}
			_ = syscall.Kill(group, sig)
			sent++
		}
	}
	t.Logf("make run exited after %d signals", sent)

	// A process that make run killed may still be in the kernel's exit
	// path for a moment after make returns (its cmdline is already empty,
	// but it is not yet a zombie), so each one gets a short grace before
	// it counts as left running. One that ignored the stop outlives it.
	grace := time.Now().Add(5 * time.Second)
	for _, pid := range started {
		for alive(pid) && time.Now().Before(grace) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("pid %d (%s) still runs 5s after make run exited", pid, cmdline(pid))
		}
	}
	for name, port := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			_ = c.Close()
			t.Errorf("port %d (%s) still accepts connections", port, name)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func isReady(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// descendants returns the pids of every process below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// stat returns the fields of /proc/pid/stat after the command name.
func stat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) int {
	f := stat(pid)
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// alive reports whether pid runs (a zombie waiting for its reaper does
// not count).
func alive(pid int) bool {
	f := stat(pid)
	return len(f) > 0 && f[0] != "Z"
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// postmaster returns the pid of the PostgreSQL server of the cluster in
// dir (the first line of postmaster.pid), or 0.
func postmaster(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Logf("no postmaster.pid in %s: %v", dir, err)
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}
