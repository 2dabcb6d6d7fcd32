// Package pkitest makes certificates for tests that run real TLS servers
// on loopback (the Kafka-protocol broker, the SMTP server): a CA of the
// test's own, a server certificate for 127.0.0.1 and localhost, and client
// certificates for mutual TLS, with their PEM files in a directory of the
// test.
package pkitest

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
)

// CA is a certificate authority made for one test.
type CA struct {
	t    testing.TB
	dir  string
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	// File is the PEM file of the CA certificate, what clients trust.
	File string
}

// NewCA makes a CA named name and writes its certificate to a temporary
// directory of the test.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca := &CA{t: t, dir: t.TempDir()}
	var der []byte
	ca.key, ca.cert, der = ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, true)
	ca.File = filepath.Join(ca.dir, "ca.crt")
	ca.writePEM(ca.File, "CERTIFICATE", der)
	return ca
}

// Pool returns a pool holding the CA certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerConfig returns a TLS server configuration (TLS 1.2 at least) with
// a certificate the CA signed for 127.0.0.1 and localhost.
func (ca *CA) ServerConfig() *tls.Config {
	ca.t.Helper()
	key, _, der := ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false)
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// ClientFiles makes a client certificate for mutual TLS with common name
// cn and returns the paths of its certificate and key (PKCS #8) PEM files.
func (ca *CA) ClientFiles(cn string) (certFile, keyFile string) {
	ca.t.Helper()
	key, _, der := ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, cn+".crt"), filepath.Join(ca.dir, cn+".key")
	ca.writePEM(certFile, "CERTIFICATE", der)
	ca.writePEM(keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// sign makes a key and a certificate from tmpl, valid from an hour ago for
// a day, signed by the CA (by itself when self).
func (ca *CA) sign(tmpl *x509.Certificate, self bool) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	parent, parentKey := ca.cert, ca.key
	if self {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		ca.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	return key, cert, der
}

func (ca *CA) writePEM(path, typ string, der []byte) {
	ca.t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		ca.t.Fatal(err)
	}
}
