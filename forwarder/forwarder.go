// Package forwarder hands clean mail to the helpdesk over SMTP.
//
// It sends each message (buffered by the caller: Body) over up to
// Config.Connections sessions at once, reused from message to message and
// from cycle to cycle, with up to PipelineDepth transactions in flight on
// each (PIPELINING and BDAT, package smtpclient), paced by the configured
// rate limits and slowed down by a server that says it gets too many
// (limit.go); and it prepends the annotation header fields of DESIGN.md §3. In
// redirect mode (the default) the original follows under the annotation and
// a Resent-* block (RFC 5322 §3.6.6); in attach mode a new message carries a
// short summary of the verdict and the original as a message/rfc822 part
// (RFC 2046 §5.2.1). In both, the sender's own X-Mailtriage-* fields are
// renamed X-Original-Mailtriage-* (ownfields.go), so that each of ours is
// there once and only ours.
//
// It follows RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS),
// RFC 4954 (AUTH), RFC 1870 (SIZE), RFC 6152 (8BITMIME) and RFC 6531
// (SMTPUTF8). It never sends over plain text unless told to, never skips
// certificate verification, never holds a whole message in memory, never
// changes the original except to end its lines in CRLF (a line ends at LF, as
// the analyzer reads it; a bare CR goes out as "?": smtpclient) and to rename
// the sender's X-Mailtriage-* fields, and never puts a credential in an error
// or a log line.
//
// Errors are *Error values whose Kind and Temporary method tell the caller
// whether to retry the message later or to flag it.
package forwarder

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/mailheader"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// Modes, as the configuration spells them.
const (
	ModeRedirect = "redirect"
	ModeAttach   = "attach"
)

// DefaultTimeout bounds every network wait when Config.Timeout is 0.
const DefaultTimeout = time.Minute

// DefaultConnections is Config.Connections when 0: what Exchange Online
// allows one mailbox (3 concurrent connections).
const DefaultConnections = 3

// Config says where and how to forward.
type Config struct {
	Address           string           // host:port
	TLS               tlsmode.Mode     // implicit | starttls (default) | none
	InsecurePlaintext bool             // required with TLS none
	RootCAs           *x509.CertPool   // nil: the system roots
	Auth              *credential.Auth // nil: no AUTH
	From              string           // envelope sender and Resent-From / From
	To                []string         // envelope recipients and Resent-To / To
	Mode              string           // redirect (default) | attach
	Hostname          string           // EHLO name and Message-ID domain; when empty, the machine's FQDN or an address literal (ehloName)
	Timeout           time.Duration    // for every read or write on the connection; DefaultTimeout when 0
	Connections       int              // sessions open at once (forward.smtp.connections); DefaultConnections when 0
	MaxPerMinute      int              // messages in any minute (forward.smtp.max_per_minute); 0: no limit
	MaxPerDay         int              // messages in any 24 hours (forward.smtp.max_per_day); 0: no limit

	// Route, when set, gives the hosts to try in order for each new
	// session instead of Address, which then only names the route in logs
	// and errors (the mx route, package forwarder/mx). A host that cannot
	// be connected to, greets or answers EHLO with an error, or fails TLS
	// is skipped for the next. Route's errors are returned as they are;
	// they should be *Error values.
	Route func(ctx context.Context) ([]Hop, error)
}

// Hop is one host a Route gives: where to connect, the name its
// certificate must carry, and how TLS is required there.
type Hop struct {
	Address    string       // host:port, an IP address or a name
	ServerName string       // verified against the certificate
	TLS        tlsmode.Mode // tlsmode.StartTLS, or tlsmode.Opportunistic: plain text when STARTTLS is not offered
}

// Forwarder sends messages over up to Config.Connections SMTP sessions at
// once, several transactions in flight on each (smtpclient). It is safe for
// concurrent use.
type Forwarder struct {
	cfg      Config
	host     string // server host name, for TLS verification
	log      *slog.Logger
	resolver resolver // for the EHLO name when none is configured
	limits   *limits

	mu   sync.Mutex
	idle []*session // open sessions not in use, kept for the next message
}

// New checks cfg and returns a Forwarder. It does not connect: the first
// Deliver, Send, Redirect or Check does.
func New(cfg Config, log *slog.Logger) (*Forwarder, error) {
	host, _, err := net.SplitHostPort(cfg.Address)
	if cfg.Route == nil && (err != nil || host == "") {
		return nil, fmt.Errorf("forwarder: address %q: want host:port", cfg.Address)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = tlsmode.StartTLS
	case tlsmode.Implicit, tlsmode.StartTLS:
	case tlsmode.None:
		if !cfg.InsecurePlaintext {
			return nil, fmt.Errorf("forwarder: tls %q for %s needs insecure_plaintext: true", cfg.TLS, cfg.Address)
		}
	default:
		return nil, fmt.Errorf("forwarder: tls %q for %s: want implicit, starttls or none", cfg.TLS, cfg.Address)
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeRedirect
	case ModeRedirect, ModeAttach:
	default:
		return nil, fmt.Errorf("forwarder: mode %q: want redirect or attach", cfg.Mode)
	}
	if err := checkAddress("from", cfg.From); err != nil {
		return nil, err
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("forwarder: to: no recipient")
	}
	for _, to := range cfg.To {
		if err := checkAddress("to", to); err != nil {
			return nil, err
		}
	}
	if cfg.Hostname != "" && !Qualified(cfg.Hostname) {
		return nil, fmt.Errorf("forwarder: ehlo name %q: want a fully qualified domain name", cfg.Hostname)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Connections <= 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.MaxPerMinute < 0 || cfg.MaxPerDay < 0 {
		return nil, fmt.Errorf("forwarder: rate limits %d a minute, %d a day: want 0 (none) or more", cfg.MaxPerMinute, cfg.MaxPerDay)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.To = append([]string(nil), cfg.To...)
	return &Forwarder{cfg: cfg, host: host, log: log.With("smtp", cfg.Address), resolver: net.DefaultResolver,
		limits: newLimits(cfg.MaxPerMinute, cfg.MaxPerDay)}, nil
}

// checkAddress rejects an empty address or one that would break an SMTP
// command line or a header field.
func checkAddress(key, addr string) error {
	if addr == "" || !strings.Contains(addr, "@") || mailheader.Sanitize(addr) != addr || strings.ContainsAny(addr, " <>,") {
		return fmt.Errorf("forwarder: %s: %q is not a mail address", key, addr)
	}
	return nil
}

// validHostname accepts letters, digits, dots and hyphens.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
