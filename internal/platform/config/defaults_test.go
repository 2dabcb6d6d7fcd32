package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/paygate/paygate/internal/platform/config"
)

// TestDefaultsAreWhatLoadGives checks Defaults against Load with only the
// required variables set: the two read the same tags the same way.
func TestDefaultsAreWhatLoadGives(t *testing.T) {
	setValid(t)
	loaded, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	got := config.Defaults()
	got.Database.URL, got.Kafka.Brokers, got.Auth.JWTPrivateKey = loaded.Database.URL, loaded.Kafka.Brokers, loaded.Auth.JWTPrivateKey
	got.Provider.SecretKey, got.Provider.CallbackToken = loaded.Provider.SecretKey, loaded.Provider.CallbackToken
	if !reflect.DeepEqual(got, loaded) {
		t.Fatalf("Defaults() = %+v\nLoad()     = %+v", got, loaded)
	}
}

// TestDefaultsLeaveTheRequiredEmpty checks that Defaults invents no value
// for a variable that has none.
func TestDefaultsLeaveTheRequiredEmpty(t *testing.T) {
	t.Parallel()
	cfg := config.Defaults()
	if cfg.Database.URL != "" || cfg.Kafka.Brokers != nil || cfg.Auth.JWTPrivateKey != "" || cfg.Auth.JWTVerifyKeys != nil {
		t.Fatalf("required or empty variables got values: %q %v %q %v",
			cfg.Database.URL, cfg.Kafka.Brokers, cfg.Auth.JWTPrivateKey, cfg.Auth.JWTVerifyKeys)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.Provider.Timeout != 10*time.Second || cfg.Auth.Argon2Threads != 2 || !cfg.Notify.Enabled {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}
