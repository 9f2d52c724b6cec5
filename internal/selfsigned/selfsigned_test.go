package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"testing"
)

func TestLoopbackCertVerifiesOverTLS(t *testing.T) {
	c, err := Loopback("test server")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("hi"))
			conn.Close()
		}
	}()
	pemPool := x509.NewCertPool()
	if !pemPool.AppendCertsFromPEM(c.PEM) {
		t.Fatal("PEM does not parse")
	}
	tests := []struct {
		name   string
		pool   *x509.CertPool
		server string
		ok     bool
	}{
		{"RootCAs, by IP", c.RootCAs, "127.0.0.1", true},
		{"PEM, by name", pemPool, "localhost", true},
		{"empty pool", x509.NewCertPool(), "127.0.0.1", false},
		{"other host name", c.RootCAs, "imap.example.com", false},
	}
	for _, tc := range tests {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: tc.pool, ServerName: tc.server})
		if (err == nil) != tc.ok {
			t.Errorf("%s: dial err = %v, want ok %v", tc.name, err, tc.ok)
		}
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		if string(b) != "hi" {
			t.Errorf("%s: read %q", tc.name, b)
		}
	}
}
