package kafkatest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// newTestPKI makes a CA, a server certificate for 127.0.0.1/localhost and,
// if clientCert, a client certificate; it writes the client's files into a
// temporary directory and returns them with the server's TLS config.
func newTestPKI(t testing.TB, clientCert bool) (tlsFiles, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := newCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "kafkatest CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil)
	files := tlsFiles{CA: filepath.Join(dir, "ca.crt")}
	writePEM(t, files.CA, "CERTIFICATE", caDER)

	srvKey, _, srvDER := newCert(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "kafkatest broker"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, caCert, caKey)
	srv := &tls.Config{MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}}
	if clientCert {
		pool := x509.NewCertPool()
		pool.AddCert(caCert)
		srv.ClientAuth, srv.ClientCAs = tls.RequireAndVerifyClientCert, pool
		key, _, der := newCert(t, &x509.Certificate{
			Subject:  pkix.Name{CommonName: "paygate"},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}, caCert, caKey)
		files.ClientCert, files.ClientKey = filepath.Join(dir, "user.crt"), filepath.Join(dir, "user.key")
		writePEM(t, files.ClientCert, "CERTIFICATE", der)
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, files.ClientKey, "PRIVATE KEY", keyDER)
	}
	return files, srv
}

// newCert signs tmpl with parent's key (itself when parent is nil).
func newCert(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
