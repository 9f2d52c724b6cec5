package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSCert is a throw-away certificate authority and a server certificate it
// signed for 127.0.0.1, ::1 and localhost, written as PEM files.
type TLSCert struct {
	CAFile   string // the CA certificate (PEM), what a client's ca_file names
	CertFile string // the server certificate followed by the CA (PEM)
	KeyFile  string // the server's ECDSA private key (PEM, PKCS #8)
	// RootCAs holds the CA only: verifying against it proves a client
	// checks the server's certificate.
	RootCAs *x509.CertPool
	// Certificate is the server certificate and key for crypto/tls servers.
	Certificate tls.Certificate
}

// NewTLSCert makes a CA and a server certificate valid for a day and writes
// them into dir (a fresh temporary directory when dir is "") with mode 0644
// for the certificates and 0600 for the key.
func NewTLSCert(t testing.TB, dir string) *TLSCert {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	c, err := newTLSCert(dir, time.Now())
	if err != nil {
		t.Fatalf("testenv: make TLS certificate: %v", err)
	}
	return c
}

func newTLSCert(dir string, now time.Time) (*TLSCert, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailtriage test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode server key: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	certPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), caPEM...)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})

	c := &TLSCert{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
		RootCAs:  x509.NewCertPool(),
	}
	c.RootCAs.AddCert(ca)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{c.CAFile, caPEM, 0o644}, {c.CertFile, certPEM, 0o644}, {c.KeyFile, keyPEM, 0o600}} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	if c.Certificate, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("load the new key pair: %w", err)
	}
	return c, nil
}
