package chaos

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paygate/paygate/internal/notify/smtptest"
	"github.com/paygate/paygate/internal/platform/pgtest"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/provider/sandbox"
)

// stack is everything the gateway runs against, and the gateway
// replicas. PostgreSQL, the broker and the gateways are real processes,
// so that kill -9 and restarts are real; SMTP and the payment provider
// run in the test's process (smtptest, the sandbox), which outlives every
// fault and counts what it received.
type stack struct {
	t   *testing.T
	dir string // logs, the broker's data, the binaries

	paygateBin, devkafkaBin string

	pg    *pgtest.Cluster
	dbURL string
	pool  *pgxpool.Pool // the suite's own connections, for its checks

	brokerAddr string
	brokerDir  string
	brokerMu   sync.Mutex
	broker     *proc

	smtp     *smtptest.Server
	provider *providertest.Env
	// callbacks is the provider's way in: it forwards each callback to
	// a live replica, as a load balancer in front of them does.
	callbacks *balancer

	jwtKey         string
	smtpTimeout    time.Duration
	sessionTimeout time.Duration
	gateways       []*gateway
}

// proc is a running process of the stack.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProc starts bin with args and env, its output appended to
// logPath. The process is killed if the test's process dies first.
func startProc(t *testing.T, name, logPath string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "\n===== %s start %s\n", name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p
}

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// freePort returns a loopback port the kernel just handed out.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// buildBinaries builds the gateway (./cmd/paygate) and the broker
// (tools/cmd/devkafka, in the tools module) into dir.
func buildBinaries(t *testing.T, dir string) (paygate, devkafka string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the gateway: %v", err)
	}
	paygate, devkafka = filepath.Join(dir, "paygate"), filepath.Join(dir, "devkafka")
	for _, b := range []struct{ dir, out, pkg string }{
		{root, paygate, "./cmd/paygate"},
		{filepath.Join(root, "tools"), devkafka, "./cmd/devkafka"},
	} {
		cmd := exec.Command(goBin, "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return paygate, devkafka
}

// newStack builds the binaries and starts PostgreSQL, the broker, SMTP,
// the sandbox provider and one gateway replica, whose SMTP timeout is
// smtpTimeout and consumer session timeout (0: the defaults).
func newStack(t *testing.T, smtpTimeout, sessionTimeout time.Duration) *stack {
	t.Helper()
	// Not t.TempDir: it is removed before the Cleanups registered later
	// run, and the logs are worth keeping on a failure.
	dir, err := os.MkdirTemp("", "paygate-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, dir: dir, smtpTimeout: smtpTimeout, sessionTimeout: sessionTimeout}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(EnvKeepLogs) != "" {
			t.Logf("chaos: logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	s.paygateBin, s.devkafkaBin = buildBinaries(t, dir)

	// Durable commits, as in production: a commit the gateway was told of
	// survives the crash of fault (b). (fsync stays off: the operating
	// system, which keeps what was written, does not crash here.)
	s.pg = pgtest.StartCluster(t, "synchronous_commit=on")
	s.dbURL = s.createDatabase("paygate")
	s.pool, err = pgxpool.New(context.Background(), s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.pool.Close)

	s.brokerAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.brokerDir = filepath.Join(dir, "kafka")
	s.startBroker()
	t.Cleanup(s.killBroker)

	s.smtp = smtptest.Start(t)
	s.callbacks = &balancer{}
	cb := httptestServer(t, s.callbacks)
	s.provider = providertest.Start(t, func(o *sandbox.Options) {
		// Paid a moment after its create, as `make run`'s sandbox does;
		// payouts stay accepted for a second, the window in which the
		// gateway is killed between a payout request and its
		// settlement; callbacks are retried until a replica takes them.
		o.AutoPay, o.AutoPayDelay, o.PayoutDelay = true, 500*time.Millisecond, time.Second
		o.RetryBase, o.RetryMax, o.CallbackTimeout = 100*time.Millisecond, time.Second, 10*time.Second
		o.CallbackBaseURL = cb
	})

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.jwtKey = base64.StdEncoding.EncodeToString(priv.Seed())
	s.addGateway()
	return s
}

// createDatabase creates database name on the cluster and returns its URL.
func (s *stack) createDatabase(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.pg.URL("postgres"))
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		s.t.Fatal(err)
	}
	return s.pg.URL(name)
}

// startBroker starts devkafka on the broker's address and data directory
// and waits until it listens.
func (s *stack) startBroker() {
	s.t.Helper()
	logPath := filepath.Join(s.dir, "devkafka.log")
	p := startProc(s.t, "devkafka", logPath, baseEnv(), s.devkafkaBin,
		"-addr", s.brokerAddr, "-data-dir", s.brokerDir, "-partitions", "3")
	deadline := time.Now().Add(30 * time.Second)
	for !logHas(logPath, "devkafka: listening on", "===== devkafka start") {
		if !p.alive() || time.Now().After(deadline) {
			p.kill()
			s.t.Fatalf("devkafka did not start:\n%s", tail(logPath, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.brokerMu.Lock()
	s.broker = p
	s.brokerMu.Unlock()
}

// killBroker kills the broker with SIGKILL.
func (s *stack) killBroker() {
	s.brokerMu.Lock()
	p := s.broker
	s.broker = nil
	s.brokerMu.Unlock()
	p.kill()
}

// baseEnv is the environment every process of the stack starts from:
// none of the developer's PAYGATE_* or OTEL_* settings.
func baseEnv() []string {
	var env []string
	for _, name := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// gateway is one replica: its addresses stay the same across restarts.
type gateway struct {
	name      string
	httpAddr  string
	opsAddr   string
	logPath   string
	env       []string
	mu        sync.Mutex
	p         *proc
	startedAt time.Time
}

// URL is the replica's API base URL.
func (g *gateway) URL() string { return "http://" + g.httpAddr }

// addGateway configures and starts one more replica and waits until it
// is ready.
func (s *stack) addGateway() *gateway {
	s.t.Helper()
	n := len(s.gateways)
	g := &gateway{name: string(rune('A' + n)),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", freePort(s.t)), opsAddr: fmt.Sprintf("127.0.0.1:%d", freePort(s.t))}
	g.logPath = filepath.Join(s.dir, "gateway-"+g.name+".log")
	g.env = append(baseEnv(),
		"PAYGATE_ENV=prod",
		"PAYGATE_HTTP_ADDR="+g.httpAddr,
		"PAYGATE_METRICS_ADDR="+g.opsAddr,
		"PAYGATE_SHUTDOWN_DRAIN_DELAY=0s",
		"PAYGATE_DATABASE_URL="+s.dbURL,
		"PAYGATE_MIGRATE_ON_START=true",
		"PAYGATE_KAFKA_BROKERS="+s.brokerAddr,
		"PAYGATE_KAFKA_CREATE_TOPICS=true",
		"PAYGATE_JWT_PRIVATE_KEY="+s.jwtKey,
		// The suite's clients log in once for the whole run.
		"PAYGATE_ACCESS_TOKEN_TTL=4h",
		// Registrations are set-up, not what is under test: the cheapest
		// hashing config accepts, and every client comes from 127.0.0.1.
		"PAYGATE_ARGON2_MEMORY_KIB=1024", "PAYGATE_ARGON2_TIME=1", "PAYGATE_ARGON2_THREADS=1",
		"PAYGATE_REGISTER_MAX_PER_IP=1000000",
		fmt.Sprintf("PAYGATE_SMTP_HOST=%s", s.smtp.Host), fmt.Sprintf("PAYGATE_SMTP_PORT=%d", s.smtp.Port),
		"PAYGATE_PROVIDER=sandbox",
		"PAYGATE_PROVIDER_URL="+s.provider.URL,
		"PAYGATE_PROVIDER_SECRET_KEY="+providertest.SecretKey,
		"PAYGATE_PROVIDER_CALLBACK_TOKEN="+providertest.CallbackToken,
		// A callback that arrives while its top-up is not recorded yet
		// (the gateway was killed between the provider's create and the
		// record, and the client's retry recorded it after the sandbox
		// paid) is answered "unmatched"; the poller settles such a top-up
		// by asking the provider. In production it asks after 5 min; here
		// after 10 s, so that the suite sees it within its patience.
		"PAYGATE_PROVIDER_POLL_INTERVAL=2s", "PAYGATE_PROVIDER_POLL_AFTER=10s",
		"OTEL_TRACES_EXPORTER=none",
	)
	if s.smtpTimeout > 0 {
		g.env = append(g.env, "PAYGATE_SMTP_TIMEOUT="+s.smtpTimeout.String())
	}
	if s.sessionTimeout > 0 {
		g.env = append(g.env, "PAYGATE_KAFKA_CONSUMER_SESSION_TIMEOUT="+s.sessionTimeout.String())
	}
	s.gateways = append(s.gateways, g)
	s.callbacks.set(s.gatewayURLs())
	s.startGateway(g)
	s.t.Cleanup(func() { s.killGateway(g) })
	return g
}

// gatewayURLs are the API URLs of every replica, live or not.
func (s *stack) gatewayURLs() []string {
	var out []string
	for _, g := range s.gateways {
		out = append(out, g.URL())
	}
	return out
}

// startGateway starts replica g and waits until it is ready.
func (s *stack) startGateway(g *gateway) {
	s.t.Helper()
	p := startProc(s.t, "gateway "+g.name, g.logPath, g.env, s.paygateBin)
	g.mu.Lock()
	g.p, g.startedAt = p, time.Now()
	g.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !ready(g) {
		if !p.alive() || time.Now().After(deadline) {
			p.kill()
			s.t.Fatalf("gateway %s did not become ready:\n%s", g.name, tail(g.logPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killGateway kills replica g with SIGKILL.
func (s *stack) killGateway(g *gateway) {
	g.mu.Lock()
	p := g.p
	g.p = nil
	g.mu.Unlock()
	p.kill()
}

// live returns the replicas that run.
func (s *stack) live() []*gateway {
	var out []*gateway
	for _, g := range s.gateways {
		g.mu.Lock()
		if g.p != nil && g.p.alive() {
			out = append(out, g)
		}
		g.mu.Unlock()
	}
	return out
}

var probe = &http.Client{Timeout: 2 * time.Second}

// ready reports whether the replica's operations listener answers
// /readyz with 200: PostgreSQL reachable, schema current, not draining.
func ready(g *gateway) bool {
	resp, err := probe.Get("http://" + g.opsAddr + "/readyz")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitReady waits until every live replica is ready and returns when.
func (s *stack) waitReady(timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, g := range s.live() {
			ok = ok && ready(g)
		}
		if ok {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Now(), fmt.Errorf("the gateways were not ready within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// paygate runs a paygate subcommand against the suite's database and
// provider and returns its output.
func (s *stack) paygate(args ...string) (string, error) {
	cmd := exec.Command(s.paygateBin, args...)
	cmd.Env = append(baseEnv(), "PAYGATE_DATABASE_URL="+s.dbURL, "PAYGATE_PROVIDER=sandbox",
		"PAYGATE_PROVIDER_URL="+s.provider.URL, "PAYGATE_PROVIDER_SECRET_KEY="+providertest.SecretKey,
		"PAYGATE_PROVIDER_CALLBACK_TOKEN="+providertest.CallbackToken, "OTEL_TRACES_EXPORTER=none")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// logHas reports whether the log at path contains want after the last
// line starting with marker (the last start of its process).
func logHas(path, want, marker string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if i := bytes.LastIndex(b, []byte(marker)); i >= 0 {
		b = b[i:]
	}
	return bytes.Contains(b, []byte(want))
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// balancer forwards each request to one of its backends, round robin,
// trying the next one when a backend does not take the connection: the
// payment provider's callbacks reach whichever replica is alive.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     int
	client   http.Client
}

func (b *balancer) set(backends []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append([]string(nil), backends...)
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends, start := b.backends, b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		target := backends[(start+i)%len(backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := b.client.Do(req)
		if err != nil {
			continue // that replica is down: try the next
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no replica answered", http.StatusBadGateway)
}

// httptestServer serves h on a loopback port until the test ends and
// returns its base URL.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("callback balancer: %v", err)
		}
	}()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}
