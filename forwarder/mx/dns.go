package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// errNotFound is a name that does not exist (NXDOMAIN, RFC 1035 §4.1.1).
var errNotFound = errors.New("no such domain")

// resolver asks one recursive DNS server, over UDP and over TCP when the
// answer is truncated (RFC 7766 §5).
type resolver struct {
	server  string // host:port
	timeout time.Duration
}

// systemServer is the first nameserver of resolv.conf.
func systemServer(path string) (string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(cc.Servers) == 0 {
		return "", fmt.Errorf("%s lists no nameserver", path)
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// query asks for name's records of qtype and returns those of the answer
// section (a CNAME chain the server followed included, as it is skipped by
// type). A name that does not exist is errNotFound; no records of the type
// is an empty answer and no error.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(4096, false)
	c := &dns.Client{Timeout: r.timeout}
	in, _, err := c.ExchangeContext(ctx, q, r.server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, q, r.server)
	}
	what := dns.TypeToString[qtype] + " " + name
	if err != nil {
		return nil, fmt.Errorf("look up %s at %s: %w", what, r.server, err)
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in.Answer, nil
	case dns.RcodeNameError:
		return nil, fmt.Errorf("look up %s: %w", what, errNotFound)
	}
	return nil, fmt.Errorf("look up %s at %s: %s", what, r.server, dns.RcodeToString[in.Rcode])
}

// lookupMX returns name's MX records as the server gave them.
func (r *resolver) lookupMX(ctx context.Context, name string) ([]*dns.MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	var mxs []*dns.MX
	for _, rr := range rrs {
		if m, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, m)
		}
	}
	return mxs, err
}

// lookupIP returns name's IPv4 addresses, then its IPv6 ones. A name
// without addresses is no error; one that does not exist is errNotFound.
func (r *resolver) lookupIP(ctx context.Context, name string) ([]net.IP, error) {
	var ips []net.IP
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, name, qtype)
		if err != nil {
			return ips, err
		}
		for _, rr := range rrs {
			switch a := rr.(type) {
			case *dns.A:
				ips = append(ips, a.A)
			case *dns.AAAA:
				ips = append(ips, a.AAAA)
			}
		}
	}
	return ips, nil
}

// lookupTXT returns name's TXT records, each with its strings joined
// (RFC 7208 §3.3 does the same for SPF; RFC 8461 §3.1 for MTA-STS).
func (r *resolver) lookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	var txts []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			txts = append(txts, strings.Join(t.Txt, ""))
		}
	}
	return txts, err
}
