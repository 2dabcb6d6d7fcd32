package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/config"
)

func TestNotifyDefaults(t *testing.T) {
	setValid(t)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := config.SMTP{Host: "127.0.0.1", Port: 1025, TLS: "none", Timeout: 10 * time.Second, From: "paygate <no-reply@paygate.local>"}
	if cfg.SMTP != want {
		t.Fatalf("SMTP = %+v, want %+v", cfg.SMTP, want)
	}
	wantN := config.Notify{Enabled: true, Group: "paygate-email", RetryTopic: "paygate.notify.retry.v1", DLQTopic: "paygate.notify.dlq.v1",
		MaxAttempts: 5, RetryBackoff: 2 * time.Second, DeliveryRetention: 336 * time.Hour}
	if cfg.Notify != wantN {
		t.Fatalf("Notify = %+v, want %+v", cfg.Notify, wantN)
	}
}

func TestNotifyNamesEveryBadVariable(t *testing.T) {
	setValid(t)
	t.Setenv("PAYGATE_SMTP_HOST", " ")
	t.Setenv("PAYGATE_SMTP_PORT", "70000")
	t.Setenv("PAYGATE_SMTP_TLS", "sometimes")
	t.Setenv("PAYGATE_SMTP_USERNAME", "mailer")
	t.Setenv("PAYGATE_SMTP_TIMEOUT", "soon")
	t.Setenv("PAYGATE_MAIL_FROM", "nobody")
	t.Setenv("PAYGATE_NOTIFY_GROUP", "")
	t.Setenv("PAYGATE_NOTIFY_RETRY_TOPIC", "paygate.auth.v1")
	t.Setenv("PAYGATE_NOTIFY_DLQ_TOPIC", "paygate.auth.v1")
	t.Setenv("PAYGATE_NOTIFY_MAX_ATTEMPTS", "0")
	t.Setenv("PAYGATE_NOTIFY_RETRY_BACKOFF", "1h")
	t.Setenv("PAYGATE_NOTIFY_DELIVERY_RETENTION", "23h")
	_, err := config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *config.Error", err)
	}
	want := []string{"PAYGATE_MAIL_FROM", "PAYGATE_NOTIFY_DELIVERY_RETENTION", "PAYGATE_NOTIFY_DLQ_TOPIC", "PAYGATE_NOTIFY_GROUP", "PAYGATE_NOTIFY_MAX_ATTEMPTS",
		"PAYGATE_NOTIFY_RETRY_BACKOFF", "PAYGATE_NOTIFY_RETRY_TOPIC", "PAYGATE_SMTP_HOST", "PAYGATE_SMTP_PASSWORD",
		"PAYGATE_SMTP_PORT", "PAYGATE_SMTP_TIMEOUT", "PAYGATE_SMTP_TLS"}
	got := slices.Compact(ce.Vars())
	if !slices.Equal(got, want) {
		t.Fatalf("bad vars = %v, want %v", got, want)
	}
}

func TestSMTPCredentialsNeedTLSAndAreNotEchoed(t *testing.T) {
	setValid(t)
	t.Setenv("PAYGATE_SMTP_USERNAME", "mailer")
	t.Setenv("PAYGATE_SMTP_PASSWORD", "s3cret-smtp")
	_, err := config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars(), []string{"PAYGATE_SMTP_TLS"}) {
		t.Fatalf("err = %v, want PAYGATE_SMTP_TLS named", err)
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "mailer") {
		t.Fatalf("error echoes a credential: %v", err)
	}
	t.Setenv("PAYGATE_SMTP_TLS", "starttls")
	if _, err := config.Load(); err != nil {
		t.Fatalf("credentials with starttls: %v", err)
	}
}

func TestSMTPCAFileNeedsTLS(t *testing.T) {
	setValid(t)
	t.Setenv("PAYGATE_SMTP_TLS_CA_FILE", "/etc/paygate/smtp-ca.crt")
	_, err := config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Equal(ce.Vars(), []string{"PAYGATE_SMTP_TLS_CA_FILE"}) {
		t.Fatalf("CA file with PAYGATE_SMTP_TLS=none: err = %v, want PAYGATE_SMTP_TLS_CA_FILE named", err)
	}
	// Alongside credentials, the errors still name no secret.
	t.Setenv("PAYGATE_SMTP_USERNAME", "mailer")
	t.Setenv("PAYGATE_SMTP_PASSWORD", "s3cret-smtp")
	if _, err = config.Load(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v, want an error that does not echo the password", err)
	}
	// The file is read when the sender is built, not here.
	for _, mode := range []string{"starttls", "tls"} {
		t.Setenv("PAYGATE_SMTP_TLS", mode)
		cfg, err := config.Load()
		if err != nil {
			t.Fatalf("CA file with PAYGATE_SMTP_TLS=%s: %v", mode, err)
		}
		if cfg.SMTP.TLSCAFile != "/etc/paygate/smtp-ca.crt" {
			t.Fatalf("TLSCAFile = %q", cfg.SMTP.TLSCAFile)
		}
	}
}
