package forwarder

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// hostsFile resolves as /etc/hosts would: names to addresses and back.
type hostsFile map[string][]string // address -> names, the canonical one first

func (h hostsFile) LookupHost(_ context.Context, host string) ([]string, error) {
	var addrs []string
	for a, names := range h {
		for _, n := range names {
			if n == host {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func (h hostsFile) LookupAddr(_ context.Context, addr string) ([]string, error) {
	if names, ok := h[addr]; ok {
		return names, nil
	}
	return nil, errors.New("no name")
}

func TestMachineFQDN(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		hosts hostsFile
		want  string
	}{
		{"host name with a dot", "mail.example.com", nil, "mail.example.com"},
		{"qualified in the hosts file", "mail", hostsFile{"192.0.2.7": {"mail.example.com", "mail"}}, "mail.example.com"},
		{"reverse name with the root dot", "mail", hostsFile{"192.0.2.7": {"mail", "mail.example.com."}}, "mail.example.com"},
		{"container ID, hosts file without a domain", "3f2a9c1b7d4e", hostsFile{"172.17.0.2": {"3f2a9c1b7d4e"}}, ""},
		{"container ID, not resolvable", "3f2a9c1b7d4e", hostsFile{}, ""},
		{"localhost.localdomain is no name", "box", hostsFile{"127.0.1.1": {"localhost.localdomain", "box"}}, ""},
		{"an IPv4 address is no name", "192.0.2.7", nil, ""},
		{"not a host name", "bad_host", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := machineFQDN(t.Context(), tt.hosts, tt.host); got != tt.want {
				t.Errorf("machineFQDN(%q) = %q, want %q", tt.host, got, tt.want)
			}
		})
	}
}

func TestAddressLiteral(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}, "[192.0.2.7]"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 40000}, "[192.0.2.7]"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40000, Zone: "eth0"}, "[IPv6:2001:db8::7]"},
	}
	for _, tt := range tests {
		if got := addressLiteral(tt.addr); got != tt.want {
			t.Errorf("addressLiteral(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestDefaultEHLOName: without ehlo_name the forwarder greets with the
// machine's FQDN or, lacking one, the address literal of its end of the
// connection; never the bare host name (a container's ID). The Message-ID
// domain is then the sender's.
func TestDefaultEHLOName(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, func(c *Config) { c.Hostname = "" })
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	hellos := sink.Hellos()
	if len(hellos) != 1 {
		t.Fatalf("hellos = %q, want one", hellos)
	}
	host, _ := os.Hostname()
	want := machineFQDN(t.Context(), net.DefaultResolver, host)
	if want == "" {
		want = "[127.0.0.1]"
	}
	if hellos[0] != want || (!Qualified(hellos[0]) && !strings.HasPrefix(hellos[0], "[")) {
		t.Errorf("EHLO %q, want %q (host name %q)", hellos[0], want, host)
	}
	data := string(sink.Messages()[0].Data)
	if strings.HasPrefix(want, "[") && !strings.Contains(data, "@example.com>\r\n") {
		t.Errorf("Resent-Message-ID not in the sender's domain:\n%s", data)
	}
}

func TestConfiguredEHLOName(t *testing.T) {
	sink := startSink(t, smtpsink.Options{TLS: tlsmode.StartTLS})
	f := newForwarder(t, sink, func(c *Config) {
		c.Hostname, c.TLS, c.RootCAs = "triage.example.com", tlsmode.StartTLS, sink.RootCAs()
	})
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	if got := sink.Hellos(); len(got) != 2 || got[0] != "triage.example.com" || got[1] != "triage.example.com" {
		t.Errorf("hellos = %q, want triage.example.com before and after STARTTLS", got)
	}
	if _, err := New(Config{Address: sink.Addr(), From: "a@example.com", To: []string{"b@example.com"}, Hostname: "3f2a9c1b7d4e"}, nil); err == nil {
		t.Error("New took a bare host name as the EHLO name")
	}
}
