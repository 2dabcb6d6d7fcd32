package config_test

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/config"
)

func setValid(t *testing.T) {
	t.Helper()
	t.Setenv("PAYGATE_DATABASE_URL", "postgres://u:p@localhost:5432/db")
	t.Setenv("PAYGATE_KAFKA_BROKERS", "a:9092,b:9092")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	t.Setenv("PAYGATE_PROVIDER_SECRET_KEY", "xnd_test_key")
	t.Setenv("PAYGATE_PROVIDER_CALLBACK_TOKEN", "test-callback-token")
}

func TestLoadDefaults(t *testing.T) {
	setValid(t)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.Env != "prod" || cfg.HTTP.ShutdownTimeout != 20*time.Second {
		t.Fatalf("defaults not applied: %+v", cfg.HTTP)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"a:9092", "b:9092"}) {
		t.Fatalf("brokers %v", cfg.Kafka.Brokers)
	}
}

func TestLoadNamesEveryBadVariable(t *testing.T) {
	t.Setenv("PAYGATE_DATABASE_URL", "")
	os.Unsetenv("PAYGATE_DATABASE_URL")
	t.Setenv("PAYGATE_KAFKA_BROKERS", "no-port")
	t.Setenv("PAYGATE_HTTP_READ_TIMEOUT", "soon")
	t.Setenv("PAYGATE_DATABASE_MAX_CONNS", "many")
	t.Setenv("PAYGATE_ENV", "staging")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "c2hvcnQ=")
	t.Setenv("PAYGATE_BOOTSTRAP_ADMIN_EMAIL", "admin@example.com")
	_, err := config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *config.Error", err)
	}
	want := []string{"PAYGATE_BOOTSTRAP_ADMIN_PASSWORD", "PAYGATE_DATABASE_MAX_CONNS", "PAYGATE_DATABASE_URL", "PAYGATE_ENV",
		"PAYGATE_HTTP_READ_TIMEOUT", "PAYGATE_JWT_PRIVATE_KEY", "PAYGATE_KAFKA_BROKERS", "PAYGATE_PROVIDER_CALLBACK_TOKEN",
		"PAYGATE_PROVIDER_SECRET_KEY"}
	if got := ce.Vars(); !slices.Equal(got, want) {
		t.Fatalf("bad vars = %v, want %v", got, want)
	}
	for _, v := range want {
		if !strings.Contains(err.Error(), v) {
			t.Errorf("message does not name %s: %s", v, err)
		}
	}
}

func TestSecretsAreNotEchoed(t *testing.T) {
	setValid(t)
	t.Setenv("PAYGATE_DATABASE_URL", "mysql://root:s3cret@db/x")
	t.Setenv("PAYGATE_JWT_PRIVATE_KEY", "s3cretkey-not-base64!")
	_, err := config.Load()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v: want an error that does not echo the secrets", err)
	}
}

func TestEveryVariableHasDefaultOrIsRequiredAndDescribed(t *testing.T) {
	t.Parallel()
	vars := config.Vars()
	if len(vars) < 20 {
		t.Fatalf("only %d variables found", len(vars))
	}
	for _, v := range vars {
		if !strings.HasPrefix(v.Name, "PAYGATE_") {
			t.Errorf("%s lacks the PAYGATE_ prefix", v.Name)
		}
		if v.Description == "" {
			t.Errorf("%s has no description", v.Name)
		}
		if !v.Required && !v.HasDefault {
			t.Errorf("%s has neither a default nor required", v.Name)
		}
		if v.Required && v.HasDefault {
			t.Errorf("%s is required and has a default", v.Name)
		}
	}
}

// TestREADMECarriesTheTable keeps the README's configuration table equal
// to what `paygate config -markdown` prints.
func TestREADMECarriesTheTable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := config.WriteMarkdown(&table); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, table.Bytes()) {
		t.Fatal("README.md's configuration table is out of date: regenerate it with `make readme`")
	}
}

// TestProviderCredentials: the provider's credentials are required in
// prod, filled in with the sandbox's development ones in dev against the
// sandbox only, never echoed, and a bad provider or URL is named.
func TestProviderCredentials(t *testing.T) {
	setValid(t)
	os.Unsetenv("PAYGATE_PROVIDER_SECRET_KEY")
	t.Setenv("PAYGATE_PROVIDER_CALLBACK_TOKEN", "s3cret-token")
	_, err := config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars(), []string{"PAYGATE_PROVIDER_SECRET_KEY"}) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("prod without a secret key: %v", err)
	}
	t.Setenv("PAYGATE_ENV", "dev")
	os.Unsetenv("PAYGATE_PROVIDER_CALLBACK_TOKEN")
	cfg, err := config.Load()
	if err != nil || cfg.Provider.SecretKey != config.SandboxDevSecretKey || cfg.Provider.CallbackToken != config.SandboxDevCallbackToken ||
		cfg.Provider.BaseURL() != config.SandboxDefaultURL {
		t.Fatalf("dev against the sandbox: %+v, %v", cfg.Provider, err)
	}
	t.Setenv("PAYGATE_PROVIDER", "xendit")
	if _, err := config.Load(); !errors.As(err, &ce) || !slices.Equal(ce.Vars(), []string{"PAYGATE_PROVIDER_CALLBACK_TOKEN", "PAYGATE_PROVIDER_SECRET_KEY"}) {
		t.Fatalf("dev against xendit gets no development credentials: %v", err)
	}
	t.Setenv("PAYGATE_PROVIDER", "stripe")
	t.Setenv("PAYGATE_PROVIDER_URL", "ftp://x")
	if _, err := config.Load(); !errors.As(err, &ce) || !slices.Contains(ce.Vars(), "PAYGATE_PROVIDER") || !slices.Contains(ce.Vars(), "PAYGATE_PROVIDER_URL") {
		t.Fatalf("bad provider and URL: %v", err)
	}
}

// TestPayoutRetrySettings: the payout processor's retry topic must differ
// from its dead-letter topic, and its attempts and backoff be sane.
func TestPayoutRetrySettings(t *testing.T) {
	setValid(t)
	t.Setenv("PAYGATE_PAYOUT_RETRY_TOPIC", "same")
	t.Setenv("PAYGATE_PAYOUT_DLQ_TOPIC", "same")
	t.Setenv("PAYGATE_PAYOUT_MAX_ATTEMPTS", "0")
	t.Setenv("PAYGATE_PAYOUT_RETRY_BACKOFF", "1h")
	_, err := config.Load()
	var ce *config.Error
	want := []string{"PAYGATE_PAYOUT_MAX_ATTEMPTS", "PAYGATE_PAYOUT_RETRY_BACKOFF", "PAYGATE_PAYOUT_RETRY_TOPIC"}
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars(), want) {
		t.Fatalf("err = %v, want %v named", err, want)
	}
}

func TestOutboxLingerIsBounded(t *testing.T) {
	setValid(t)
	cfg, err := config.Load()
	if err != nil || cfg.Outbox.Linger != 10*time.Millisecond {
		t.Fatalf("default linger %v (%v), want 10ms", cfg.Outbox.Linger, err)
	}
	for _, v := range []string{"-1ms", "2s"} {
		t.Setenv("PAYGATE_OUTBOX_LINGER", v)
		_, err := config.Load()
		var ce *config.Error
		if !errors.As(err, &ce) || !slices.Equal(ce.Vars(), []string{"PAYGATE_OUTBOX_LINGER"}) {
			t.Fatalf("PAYGATE_OUTBOX_LINGER=%s: err = %v, want it named", v, err)
		}
	}
}
