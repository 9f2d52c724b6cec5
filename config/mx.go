package config

import (
	"crypto/x509"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The TLS modes of forward.mx.
const (
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
	Sessions        // the forwarder's sessions to the MX hosts and its rate limits
}

// RootCAs returns the system roots plus the certificates of ca_file.
func (m MXRoute) RootCAs() (*x509.CertPool, error) { return rootCAs(m.CAFile, "the MX of "+m.Domain) }

func (d *decoder) mxRoute(n *yaml.Node, path string) *MXRoute {
	m := &MXRoute{TLS: MXTLSRequired, Port: DefaultMXPort}
	d.mapping(n, path, append([]field{
		{key: "tls", decode: setEnum(d, &m.TLS, MXTLSRequired, MXTLSOpportunistic)},
		{key: "resolver", decode: func(n *yaml.Node, p string) {
			if d.setStr(&m.Resolver)(n, p); m.Resolver != "" {
				m.Resolver = d.hostPort(n, p, m.Resolver, "53", "127.0.0.1:53")
			}
		}},
		{key: "port", decode: d.setInt(&m.Port, 1, 65535)},
		{key: "ca_file", decode: d.setStr(&m.CAFile)},
	}, d.sessions(&m.Sessions)...))
	return m
}

// checkRoute checks the keys that depend on forward.route: each route's
// keys only with that route (another route's are mistakes), the ones it
// needs present, and for mx one recipient domain.
func (d *decoder) checkRoute(n *yaml.Node, path string, seen map[string]*yaml.Node, fw *Forward) {
	for _, k := range []struct {
		key      string
		routes   []string // the routes that take the key
		required bool
	}{
		{"to", []string{RouteSMTP, RouteMX}, true},
		{"from", []string{RouteSMTP, RouteMX}, true},
		{"mode", []string{RouteSMTP, RouteMX}, false},
		{"smtp", []string{RouteSMTP}, true},
		{"imap", []string{RouteIMAP}, true},
		{"mx", []string{RouteMX}, false},
	} {
		v, ok := seen[k.key]
		takes := slices.Contains(k.routes, fw.Route)
		switch {
		case ok && !takes:
			d.errorf(v, join(path, k.key), "only for route: %s (this is route: %s)", strings.Join(k.routes, " or "), fw.Route)
		case !ok && takes && k.required:
			d.errorf(n, join(path, k.key), "required key missing")
		}
	}
	if fw.Route != RouteMX {
		return
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

// checkRouteCompanions: routes mx and imap reach only the helpdesk (its MX
// hosts, its folder), so notices (to customers) need a notify.smtp of their
// own, and the digest (to operators) cannot go at all.
func (d *decoder) checkRouteCompanions(seen map[string]*yaml.Node, path string, mb Mailbox) {
	route := mb.Forward.Route
	if route == RouteSMTP {
		return
	}
	if v, ok := seen["notify"]; ok && mb.Notify != nil && mb.Notify.SMTP == nil {
		d.errorf(v, join(path, "notify.smtp"), "required with forward.route: %s (notices go to customers; route %s reaches only the helpdesk)", route, route)
	}
	if v, ok := seen["digest"]; ok {
		d.errorf(v, join(path, "digest"), "needs forward.route: smtp (the digest goes to operators; route %s reaches only the helpdesk)", route)
	}
}
