package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/mx"
)

// mxForwarderConfig converts a forward section of route: mx: the
// forwarder dials the hosts package mx finds for forward.to's domain.
func mxForwarderConfig(mb config.Mailbox, log *slog.Logger) (forwarder.Config, error) {
	m := mb.Forward.MX
	roots, err := m.RootCAs()
	if err != nil {
		return forwarder.Config{}, fmt.Errorf("mailbox %s: mx: %w", mb.Name, err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig.RootCAs = roots
	route, err := mx.New(mx.Options{
		Domain:     m.Domain,
		Port:       strconv.Itoa(m.Port),
		TLS:        m.TLS,
		Resolver:   m.Resolver,
		HTTPClient: &http.Client{Transport: transport, Timeout: mx.DefaultTimeout},
	}, log.With("mailbox", mb.Name))
	if err != nil {
		return forwarder.Config{}, fmt.Errorf("mailbox %s: %w", mb.Name, err)
	}
	return forwarder.Config{
		Address:      route.Name(),
		Route:        route.Hops,
		RootCAs:      roots,
		From:         mb.Forward.From,
		To:           mb.Forward.To,
		Mode:         mb.Forward.Mode,
		Connections:  m.Connections,
		MaxPerMinute: m.MaxPerMinute,
		MaxPerDay:    m.MaxPerDay,
	}, nil
}

// routeLabel names a mailbox's forward route and its TLS in `check`.
func routeLabel(mb config.Mailbox) (name, tls string) {
	if mb.Forward.Route == config.RouteMX {
		return "mx " + mb.Forward.MX.Domain, "tls " + mb.Forward.MX.TLS
	}
	return "smtp " + mb.Forward.SMTP.Address, string(mb.Forward.SMTP.TLS)
}
