package mx

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

const testMessage = "From: Customer <customer@shop.test>\r\nTo: support@helpdesk.test\r\nSubject: order 42\r\nMessage-ID: <order-42@shop.test>\r\n\r\nWhere is my parcel?\r\n"

// twoMX is the helpdesk's DNS: two MX hosts on two loopback addresses.
var twoMX = []string{
	"helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.",
	"helpdesk.test. 60 IN MX 20 mx2.helpdesk.test.",
	"mx1.helpdesk.test. 60 IN A 127.0.0.2",
	"mx2.helpdesk.test. 60 IN A 127.0.0.1",
}

// mxCert is a certificate for the helpdesk's MX and MTA-STS host names.
func mxCert(t testing.TB) *selfsigned.Cert {
	t.Helper()
	cert, err := selfsigned.Loopback("mx test", "mx1.helpdesk.test", "mx2.helpdesk.test", "helpdesk.test", "mta-sts.helpdesk.test")
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// testRoute is a forwarder over a Route with the test's DNS server.
func testRoute(t testing.TB, opt Options, cert *selfsigned.Cert) *forwarder.Forwarder {
	t.Helper()
	opt.Domain, opt.Timeout = "helpdesk.test", 5*time.Second
	r, err := New(opt, nil)
	if err != nil {
		t.Fatalf("mx.New: %v", err)
	}
	f, err := forwarder.New(forwarder.Config{
		Address: r.Name(), Route: r.Hops, RootCAs: cert.RootCAs, Hostname: "triage.test",
		From: "triage@shop.test", To: []string{"support@helpdesk.test"}, Timeout: 5 * time.Second,
	}, nil)
	if err != nil {
		t.Fatalf("forwarder.New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// startSink starts a sink on listen with cert.
func startSink(t testing.TB, listen string, tlsMode tlsmode.Mode, cert *selfsigned.Cert) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(t.Context(), smtpsink.Options{TLS: tlsMode, Cert: cert, Listen: listen})
	if err != nil {
		t.Fatalf("start sink on %s: %v", listen, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// greeter answers every connection on listen with reply and closes it.
func greeter(t *testing.T, listen, reply string) {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("listen on %s: %v", listen, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
}

// TestDeliverNextMX: the first MX cannot take the mail now; the second,
// at a higher preference value, gets it with STARTTLS verified against
// its name, From and Message-ID as they were.
func TestDeliverNextMX(t *testing.T) {
	cert := mxCert(t)
	wrongCert, err := selfsigned.Loopback("not the mx", "other.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		first func(t *testing.T, addr string)
	}{
		{"connection refused", func(*testing.T, string) {}},
		{"421 greeting", func(t *testing.T, addr string) { greeter(t, addr, "421 4.3.2 busy, try later\r\n") }},
		{"5xx greeting", func(t *testing.T, addr string) { greeter(t, addr, "554 5.3.2 no service here\r\n") }},
		{"certificate for another name", func(t *testing.T, addr string) {
			startSink(t, addr, tlsmode.StartTLS, wrongCert)
		}},
		{"no STARTTLS", func(t *testing.T, addr string) { startSink(t, addr, tlsmode.None, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := startSink(t, "127.0.0.1:0", tlsmode.StartTLS, cert)
			_, port, _ := net.SplitHostPort(second.Addr())
			tc.first(t, net.JoinHostPort("127.0.0.2", port))
			d := testenv.StartDNS(t, twoMX...)
			f := testRoute(t, Options{Resolver: d.Addr, Port: port}, cert)
			if err := f.Send(t.Context(), "triage@shop.test", []string{"support@helpdesk.test"}, []byte(testMessage)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := second.Messages()
			if len(msgs) != 1 {
				t.Fatalf("second MX got %d messages, want 1", len(msgs))
			}
			if !bytes.Equal(msgs[0].Data, []byte(testMessage)) {
				t.Errorf("second MX got\n%s\nwant the original byte for byte", msgs[0].Data)
			}
		})
	}
}

// TestAllMXDown: no MX host answers, so the failure is temporary and the
// poller waits; the error names the last host tried.
func TestAllMXDown(t *testing.T) {
	cert := mxCert(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	d := testenv.StartDNS(t, twoMX...)
	f := testRoute(t, Options{Resolver: d.Addr, Port: port}, cert)
	err = f.Send(t.Context(), "triage@shop.test", []string{"support@helpdesk.test"}, []byte(testMessage))
	var fe *forwarder.Error
	if !errors.As(err, &fe) || !fe.Temporary() || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Fatalf("Send = %v, want a temporary error naming the last host 127.0.0.1:%s", err, port)
	}
}

// TestLookup: what DNS says decides the hosts or the kind of failure.
func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		records   []string
		hops      []forwarder.Hop
		err       error
		temporary bool
	}{
		{"preference order, both addresses", []string{
			"helpdesk.test. 60 IN MX 20 mx2.helpdesk.test.",
			"helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.",
			"mx1.helpdesk.test. 60 IN A 127.0.0.2",
			"mx1.helpdesk.test. 60 IN AAAA ::1",
			"mx2.helpdesk.test. 60 IN A 127.0.0.1",
		}, []forwarder.Hop{
			{Address: "127.0.0.2:25", ServerName: "mx1.helpdesk.test", TLS: tlsmode.StartTLS},
			{Address: "[::1]:25", ServerName: "mx1.helpdesk.test", TLS: tlsmode.StartTLS},
			{Address: "127.0.0.1:25", ServerName: "mx2.helpdesk.test", TLS: tlsmode.StartTLS},
		}, nil, false},
		{"no MX, an A record: implicit MX (RFC 5321 §5.1)", []string{
			"helpdesk.test. 60 IN A 127.0.0.3",
		}, []forwarder.Hop{{Address: "127.0.0.3:25", ServerName: "helpdesk.test", TLS: tlsmode.StartTLS}}, nil, false},
		{"null MX (RFC 7505)", []string{"helpdesk.test. 60 IN MX 0 ."}, nil, ErrNullMX, false},
		{"no such domain", []string{"other.test. 60 IN A 127.0.0.1"}, nil, ErrNoDomain, false},
		{"neither MX nor address", []string{"helpdesk.test. 60 IN TXT \"hello\""}, nil, ErrNoAddress, false},
		{"MX hosts without addresses", []string{
			"helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.",
			"mx1.helpdesk.test. 60 IN TXT \"no address\"",
		}, nil, ErrNoHost, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testenv.StartDNS(t, tc.records...)
			r, err := New(Options{Domain: "helpdesk.test", Resolver: d.Addr, Timeout: 5 * time.Second}, nil)
			if err != nil {
				t.Fatal(err)
			}
			hops, err := r.Hops(t.Context())
			if tc.err != nil {
				var fe *forwarder.Error
				if !errors.Is(err, tc.err) || !errors.As(err, &fe) || fe.Temporary() != tc.temporary {
					t.Fatalf("Hops = %v, %v; want %v with temporary %v", hops, err, tc.err, tc.temporary)
				}
				return
			}
			if err != nil {
				t.Fatalf("Hops: %v", err)
			}
			if fmt.Sprint(hops) != fmt.Sprint(tc.hops) {
				t.Errorf("Hops = %v, want %v", hops, tc.hops)
			}
		})
	}
}

// TestDNSDown: a resolver that does not answer is a temporary failure.
func TestDNSDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r, err := New(Options{Domain: "helpdesk.test", Resolver: pc.LocalAddr().String(), Timeout: 200 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Hops(t.Context())
	var fe *forwarder.Error
	if !errors.As(err, &fe) || !fe.Temporary() {
		t.Fatalf("Hops = %v, want a temporary *forwarder.Error", err)
	}
}

// policyServer serves body as the MTA-STS policy of helpdesk.test over
// TLS with cert, and returns a client that reaches it for
// mta-sts.helpdesk.test:443 and counts its requests.
func policyServer(t *testing.T, cert *selfsigned.Cert, body *string) (*http.Client, *int) {
	t.Helper()
	var fetches int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.helpdesk.test" || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		fetches++
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, *body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: cert.RootCAs},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "mta-sts.helpdesk.test:443" {
				return nil, fmt.Errorf("test dials only mta-sts.helpdesk.test:443, not %s", addr)
			}
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}}, &fetches
}

// TestMTASTS: an enforced policy decides which MX hosts may take the
// mail and requires verified TLS even with tls: opportunistic; a testing
// policy only logs. The policy is fetched once per record id.
func TestMTASTS(t *testing.T) {
	cert := mxCert(t)
	for _, tc := range []struct {
		name      string
		policy    string
		sinkTLS   tlsmode.Mode
		delivered bool
		err       error
	}{
		{"enforce, MX matches", "version: STSv1\r\nmode: enforce\r\nmx: *.helpdesk.test\r\nmax_age: 86400\r\n", tlsmode.StartTLS, true, nil},
		{"enforce, MX does not match", "version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n", tlsmode.StartTLS, false, ErrPolicyMismatch},
		{"enforce overrides opportunistic", "version: STSv1\r\nmode: enforce\r\nmx: mx1.helpdesk.test\r\nmax_age: 86400\r\n", tlsmode.None, false, nil},
		{"testing, MX does not match", "version: STSv1\r\nmode: testing\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n", tlsmode.StartTLS, true, nil},
		{"policy unparseable: as without one", "<html>", tlsmode.None, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := startSink(t, "127.0.0.1:0", tc.sinkTLS, cert)
			_, port, _ := net.SplitHostPort(sink.Addr())
			d := testenv.StartDNS(t,
				"helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.",
				"mx1.helpdesk.test. 60 IN A 127.0.0.1",
				`_mta-sts.helpdesk.test. 60 IN TXT "v=STSv1; id=20261202;"`,
			)
			body := tc.policy
			client, fetches := policyServer(t, cert, &body)
			f := testRoute(t, Options{Resolver: d.Addr, Port: port, TLS: TLSOpportunistic, HTTPClient: client}, cert)
			for range 2 {
				err := f.Send(t.Context(), "triage@shop.test", []string{"support@helpdesk.test"}, []byte(testMessage))
				if tc.delivered && err != nil {
					t.Fatalf("Send: %v", err)
				}
				var fe *forwarder.Error
				if !tc.delivered && (err == nil || !errors.As(err, &fe) || !fe.Temporary()) {
					t.Fatalf("Send = %v, want a temporary refusal", err)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("Send = %v, want %v", err, tc.err)
				}
				f.Close()
			}
			want := 0
			if tc.delivered {
				want = 2
			}
			if n := sink.Count(); n != want {
				t.Errorf("sink got %d messages, want %d", n, want)
			}
			if *fetches < 1 {
				t.Errorf("the policy was never fetched")
			}
			if tc.policy != "<html>" && *fetches != 1 {
				t.Errorf("policy fetched %d times for one record id, want once (cached)", *fetches)
			}
		})
	}
}

// TestOpportunistic: without a policy, tls: opportunistic delivers in
// plain text to an MX that offers no STARTTLS, and required refuses it.
func TestOpportunistic(t *testing.T) {
	cert := mxCert(t)
	for _, tc := range []struct {
		tls       string
		delivered bool
	}{
		{TLSOpportunistic, true},
		{TLSRequired, false},
	} {
		t.Run(tc.tls, func(t *testing.T) {
			sink := startSink(t, "127.0.0.1:0", tlsmode.None, nil)
			_, port, _ := net.SplitHostPort(sink.Addr())
			d := testenv.StartDNS(t, "helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.", "mx1.helpdesk.test. 60 IN A 127.0.0.1")
			f := testRoute(t, Options{Resolver: d.Addr, Port: port, TLS: tc.tls}, cert)
			err := f.Send(t.Context(), "triage@shop.test", []string{"support@helpdesk.test"}, []byte(testMessage))
			var fe *forwarder.Error
			switch {
			case tc.delivered && (err != nil || sink.Count() != 1):
				t.Fatalf("Send = %v, sink has %d; want delivered", err, sink.Count())
			case !tc.delivered && (!errors.As(err, &fe) || fe.Kind != forwarder.KindTLS || sink.Count() != 0):
				t.Fatalf("Send = %v, sink has %d; want a TLS failure and nothing delivered", err, sink.Count())
			}
		})
	}
}
