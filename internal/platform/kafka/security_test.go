package kafka_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap/zaptest"

	"github.com/paygate/paygate/internal/platform/config"
	"github.com/paygate/paygate/internal/platform/kafka"
	"github.com/paygate/paygate/internal/platform/kafka/kafkatest"
)

// send publishes one record with a producer of its own and returns the
// error of the send.
func send(t *testing.T, cfg config.Kafka, topic, value string) error {
	t.Helper()
	cfg.CreateTopics = false
	prod := kafka.NewProducer(cfg, nil, zaptest.NewLogger(t))
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return prod.Send(ctx, []*sarama.ProducerMessage{{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder(value)}})
}

// values returns the values of every record on topic.
func values(t *testing.T, b *kafkatest.Broker, topic string) []string {
	t.Helper()
	var out []string
	for _, r := range b.ReadToEnd(t, topic) {
		out = append(out, string(r.Value))
	}
	return out
}

func TestProducerOverMutualTLS(t *testing.T) {
	t.Parallel()
	const topic = "sec.mtls"
	b := kafkatest.NewSecureBroker(t, kafkatest.Security{TLS: true, ClientCert: true}, topic)
	cfg := b.Config()
	if err := send(t, cfg, topic, "with-cert"); err != nil {
		t.Fatalf("send over mutual TLS: %v", err)
	}

	noCert := cfg
	noCert.TLSCertFile, noCert.TLSKeyFile = "", ""
	if err := send(t, noCert, topic, "no-cert"); err == nil {
		t.Fatal("a client without a certificate was let in")
	}
	plain := cfg
	plain.TLSEnabled, plain.TLSCAFile, plain.TLSCertFile, plain.TLSKeyFile = false, "", "", ""
	if err := send(t, plain, topic, "plaintext"); err == nil {
		t.Fatal("a plaintext client was let in")
	}
	// A CA that did not sign the broker's certificate: the client refuses
	// the broker (no connection to an impostor).
	other := kafkatest.NewSecureBroker(t, kafkatest.Security{TLS: true, ClientCert: true})
	wrongCA := cfg
	wrongCA.TLSCAFile = other.Config().TLSCAFile
	if err := send(t, wrongCA, topic, "wrong-ca"); err == nil {
		t.Fatal("the client trusted a broker its CA did not sign")
	}

	if got := values(t, b, topic); len(got) != 1 || got[0] != "with-cert" {
		t.Fatalf("records on %s = %q, want only the one sent with the certificate", topic, got)
	}
}

func TestProducerOverSASL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		mechanism string
		tls       bool
	}{{config.SASLSCRAMSHA512, false}, {config.SASLSCRAMSHA256, true}, {config.SASLPlain, true}} {
		t.Run(c.mechanism, func(t *testing.T) {
			t.Parallel()
			const topic = "sec.sasl"
			b := kafkatest.NewSecureBroker(t, kafkatest.Security{TLS: c.tls, SASL: c.mechanism, User: "paygate", Password: "s3cret-sasl-pw"}, topic)
			cfg := b.Config()
			if err := send(t, cfg, topic, "authenticated"); err != nil {
				t.Fatalf("send with %s: %v", c.mechanism, err)
			}
			wrong := cfg
			wrong.SASLPassword = "not-the-password"
			err := send(t, wrong, topic, "wrong-password")
			if err == nil {
				t.Fatal("a wrong password was let in")
			}
			if strings.Contains(err.Error(), "not-the-password") || strings.Contains(err.Error(), "s3cret-sasl-pw") {
				t.Fatalf("the error carries a password: %v", err)
			}
			none := cfg
			none.SASLMechanism, none.SASLUsername, none.SASLPassword = "", "", ""
			if err := send(t, none, topic, "anonymous"); err == nil {
				t.Fatal("a client without SASL was let in")
			}
			if got := values(t, b, topic); len(got) != 1 || got[0] != "authenticated" {
				t.Fatalf("records = %q, want only the authenticated one", got)
			}
		})
	}
}

// TestACLsAreEnforced makes sure the broker the ACL tests run against does
// refuse what the ACLs do not allow, so a passing ACL test means something.
func TestACLsAreEnforced(t *testing.T) {
	t.Parallel()
	b := kafkatest.NewSecureBroker(t, kafkatest.Security{SASL: config.SASLSCRAMSHA512, User: "paygate", Password: "pw-acl-test",
		ACLs: []kfake.ACL{
			{Resource: kmsg.ACLResourceTypeTopic, Name: "allowed", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationWrite, Allow: true},
			{Resource: kmsg.ACLResourceTypeTopic, Name: "allowed", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
			{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true},
		}}, "allowed", "denied")
	cfg := b.Config()
	if err := send(t, cfg, "allowed", "ok"); err != nil {
		t.Fatalf("send to an allowed topic: %v", err)
	}
	err := send(t, cfg, "denied", "no")
	if err == nil {
		t.Fatal("send to a topic the ACLs do not allow succeeded")
	}
	if !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
		t.Fatalf("send to a denied topic failed, but not for authorization: %v", err)
	}
}

func TestBadTLSFilesFailAtBuild(t *testing.T) {
	t.Parallel()
	b := kafkatest.NewSecureBroker(t, kafkatest.Security{TLS: true, ClientCert: true})
	good := b.Config()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(good.TLSKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	other := kafkatest.NewSecureBroker(t, kafkatest.Security{TLS: true, ClientCert: true}).Config()
	for _, c := range []struct {
		name   string
		adjust func(*config.Kafka)
		want   string
	}{
		{"missing CA", func(k *config.Kafka) { k.TLSCAFile = filepath.Join(dir, "nope.crt") }, "PAYGATE_KAFKA_TLS_CA_FILE"},
		{"CA not PEM", func(k *config.Kafka) { k.TLSCAFile = garbage }, "PAYGATE_KAFKA_TLS_CA_FILE"},
		{"key of another certificate", func(k *config.Kafka) { k.TLSKeyFile = other.TLSKeyFile }, "PAYGATE_KAFKA_TLS_CERT_FILE"},
		{"certificate not PEM", func(k *config.Kafka) { k.TLSCertFile = garbage }, "PAYGATE_KAFKA_TLS_CERT_FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := good
			c.adjust(&k)
			_, err := kafka.NewSaramaConfig(k)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), string(keyPEM[40:80])) {
				t.Fatalf("the error carries key material: %v", err)
			}
		})
	}
	if _, err := kafka.NewSaramaConfig(good); err != nil {
		t.Fatalf("good files: %v", err)
	}
}
