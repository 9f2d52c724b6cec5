package config

import (
	"crypto/x509"
	"strings"

	"gopkg.in/yaml.v3"
)

// The values of forward.route.
const (
	RouteSMTP = "smtp" // a relay or submission server (forward.smtp)
	RouteMX   = "mx"   // the helpdesk domain's MX hosts (forward.mx)

	DefaultRoute = RouteSMTP

	MXTLSRequired      = "required"      // STARTTLS with a certificate valid for the MX name
	MXTLSOpportunistic = "opportunistic" // plain text where STARTTLS is not offered (not under MTA-STS enforce)

	DefaultMXPort = 25
)

// MXRoute is forward.mx: direct delivery to the MX hosts of forward.to's
// domain (package forwarder/mx).
type MXRoute struct {
	Domain   string `json:"domain"`             // forward.to's domain, filled in
	TLS      string `json:"tls"`                // required | opportunistic
	Resolver string `json:"resolver,omitempty"` // host:port of a recursive DNS server; "" = /etc/resolv.conf
	Port     int    `json:"port"`               // 25; another only for tests
	CAFile   string `json:"ca_file,omitempty"`  // extra PEM roots for the MX hosts and the MTA-STS policy host
}

// RootCAs returns the system roots plus the certificates of ca_file.
func (m MXRoute) RootCAs() (*x509.CertPool, error) { return rootCAs(m.CAFile, "the MX of "+m.Domain) }

func (d *decoder) mxRoute(n *yaml.Node, path string) *MXRoute {
	m := &MXRoute{TLS: MXTLSRequired, Port: DefaultMXPort}
	d.mapping(n, path, []field{
		{key: "tls", decode: d.setEnum(&m.TLS, MXTLSRequired, MXTLSOpportunistic)},
		{key: "resolver", decode: func(n *yaml.Node, p string) {
			if d.setStr(&m.Resolver)(n, p); m.Resolver != "" {
				m.Resolver = d.hostPort(n, p, m.Resolver, "53", "127.0.0.1:53")
			}
		}},
		{key: "port", decode: d.setInt(&m.Port, 1, 65535)},
		{key: "ca_file", decode: d.setStr(&m.CAFile)},
	})
	return m
}

// checkRoute checks the keys that depend on forward.route: each route's
// block only with its route, and for mx one recipient domain.
func (d *decoder) checkRoute(n *yaml.Node, path string, seen map[string]*yaml.Node, fw *Forward) {
	if fw.Route == RouteSMTP {
		if v, ok := seen["mx"]; ok {
			d.errorf(v, join(path, "mx"), "only with route: mx")
		}
		if _, ok := seen["smtp"]; !ok {
			d.errorf(n, join(path, "smtp"), "required key missing")
		}
		return
	}
	if v, ok := seen["smtp"]; ok {
		d.errorf(v, join(path, "smtp"), "only with route: smtp (route: mx delivers to the MX hosts of forward.to)")
	}
	if fw.MX == nil {
		fw.MX = d.mxRoute(nil, join(path, "mx"))
	}
	for i, to := range fw.To {
		_, domain, _ := strings.Cut(to, "@")
		domain = strings.ToLower(domain)
		if i == 0 {
			fw.MX.Domain = domain
		} else if domain != fw.MX.Domain {
			d.errorf(seen["to"], join(path, "to"), "route: mx delivers to one domain; %s is not at %s", to, fw.MX.Domain)
		}
	}
}

// checkMXCompanions: with route: mx the forward route reaches only the
// helpdesk's domain, so notices (to customers) need a notify.smtp of their
// own, and the digest (to operators) cannot go at all.
func (d *decoder) checkMXCompanions(seen map[string]*yaml.Node, path string, mb Mailbox) {
	if mb.Forward.Route != RouteMX {
		return
	}
	if v, ok := seen["notify"]; ok && mb.Notify != nil && mb.Notify.SMTP == nil {
		d.errorf(v, join(path, "notify.smtp"), "required with forward.route: mx (notices go to customers, not to the helpdesk's MX hosts)")
	}
	if v, ok := seen["digest"]; ok {
		d.errorf(v, join(path, "digest"), "needs forward.route: smtp (the digest goes to operators, not to the helpdesk's MX hosts)")
	}
}
