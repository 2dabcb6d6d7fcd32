package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a PostgreSQL server of the test's own, for tests that stop
// and start the database. It runs the system's PostgreSQL binaries; as
// root it runs them as the "postgres" user, since PostgreSQL refuses root.
type Cluster struct {
	t        testing.TB
	bin      string
	dir      string
	port     int
	cred     *syscall.Credential
	settings []string
}

// StartCluster initialises and starts a throwaway cluster on a free
// loopback port. It is stopped and removed when the test ends.
//
// The server is tuned for speed over durability: fsync, synchronous_commit
// and full_page_writes are off. fsync off is safe against a crash of the
// server (the operating system keeps what was written), but with
// synchronous_commit off a commit is acknowledged before its WAL leaves
// the server's memory, so a crash loses the last moments' commits. A test
// that crashes the server and counts what was committed passes
// "synchronous_commit=on" in settings: each is a name=value server setting (without spaces)
// that overrides the defaults on every Start.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: pgBinDir(t), port: freePort(t), settings: settings}
	dir, err := os.MkdirTemp("", "paygate-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres system user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	c.run("initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
	c.Start()
	t.Cleanup(func() {
		cmd := c.cmd("pg_ctl", "-D", c.dataDir(), "-m", "immediate", "stop")
		_ = cmd.Run()
	})
	return c
}

// URL returns the superuser URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
		c.port, c.dir)
	for _, kv := range c.settings {
		opts += " -c " + kv
	}
	c.run("pg_ctl", "-D", c.dataDir(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "start")
}

// Stop shuts the server down, terminating every connection.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop")
}

// Crash stops the server as a crash would: SIGQUIT to the postmaster,
// which is what pg_ctl stop -m immediate sends, sent straight from the
// test so that it lands within microseconds of the moment the test chose.
// Every backend exits at once, open transactions are lost, clients see
// their connections cut, and the next Start runs crash recovery. It
// returns once the postmaster is gone.
func (c *Cluster) Crash() {
	c.t.Helper()
	pid := c.postmasterPID()
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		c.t.Fatalf("signal the postmaster (pid %d): %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			c.t.Fatalf("the postmaster (pid %d) is still running 30 s after SIGQUIT", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// postmasterPID reads the postmaster's pid off postmaster.pid.
func (c *Cluster) postmasterPID() int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		c.t.Fatalf("the server is not running: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		c.t.Fatalf("postmaster.pid starts with %q, not a pid", line)
	}
	return pid
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	out, err := c.cmd(name, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// pgBinDir finds the PostgreSQL server binaries: PAYGATE_PG_BIN, then
// pg_config --bindir, then the newest /usr/lib/postgresql/*/bin.
func pgBinDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("PAYGATE_PG_BIN"); d != "" {
		return d
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	t.Fatal("PostgreSQL server binaries not found: run `make test`, which installs them")
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
