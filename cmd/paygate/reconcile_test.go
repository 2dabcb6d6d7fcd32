package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/fx"

	"github.com/paygate/paygate/internal/apptest"
	"github.com/paygate/paygate/internal/provider/providertest"
	"github.com/paygate/paygate/internal/withdraw"
)

// TestReconcileCommand runs `paygate reconcile` with only the database
// and the provider's API configured, against books where a withdrawal was
// settled as paid out by hand, with no payout: the command prints it and
// fails, in process and as the real binary (exit code 1); a clean period
// prints "reconciled OK"; a bad period is refused naming the flag.
func TestReconcileCommand(t *testing.T) {
	var svc *withdraw.Service
	e := apptest.Start(t, apptest.WithFx(fx.Populate(&svc)))
	from := time.Now().Add(-time.Minute).UTC()
	u := e.NewUser(t)
	funded := e.Fund(t, u, 500000)
	resp := e.Post(t, "/v1/withdrawals", u.Token, map[string]any{"amount": 80000, "bank_code": "BCA",
		"bank_account_number": "1234567890", "bank_account_name": "Ada Lovelace"}, "Idempotency-Key", "w")
	if resp.Status != http.StatusCreated {
		t.Fatalf("withdraw: %d %s", resp.Status, resp.Body)
	}
	id := resp.Map(t)["id"].(string)
	if _, err := svc.Settle(context.Background(), uuid.MustParse(id), withdraw.Outcome{Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	to := time.Now().Add(time.Minute).UTC()

	onlyDatabase(t, e.Config.Database.URL)
	t.Setenv("PAYGATE_PROVIDER_URL", e.Provider.URL)
	t.Setenv("PAYGATE_PROVIDER_SECRET_KEY", providertest.SecretKey)
	ctx := context.Background()
	var out bytes.Buffer
	err := run(ctx, []string{"reconcile", "-from", from.Format(time.RFC3339Nano), "-to", to.Format(time.RFC3339Nano)}, &out)
	if !errors.Is(err, errUnreconciled) {
		t.Fatalf("reconcile: %v, want errUnreconciled\n%s", err, out.String())
	}
	for _, want := range []string{"provider:    sandbox", "checked:     1 payments, 1 payouts",
		"mismatches:  1 (settled_not_paid_out 1)", "settled_not_paid_out  " + id, "80000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), funded) {
		t.Errorf("the sound top-up is reported:\n%s", out.String())
	}

	out.Reset()
	if err := run(ctx, []string{"reconcile", "-to", from.Format(time.RFC3339)}, &out); err != nil || !strings.Contains(out.String(), "reconciled OK") {
		t.Errorf("the day before: %v\n%s", err, out.String())
	}
	err = run(ctx, []string{"reconcile", "-from", "yesterday"}, &out)
	if err == nil || !strings.Contains(err.Error(), "-from must be an RFC 3339 time") {
		t.Errorf("a bad -from: %v", err)
	}
	if err := run(ctx, []string{"reconcile", "extra"}, &out); !errors.Is(err, errUsage) {
		t.Errorf("an extra argument: %v", err)
	}

	// The real binary, with the default period (the last 24 hours).
	cmd := exec.Command(os.Args[0], "reconcile")
	cmd.Env = []string{"PAYGATE_TEST_RUN_MAIN=1", "PATH=" + os.Getenv("PATH"), "PAYGATE_DATABASE_URL=" + e.Config.Database.URL,
		"PAYGATE_PROVIDER_URL=" + e.Provider.URL, "PAYGATE_PROVIDER_SECRET_KEY=" + providertest.SecretKey}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want exit code 1\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), id) || !strings.Contains(stderr.String(), errUnreconciled.Error()) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}
