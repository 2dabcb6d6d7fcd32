package kafkatest

import (
	"crypto/tls"
	"crypto/x509"
	"os"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Security is how a broker authenticates its clients.
type Security struct {
	// TLS serves TLS with a certificate from a CA made for the test; the
	// client settings carry the CA file.
	TLS bool
	// ClientCert requires a client certificate signed by that CA (mutual
	// TLS, Strimzi's "tls" authentication); implies TLS. The client
	// settings carry a certificate and key that pass.
	ClientCert bool
	// SASL, User and Password add a SASL user (PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512); the client settings carry the credentials.
	SASL, User, Password string
	// ACLs, when not nil, are enforced: User may do what they allow and
	// nothing else (the Principal field is ignored). Topics are then not
	// created on demand either, as on a cluster whose topics an operator
	// manages: only the topics given to NewSecureBroker exist.
	ACLs []kfake.ACL
}

// adminUser is a superuser the helpers of this package (ReadAll) use, so
// that reading what was published does not depend on the ACLs under test.
const (
	adminUser     = "kafkatest-admin"
	adminPassword = "kafkatest-admin-password"
)

// tlsFiles are the PEM files a client needs.
type tlsFiles struct {
	CA, ClientCert, ClientKey string
}

func (b *Broker) securityOpts() []kfake.Opt {
	var opts []kfake.Opt
	if b.srvTLS != nil {
		opts = append(opts, kfake.TLS(b.srvTLS))
	}
	if b.sec.SASL != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("PLAIN", adminUser, adminPassword),
			kfake.User(b.sec.SASL, b.sec.User, b.sec.Password, b.sec.ACLs...))
		if b.sec.ACLs != nil {
			opts = append(opts, kfake.EnableACLs())
		}
	}
	return opts
}

// ClientConfig returns a sarama configuration that reaches the broker as
// a superuser (through its TLS and SASL, if any), for tests that inspect
// what the application did regardless of the ACLs under test.
func (b *Broker) ClientConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	if b.srvTLS != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
		ca, err := os.ReadFile(b.files.CA)
		if err != nil || !tc.RootCAs.AppendCertsFromPEM(ca) {
			b.t.Fatalf("kafkatest CA: %v", err)
		}
		if b.files.ClientCert != "" {
			cert, err := tls.LoadX509KeyPair(b.files.ClientCert, b.files.ClientKey)
			if err != nil {
				b.t.Fatalf("kafkatest client certificate: %v", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, tc
	}
	if b.sec.SASL != "" {
		sc.Net.SASL.Enable, sc.Net.SASL.Handshake = true, true
		sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		sc.Net.SASL.User, sc.Net.SASL.Password = adminUser, adminPassword
	}
	return sc
}
