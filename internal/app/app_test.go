package app_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/app"
	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/httpserver"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
	"github.com/paygate/paygate/internal/platform/pgtest"
)

// testConfig returns a configuration for the real services of a test.
func testConfig(dbURL string, k config.Kafka) config.Config {
	cfg := apptest.Config(dbURL, k)
	cfg.Database.MigrateOnStart = true
	cfg.HTTP.DrainDelay = 100 * time.Millisecond
	return cfg
}

func TestValidateApp(t *testing.T) {
	t.Parallel()
	cfg := testConfig("postgres://x@127.0.0.1:1/x", config.Kafka{Brokers: []string{"127.0.0.1:1"}, Version: "3.6.0"})
	if err := fx.ValidateApp(app.Options(cfg, zap.NewNop())); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestProbesFollowTheDatabase starts the whole application against a
// PostgreSQL cluster of its own and a Kafka-protocol broker, then stops and
// restarts the database under it.
func TestProbesFollowTheDatabase(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE paygate"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	broker := kafkatest.NewBroker(t)

	var srv *httpserver.Server
	a := fxtest.New(t, app.Options(testConfig(cluster.URL("paygate"), broker.Config()), zaptest.NewLogger(t)), fx.Populate(&srv))
	a.RequireStart()
	defer a.RequireStop()
	base := "http://" + srv.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	ops := "http://" + srv.MetricsAddr()
	if code, body := get(t, ops+"/readyz"); code != 200 || !strings.Contains(body, `"schema":"ok"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	code, metrics := get(t, ops+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	if code, _ := get(t, base+"/metrics"); code != 404 {
		t.Fatalf("/metrics on the API port = %d, want 404", code)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_resident_memory_bytes", "http_server_request_duration_seconds_bucket"} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	cluster.Stop()
	eventually(t, "/readyz to fail while the database is down", func() bool {
		code, body := get(t, ops+"/readyz")
		return code == 503 && strings.Contains(body, `"postgres":"unreachable`)
	})
	// The public port says so without naming what failed.
	if code, body := get(t, base+"/readyz"); code != 503 || strings.TrimSpace(body) != `{"status":"unavailable"}` {
		t.Fatalf("public /readyz while the database is down = %d %s", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d while the database is down; liveness must not follow dependencies", code)
	}
	cluster.Start()
	eventually(t, "/readyz to recover with the database", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == 200
	})
}
