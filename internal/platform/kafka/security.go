package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"github.com/paygate/paygate/internal/platform/config"
)

// applySecurity sets the TLS and SASL settings of cfg on sc. Errors name the
// variable to fix and never carry a secret.
func applySecurity(sc *sarama.Config, cfg config.Kafka) error {
	if cfg.TLSEnabled {
		tc, err := clientTLS(cfg)
		if err != nil {
			return err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if cfg.SASLMechanism == "" {
		return nil
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User = cfg.SASLUsername
	sc.Net.SASL.Password = cfg.SASLPassword
	switch cfg.SASLMechanism {
	case config.SASLPlain:
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case config.SASLSCRAMSHA256:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha256.New)} }
	case config.SASLSCRAMSHA512:
		sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha512.New)} }
	default:
		return fmt.Errorf("%s_KAFKA_SASL_MECHANISM: unsupported mechanism %q", config.Prefix, cfg.SASLMechanism)
	}
	return nil
}

// clientTLS builds the TLS client configuration: TLS 1.2 at least, the
// brokers checked against the CA file (or the system roots), and the client
// certificate for mutual TLS when one is configured.
func clientTLS(cfg config.Kafka) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.TLSServerName}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s_KAFKA_TLS_CA_FILE: %w", config.Prefix, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_KAFKA_TLS_CA_FILE: %s holds no PEM certificate", config.Prefix, cfg.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.TLSCertFile != "" {
		// LoadX509KeyPair's errors name the files and the kind of problem,
		// never the key material.
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s_KAFKA_TLS_CERT_FILE/%s_KAFKA_TLS_KEY_FILE: %w", config.Prefix, config.Prefix, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scramClient adapts github.com/xdg-go/scram, the SCRAM implementation
// sarama's own examples use, to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation for the user.
func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	c.conv = client.NewConversation()
	return nil
}

// Step answers the server's challenge.
func (c *scramClient) Step(challenge string) (string, error) {
	return c.conv.Step(challenge)
}

// Done reports whether the conversation is over.
func (c *scramClient) Done() bool {
	return c.conv.Done()
}
