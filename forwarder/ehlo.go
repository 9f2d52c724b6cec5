package forwarder

import (
	"context"
	"net"
	"os"
	"strings"
)

// resolver is what ehloName asks for the machine's names.
type resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// ehloName is the name we give in EHLO (RFC 5321 §4.1.1.1): the configured
// one (forward.smtp.ehlo_name); else the machine's fully qualified domain
// name — the host name when it has a dot, or a name with a dot that the
// resolver gives for one of the host name's addresses, as /etc/hosts lists
// "192.0.2.7 mail.example.com mail"; else the address literal of the
// connection's own end, "[192.0.2.7]" (§4.1.3), which §4.1.4 asks of a
// client without a meaningful name. A bare host name is never sent: in a
// container it is the container's ID, and servers refuse it ("504 5.5.2
// Helo command rejected: need fully-qualified hostname").
func ehloName(ctx context.Context, r resolver, configured string, local net.Addr) string {
	if configured != "" {
		return configured
	}
	if host, err := os.Hostname(); err == nil {
		if name := machineFQDN(ctx, r, host); name != "" {
			return name
		}
	}
	return addressLiteral(local)
}

// machineFQDN returns the fully qualified name of the machine called host,
// or "" when it has none.
func machineFQDN(ctx context.Context, r resolver, host string) string {
	if !validHostname(host) {
		return ""
	}
	if Qualified(host) {
		return host
	}
	addrs, err := r.LookupHost(ctx, host)
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		names, err := r.LookupAddr(ctx, a)
		if err != nil {
			continue
		}
		for _, n := range names {
			if n = strings.TrimSuffix(n, "."); Qualified(n) {
				return n
			}
		}
	}
	return ""
}

// Qualified reports whether name is a fully qualified domain name: valid,
// with a dot, its last label not a number (an IPv4 address is no name), and
// not a local placeholder such as localhost.localdomain.
func Qualified(name string) bool {
	if !validHostname(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return false
	}
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return false
	}
	tld := strings.ToLower(name[i+1:])
	if tld == "localdomain" || tld == "localhost" || tld == "" || strings.Trim(tld, "0123456789") == "" {
		return false
	}
	return !strings.EqualFold(name[:i], "localhost")
}

// addressLiteral is the RFC 5321 §4.1.3 address literal of addr:
// "[192.0.2.7]" or "[IPv6:2001:db8::7]".
// The forwarder dials TCP only.
func addressLiteral(addr net.Addr) string {
	ip := addr.(*net.TCPAddr).AddrPort().Addr().Unmap()
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.WithZone("").String() + "]"
}

// messageIDDomain is the right side of our Message-IDs: the EHLO name when
// it is a name, else the domain of the sender address.
func messageIDDomain(hello, from string) string {
	if !strings.HasPrefix(hello, "[") {
		return hello
	}
	return from[strings.LastIndexByte(from, '@')+1:]
}
