package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/paygate/paygate/internal/platform/pgtest"
)

// onlyDatabase leaves PAYGATE_DATABASE_URL (and the cheap hashing cost)
// as the only paygate settings of the test's environment: no Kafka
// brokers, no JWT key.
func onlyDatabase(t *testing.T, url string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "PAYGATE_") {
			t.Setenv(name, "") // restored after the test
			os.Unsetenv(name)
		}
	}
	t.Setenv("PAYGATE_DATABASE_URL", url)
	t.Setenv("PAYGATE_ARGON2_MEMORY_KIB", "1024")
}

// TestCommandsNeedOnlyWhatTheyUse: migrate, ledger verify and users
// create-admin run with the database URL alone; the migration Job is not
// given Kafka brokers or the JWT signing key. serve still requires them.
func TestCommandsNeedOnlyWhatTheyUse(t *testing.T) {
	url := pgtest.NewEmptyDatabase(t)
	onlyDatabase(t, url)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate"}, &out); err != nil {
		t.Fatalf("migrate with only the database: %v", err)
	}
	if err := runWithInput(ctx, []string{"users", "create-admin", "-email", "lean@example.com"}, strings.NewReader("a-long-password\n"), &out); err != nil {
		t.Fatalf("create-admin with only the database: %v", err)
	}
	pool := pgtest.NewPool(t, url)
	var wallets int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM ledger_accounts a JOIN users u ON u.id = a.owner_user_id
WHERE u.email = 'lean@example.com' AND u.role = 'admin' AND a.kind = 'wallet'`).Scan(&wallets); err != nil {
		t.Fatal(err)
	}
	if wallets != 1 {
		t.Fatalf("the administrator has %d wallets, want 1", wallets)
	}
	out.Reset()
	if err := run(ctx, []string{"ledger", "verify"}, &out); err != nil || !strings.Contains(out.String(), "ledger OK") {
		t.Fatalf("ledger verify with only the database: %v\n%s", err, out.String())
	}
	err := run(ctx, []string{"serve"}, &out)
	if err == nil || !strings.Contains(err.Error(), "PAYGATE_KAFKA_BROKERS") || !strings.Contains(err.Error(), "PAYGATE_JWT_PRIVATE_KEY") {
		t.Fatalf("serve without brokers and key: %v", err)
	}
}
