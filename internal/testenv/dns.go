package testenv

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative-looking DNS server on 127.0.0.1 (UDP) that
// answers from the records it was given, for the tests of the mx route.
// Names it holds no record of are NXDOMAIN; a name with records of other
// types only is an empty NOERROR answer (RFC 2308 §2.2, NODATA).
type DNS struct {
	Addr string // host:port, for mx.resolver

	mu  sync.Mutex
	rrs []dns.RR
}

// StartDNS serves records, each in zone file syntax
// ("helpdesk.test. 300 IN MX 10 mx1.helpdesk.test."), until the test ends.
func StartDNS(t testing.TB, records ...string) *DNS {
	t.Helper()
	d := &DNS{}
	d.Set(t, records...)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: dns: listen on 127.0.0.1: %v", err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve), NotifyStartedFunc: func() { close(started) }}
	done := make(chan error, 1)
	go func() { done <- srv.ActivateAndServe() }()
	<-started
	d.Addr = pc.LocalAddr().String()
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	return d
}

// Set replaces the records served.
func (d *DNS) Set(t testing.TB, records ...string) {
	t.Helper()
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("testenv: dns record %q: %v", r, err)
		}
		rrs = append(rrs, rr)
	}
	d.mu.Lock()
	d.rrs = rrs
	d.mu.Unlock()
}

func (d *DNS) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	known := false
	if len(q.Question) == 1 {
		qq := q.Question[0]
		d.mu.Lock()
		for _, rr := range d.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, qq.Name) {
				continue
			}
			known = true
			if h.Rrtype == qq.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		d.mu.Unlock()
	}
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
