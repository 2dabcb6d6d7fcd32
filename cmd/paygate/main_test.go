package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/fx"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// TestMain lets a test re-run this binary as the real command.
func TestMain(m *testing.M) {
	if os.Getenv("PAYGATE_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBadConfigurationExitsNonZeroNamingEveryVariable(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Env = []string{"PAYGATE_TEST_RUN_MAIN=1", "PAYGATE_KAFKA_BROKERS=nohost", "PAYGATE_HTTP_MAX_BODY_BYTES=lots", "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit: %v, want a non-zero exit code", err)
	}
	msg := stderr.String()
	if strings.Count(msg, "\n") != 1 {
		t.Errorf("want one message line, got %q", msg)
	}
	for _, v := range []string{"PAYGATE_DATABASE_URL", "PAYGATE_KAFKA_BROKERS", "PAYGATE_HTTP_MAX_BODY_BYTES"} {
		if !strings.Contains(msg, v) {
			t.Errorf("message does not name %s: %s", v, msg)
		}
	}
}

func TestConfigCommandPrintsEveryVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"config"}, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range config.Vars() {
		if !strings.Contains(out.String(), v.Name) {
			t.Errorf("config output lacks %s", v.Name)
		}
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestMigrateCommand(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	t.Setenv("PAYGATE_DATABASE_URL", url)
	t.Setenv("PAYGATE_KAFKA_BROKERS", "127.0.0.1:9")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	for range 2 { // the second run finds nothing to do
		if err := run(context.Background(), []string{"migrate"}, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	pool := pgtest.NewPool(t, url)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n == 0 {
		t.Fatalf("schema_migrations rows = %d (%v)", n, err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMLetsInFlightRequestFinish sends the process SIGTERM while a
// slow request is being served: /readyz turns 503 during the drain, the
// slow request completes, and serve returns cleanly.
func TestSIGTERMLetsInFlightRequestFinish(t *testing.T) {
	broker := kafkatest.NewBroker(t)
	addr := freeAddr(t)
	cfg := apptest.Config(pgtest.NewDatabase(t), broker.Config())
	cfg.HTTP.Addr, cfg.HTTP.DrainDelay = addr, 700*time.Millisecond
	started := make(chan struct{})
	slow := httpserver.RegistrarFunc(func(r *mux.Router) {
		r.HandleFunc("/v1/test/slow", func(w http.ResponseWriter, _ *http.Request) {
			close(started)
			time.Sleep(1500 * time.Millisecond)
			_, _ = io.WriteString(w, "finished")
		})
	})
	done := make(chan error, 1)
	go func() {
		done <- serve(context.Background(), cfg, zaptest.NewLogger(t), fx.Supply(fx.Annotate(slow, fx.As(new(httpserver.Registrar)), fx.ResultTags(`group:"routes"`))))
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v", err)
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned before the test began: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}

	var wg sync.WaitGroup
	var slowBody string
	var slowErr error
	wg.Go(func() {
		resp, err := http.Get(base + "/v1/test/slow")
		if err != nil {
			slowErr = err
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slowBody = string(b)
	})
	<-started
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The signal is handled asynchronously: /readyz answers 200 until the
	// shutdown begins, then 503 for the whole drain delay while the
	// listener still accepts connections. Poll until it turns; an error
	// means the listener closed without a 503 ever being seen.
	for drainDeadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("/readyz during drain: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if resp.StatusCode != http.StatusOK || time.Now().After(drainDeadline) {
			t.Fatalf("/readyz after SIGTERM = %d, want 503 during the drain", resp.StatusCode)
		}
	}
	wg.Wait()
	if slowErr != nil || slowBody != "finished" {
		t.Fatalf("slow request: %q, %v; want it to finish", slowBody, slowErr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after SIGTERM")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answers after shutdown")
	}
}

func TestUsersCreateAdminCommand(t *testing.T) {
	url := pgtest.NewDatabase(t)
	t.Setenv("PAYGATE_DATABASE_URL", url)
	t.Setenv("PAYGATE_KAFKA_BROKERS", "127.0.0.1:9")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	t.Setenv("PAYGATE_ARGON2_MEMORY_KIB", "1024")
	var out bytes.Buffer
	args := []string{"users", "create-admin", "-email", "Root@Example.com"}
	if err := runWithInput(context.Background(), args, strings.NewReader("a-long-password\n"), &out); err != nil {
		t.Fatal(err)
	}
	pool := pgtest.NewPool(t, url)
	var role string
	var events int
	if err := pool.QueryRow(context.Background(), "SELECT role FROM users WHERE email = 'root@example.com'").Scan(&role); err != nil || role != "admin" {
		t.Fatalf("role = %q (%v)", role, err)
	}
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE event_type = 'paygate.user.registered'").Scan(&events); err != nil || events != 1 {
		t.Fatalf("registration events = %d (%v), want 1", events, err)
	}
	if err := runWithInput(context.Background(), args, strings.NewReader("a-long-password\n"), io.Discard); err == nil {
		t.Fatal("a second admin with the same email was accepted")
	}
	if err := runWithInput(context.Background(), []string{"users", "create-admin", "-email", "x@example.com"}, strings.NewReader("short\n"), io.Discard); err == nil {
		t.Fatal("a short password was accepted")
	}
}

func TestLedgerVerifyCommand(t *testing.T) {
	url := pgtest.NewDatabase(t)
	t.Setenv("PAYGATE_DATABASE_URL", url)
	t.Setenv("PAYGATE_KAFKA_BROKERS", "127.0.0.1:9")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ledger", "verify"}, &out); err != nil {
		t.Fatalf("verify on an empty ledger: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ledger OK") || !strings.Contains(out.String(), "violations:    0") {
		t.Fatalf("output:\n%s", out.String())
	}
	// Corrupt a balance behind the ledger's back: verify must fail.
	pool := pgtest.NewPool(t, url)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `
ALTER TABLE ledger_accounts DISABLE TRIGGER USER;
INSERT INTO ledger_accounts (id, kind, code, currency, balance, held, allow_negative)
VALUES ('00000000-0000-4000-8000-000000000001', 'system', 'funding:test', 'IDR', 5, 0, true);`); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(ctx, []string{"ledger", "verify"}, &out)
	if err == nil || !strings.Contains(out.String(), "balance_mismatch") {
		t.Fatalf("verify on a corrupt ledger: err=%v\n%s", err, out.String())
	}
}
