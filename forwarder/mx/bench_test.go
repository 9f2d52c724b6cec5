package mx

import (
	"net"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// benchMessage is a 2 KB support request.
var benchMessage = []byte("From: customer@shop.test\r\nSubject: small\r\nMessage-ID: <small@shop.test>\r\n\r\n" +
	strings.Repeat("A short line of a small support request, nothing more.\r\n", 36))

// benchRoute is a forwarder on the mx route to a STARTTLS sink, the
// preferred MX refusing connections.
func benchRoute(b *testing.B) (send func() error, closeSession func() error) {
	cert := mxCert(b)
	sink := startSink(b, "127.0.0.1:0", tlsmode.StartTLS, cert)
	_, port, _ := net.SplitHostPort(sink.Addr())
	d := testenv.StartDNS(b, twoMX...)
	f := testRoute(b, Options{Resolver: d.Addr, Port: port}, cert)
	return func() error {
		return f.Send(b.Context(), "triage@shop.test", []string{"support@helpdesk.test"}, benchMessage)
	}, f.Close
}

// BenchmarkMXSmall forwards 2 KB messages over one session of the mx
// route: the lookups and the TLS handshake happen once.
func BenchmarkMXSmall(b *testing.B) {
	send, _ := benchRoute(b)
	for b.Loop() {
		if err := send(); err != nil {
			b.Fatalf("Send: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMXSession opens a session per message: MX, TXT (_mta-sts), A
// and AAAA lookups, a refused first MX, STARTTLS with verification, one
// transaction, QUIT — what a cycle with one message costs.
func BenchmarkMXSession(b *testing.B) {
	send, closeSession := benchRoute(b)
	for b.Loop() {
		if err := send(); err != nil {
			b.Fatalf("Send: %v", err)
		}
		if err := closeSession(); err != nil {
			b.Fatalf("Close: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}
