package config_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/paygate/paygate/internal/platform/config"
)

// TestMetricsAddr: the operations listener defaults to :9464, and an
// address that is not host:port, or that shares the API's port, is
// refused naming PAYGATE_METRICS_ADDR.
func TestMetricsAddr(t *testing.T) {
	setValid(t)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MetricsAddr != ":9464" {
		t.Fatalf("default PAYGATE_METRICS_ADDR = %q", cfg.HTTP.MetricsAddr)
	}
	for _, addr := range []string{"9464", ":8080", "127.0.0.1:8080"} {
		t.Setenv("PAYGATE_METRICS_ADDR", addr)
		_, err := config.Load()
		var ce *config.Error
		if !errors.As(err, &ce) || !slices.Contains(ce.Vars(), "PAYGATE_METRICS_ADDR") {
			t.Errorf("PAYGATE_METRICS_ADDR=%s: %v", addr, err)
		}
	}
}

// TestPprofEnabled: the pprof endpoint is off unless
// PAYGATE_PPROF_ENABLED says otherwise, and a value that is not a boolean
// is refused naming the variable.
func TestPprofEnabled(t *testing.T) {
	setValid(t)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.PprofEnabled {
		t.Fatal("PAYGATE_PPROF_ENABLED defaults to true")
	}
	t.Setenv("PAYGATE_PPROF_ENABLED", "true")
	if cfg, err = config.Load(); err != nil || !cfg.HTTP.PprofEnabled {
		t.Fatalf("PAYGATE_PPROF_ENABLED=true: enabled=%t, %v", cfg.HTTP.PprofEnabled, err)
	}
	t.Setenv("PAYGATE_PPROF_ENABLED", "sometimes")
	_, err = config.Load()
	var ce *config.Error
	if !errors.As(err, &ce) || !slices.Contains(ce.Vars(), "PAYGATE_PPROF_ENABLED") {
		t.Errorf("PAYGATE_PPROF_ENABLED=sometimes: %v", err)
	}
}
