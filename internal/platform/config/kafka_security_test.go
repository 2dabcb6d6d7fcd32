package config_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/paygate/paygate/internal/platform/config"
)

func TestKafkaSecurityRules(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		bad  []string // nil: valid
	}{
		{"mutual TLS", map[string]string{"TLS_ENABLED": "true", "TLS_CA_FILE": "/ca.crt", "TLS_CERT_FILE": "/user.crt", "TLS_KEY_FILE": "/user.key"}, nil},
		{"TLS with system roots", map[string]string{"TLS_ENABLED": "true"}, nil},
		{"SCRAM without TLS", map[string]string{"SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "paygate", "SASL_PASSWORD": "pw-123456"}, nil},
		{"PLAIN over TLS", map[string]string{"TLS_ENABLED": "true", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "paygate", "SASL_PASSWORD": "pw-123456"}, nil},
		{"files without TLS", map[string]string{"TLS_CA_FILE": "/ca.crt", "TLS_SERVER_NAME": "kafka"},
			[]string{"PAYGATE_KAFKA_TLS_CA_FILE", "PAYGATE_KAFKA_TLS_SERVER_NAME"}},
		{"certificate without key", map[string]string{"TLS_ENABLED": "true", "TLS_CERT_FILE": "/user.crt"}, []string{"PAYGATE_KAFKA_TLS_KEY_FILE"}},
		{"unknown mechanism", map[string]string{"SASL_MECHANISM": "GSSAPI", "SASL_USERNAME": "paygate", "SASL_PASSWORD": "pw-123456"},
			[]string{"PAYGATE_KAFKA_SASL_MECHANISM"}},
		{"mechanism without password", map[string]string{"SASL_MECHANISM": "SCRAM-SHA-256", "SASL_USERNAME": "paygate"},
			[]string{"PAYGATE_KAFKA_SASL_PASSWORD"}},
		{"password without mechanism", map[string]string{"SASL_PASSWORD": "pw-123456"}, []string{"PAYGATE_KAFKA_SASL_MECHANISM"}},
		{"PLAIN in clear", map[string]string{"SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "paygate", "SASL_PASSWORD": "pw-123456"},
			[]string{"PAYGATE_KAFKA_SASL_MECHANISM"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			setValid(t)
			for k, v := range c.env {
				t.Setenv("PAYGATE_KAFKA_"+k, v)
			}
			cfg, err := config.Load()
			if c.bad == nil {
				if err != nil {
					t.Fatalf("valid settings refused: %v", err)
				}
				if cfg.Kafka.SASLPassword != c.env["SASL_PASSWORD"] || cfg.Kafka.TLSEnabled != (c.env["TLS_ENABLED"] == "true") {
					t.Fatalf("settings not loaded: %+v", cfg.Kafka)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) || !slices.Equal(slices.Compact(ce.Vars()), c.bad) {
				t.Fatalf("err = %v, want %v named", err, c.bad)
			}
			if strings.Contains(err.Error(), "pw-123456") {
				t.Fatalf("error echoes the SASL password: %v", err)
			}
		})
	}
}
