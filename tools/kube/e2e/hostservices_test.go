package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/paygate/paygate/tools/kube/cluster"
)

// hostServices are the external services of the test, on cluster.HostIP:
// what a managed database, a managed Kafka and an SMTP relay are to a real
// cluster.
type hostServices struct {
	// DatabaseURL is what the chart's secrets.databaseUrl gets.
	DatabaseURL string
	// PGPort is PostgreSQL's port on cluster.HostIP.
	PGPort int
	// Broker is the Kafka bootstrap address.
	Broker string
	// SMTPPort is mailpit's SMTP port on cluster.HostIP.
	SMTPPort int
}

// freePort returns a TCP port free on cluster.HostIP a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(cluster.HostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startHostServices starts PostgreSQL (Debian's, as the postgres user), the
// Kafka-protocol broker and mailpit on cluster.HostIP; the bridge must exist.
func startHostServices(t *testing.T, dir string) hostServices {
	t.Helper()
	var s hostServices
	s.PGPort = freePort(t)
	password := randomHex(t, 12)
	startPostgres(t, filepath.Join(dir, "pg"), s.PGPort, password)
	s.DatabaseURL = fmt.Sprintf("postgres://paygate:%s@%s:%d/paygate?sslmode=disable", password, cluster.HostIP, s.PGPort)

	kport := freePort(t)
	s.Broker = net.JoinHostPort(cluster.HostIP, strconv.Itoa(kport))
	startProcess(t, dir, nil, "hostkafka", "hostkafka: listening", cluster.ToolFromEnv(t, "PAYGATE_HOSTKAFKA"), "-addr", s.Broker, "-partitions", "3")

	s.SMTPPort = freePort(t)
	httpPort := freePort(t)
	startProcess(t, dir, nil, "mailpit", "", cluster.ToolFromEnv(t, "PAYGATE_MAILPIT"),
		"--smtp", net.JoinHostPort(cluster.HostIP, strconv.Itoa(s.SMTPPort)),
		"--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)),
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--smtp-auth-accept-any", "--smtp-auth-allow-insecure")
	waitTCP(t, net.JoinHostPort(cluster.HostIP, strconv.Itoa(s.SMTPPort)))
	return s
}

// sandbox is the test's payment provider: `paygate sandbox` from the
// test's paygate build, on cluster.HostIP, where the pods reach it as they
// reach a provider's API. It pays every payment after a second and sends
// its callbacks to callbacks, the stand-in for the Ingress through which a
// real provider calls paygate back.
type sandbox struct {
	// URL, SecretKey and CallbackToken are what the chart's provider.url,
	// provider.secretKey and provider.callbackToken get.
	URL, SecretKey, CallbackToken string
	callbacks                     *callbackProxy
}

// startSandbox starts the sandbox from the paygate binary bin, with fresh
// credentials; the bridge must exist.
func startSandbox(t *testing.T, dir, bin string) *sandbox {
	t.Helper()
	sb := &sandbox{SecretKey: "xnd_development_" + randomHex(t, 12), CallbackToken: randomHex(t, 16),
		callbacks: startCallbackProxy(t)}
	addr := net.JoinHostPort(cluster.HostIP, strconv.Itoa(freePort(t)))
	sb.URL = "http://" + addr
	startProcess(t, dir, nil, "sandbox", "paygate sandbox provider at", bin, "sandbox",
		"-listen", addr, "-secret-key", sb.SecretKey, "-callback-token", sb.CallbackToken,
		"-callback-url", sb.callbacks.URL, "-auto-pay", "-state", filepath.Join(dir, "sandbox.json"))
	return sb
}

// callbackProxy forwards the sandbox's callbacks to the release's Service
// (kube-proxy's rules on the host route its ClusterIP to the pods) once
// setTarget has named it: the Service only exists after the install, and
// the provider must be there before it. Until then it answers 503, as an
// Ingress without a backend does.
type callbackProxy struct {
	URL    string
	target atomic.Pointer[url.URL]
}

func startCallbackProxy(t *testing.T) *callbackProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &callbackProxy{URL: "http://" + l.Addr().String()}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(p.target.Load()) }}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.target.Load() == nil {
			http.Error(w, "no paygate release yet", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	atExit(func() { _ = srv.Close() })
	return p
}

// setTarget sends the callbacks to base (http://host:port).
func (p *callbackProxy) setTarget(t *testing.T, base string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p.target.Store(u)
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startProcess starts a host service as user (nil: this process's user)
// with its output in dir/NAME.log, and waits until a line contains ready.
// The service gets SIGKILL if the test process dies (parent-death signal),
// so a killed run leaves none behind.
func startProcess(t *testing.T, dir string, user *syscall.Credential, name, ready, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: user}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	atExit(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(logPath)
		if strings.Contains(string(b), ready) {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited:\n%s", name, b)
		case <-time.After(200 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(logPath)
	t.Fatalf("%s did not say %q in 60s:\n%s", name, ready, b)
}

func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not accepting connections: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pgBinDir finds the PostgreSQL server binaries: PAYGATE_PG_BIN, then the
// newest /usr/lib/postgresql/*/bin.
func pgBinDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PAYGATE_PG_BIN"); d != "" {
		return d
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
	t.Fatal("PostgreSQL server binaries not found: install Debian's postgresql or set PAYGATE_PG_BIN")
	return ""
}

// startPostgres initializes and starts a PostgreSQL server in dir that
// listens on cluster.HostIP:port (and loopback), with a database and a
// password-authenticated role named paygate, as a managed database has.
func startPostgres(t *testing.T, dir string, port int, password string) {
	t.Helper()
	bin := pgBinDir(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The server refuses to run as root; the parent must be reachable.
	_ = os.Chmod(filepath.Dir(dir), 0o755)
	asPostgres := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("chown", "postgres:", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	asPostgres("initdb", "-D", dir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1,%s'\nport = %d\nunix_socket_directories = ''\nfsync = off\nmax_connections = 100\npassword_encryption = 'scram-sha-256'\n", cluster.HostIP, port)
	appendFile(t, filepath.Join(dir, "postgresql.conf"), conf)
	// Pods authenticate with the password, like at a managed database.
	appendFile(t, filepath.Join(dir, "pg_hba.conf"), "host all all "+cluster.PodCIDR+" scram-sha-256\n")
	// The server runs as a child of the test (not daemonized by pg_ctl), so
	// that it dies with a killed test run.
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	startProcess(t, filepath.Dir(dir), &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, "postgres",
		"database system is ready to accept connections", filepath.Join(bin, "postgres"), "-D", dir)
	psql := func(sql string) {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "psql"), "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql).CombinedOutput()
		if err != nil {
			t.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
	}
	psql(fmt.Sprintf("CREATE ROLE paygate LOGIN PASSWORD '%s'", password))
	psql("CREATE DATABASE paygate OWNER paygate")
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + text); err != nil {
		t.Fatal(err)
	}
}

// sharedLibraries lists the shared libraries bin loads (ldd), with the
// dynamic loader, for an image that runs a Debian binary as it is.
func sharedLibraries(t *testing.T, bin string) []string {
	t.Helper()
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd %s: %v", bin, err)
	}
	var libs []string
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		for _, f := range strings.Fields(s.Text()) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs
}

// ctx returns a context that ends after d.
func ctx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
