// Package mx finds where mail for a domain is delivered and how securely:
// the hosts the forwarder's mx route connects to, in order, with the name
// each certificate must carry and whether TLS is required there.
//
// It follows RFC 5321 §5.1: the MX records in preference order, equal
// preferences shuffled, and the domain itself as an implicit MX (its A and
// AAAA records) when it has no MX; a domain that does not exist fails
// delivery for good. A null MX (a single MX "." of RFC 7505 §3) says the
// domain takes no mail: permanent, with 556 5.1.10 (RFC 7505 §4.1).
//
// It honours MTA-STS (RFC 8461): the _mta-sts TXT record (§3.1), the policy
// fetched over HTTPS from mta-sts.<domain>/.well-known/mta-sts.txt without
// redirects (§3.2, §3.3), kept in memory by record id until its max_age
// (§5.1). In enforce mode only the MX hosts that match the policy's mx
// patterns are tried (§4.1), each with STARTTLS (RFC 3207) and a
// certificate valid for the MX host name (§4.2), whatever tls says; no
// matching host is a temporary failure, so the mail waits for the policy or
// the MX records to change. Testing and none modes deliver as without a
// policy. A policy that cannot be fetched counts as none, unless a cached
// one is still valid.
//
// DNS goes to one recursive resolver, by default the first nameserver of
// /etc/resolv.conf; the answers are not DNSSEC-validated, so a certificate
// is checked against the MX name that DNS gave (RFC 7672 DANE is not
// implemented). It never sends mail itself, never uses AUTH and never
// skips certificate verification where TLS is required.
//
// Its errors are *forwarder.Error values: temporary (KindConnect, KindTLS)
// when DNS fails or no host can be used now, permanent (KindRejected) when
// the domain takes no mail.
package mx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// TLS modes of the route, as the configuration spells them.
const (
	TLSRequired      = "required"      // STARTTLS with a verified certificate at every host
	TLSOpportunistic = "opportunistic" // plain text at hosts that offer no STARTTLS (only without an enforced MTA-STS policy)
)

// DefaultPort is the SMTP port of MX hosts (RFC 5321 §4.5.4.2).
const DefaultPort = "25"

// DefaultTimeout bounds each DNS query and the MTA-STS policy fetch.
const DefaultTimeout = 30 * time.Second

// resolvConf is where the system's resolver is configured.
const resolvConf = "/etc/resolv.conf"

// Sentinel errors, in the Err of the *forwarder.Error a lookup returns.
var (
	ErrNullMX         = errors.New("the domain accepts no mail (null MX, RFC 7505)")            // permanent
	ErrNoDomain       = errors.New("the domain does not exist")                                 // permanent
	ErrNoAddress      = errors.New("the domain has neither MX nor address records")             // permanent
	ErrNoHost         = errors.New("no MX host has an address")                                 // temporary
	ErrPolicyMismatch = errors.New("the MTA-STS policy (enforce) matches none of the MX hosts") // temporary
)

// Options configure a Route.
type Options struct {
	Domain     string        // the recipients' domain
	Port       string        // DefaultPort when empty
	TLS        string        // TLSRequired (default) or TLSOpportunistic
	Resolver   string        // host:port of a recursive DNS server; the first nameserver of /etc/resolv.conf when empty
	HTTPClient *http.Client  // fetches MTA-STS policies; one with the system's roots and Timeout when nil
	Timeout    time.Duration // DefaultTimeout when 0
}

// Route finds the hosts to deliver to. It is safe for concurrent use.
type Route struct {
	opt  Options
	dns  *resolver
	http *http.Client
	sts  stsCache
	log  *slog.Logger
	now  func() time.Time
}

// New checks opt and returns a Route. It does not look anything up.
func New(opt Options, log *slog.Logger) (*Route, error) {
	opt.Domain = strings.ToLower(strings.TrimSuffix(opt.Domain, "."))
	if _, ok := dns.IsDomainName(opt.Domain); !ok || !strings.Contains(opt.Domain, ".") {
		return nil, fmt.Errorf("mx: domain %q is not a domain name", opt.Domain)
	}
	if opt.Port == "" {
		opt.Port = DefaultPort
	}
	switch opt.TLS {
	case "":
		opt.TLS = TLSRequired
	case TLSRequired, TLSOpportunistic:
	default:
		return nil, fmt.Errorf("mx: tls %q: want required or opportunistic", opt.TLS)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Resolver == "" {
		s, err := systemServer(resolvConf)
		if err != nil {
			return nil, fmt.Errorf("mx: resolver: %w", err)
		}
		opt.Resolver = s
	}
	if _, _, err := net.SplitHostPort(opt.Resolver); err != nil {
		return nil, fmt.Errorf("mx: resolver %q: want host:port", opt.Resolver)
	}
	client := opt.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: opt.Timeout}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Route{
		opt:  opt,
		dns:  &resolver{server: opt.Resolver, timeout: opt.Timeout},
		http: client,
		log:  log.With("mx_domain", opt.Domain),
		now:  time.Now,
	}, nil
}

// Name names the route in logs and errors.
func (r *Route) Name() string { return "MX of " + r.opt.Domain }

// Hops returns the hosts to try, in order: each MX host's addresses, with
// the MX name as the TLS server name. It is forwarder.Config.Route.
func (r *Route) Hops(ctx context.Context) ([]forwarder.Hop, error) {
	policy := r.policy(ctx)
	hosts, err := r.hosts(ctx)
	if err != nil {
		return nil, err
	}
	tlsMode := tlsmode.StartTLS
	if r.opt.TLS == TLSOpportunistic {
		tlsMode = tlsmode.Opportunistic
	}
	if policy != nil && policy.Mode != ModeNone {
		var matching []string
		for _, h := range hosts {
			if policy.Matches(h) {
				matching = append(matching, h)
			} else {
				r.log.Warn("mx host does not match the MTA-STS policy", "host", h, "mode", policy.Mode)
			}
		}
		if policy.Mode == ModeEnforce {
			if len(matching) == 0 {
				return nil, &forwarder.Error{Op: "MTA-STS policy of " + r.opt.Domain, Kind: forwarder.KindTLS,
					Err: fmt.Errorf("%w: mx %s, policy %s", ErrPolicyMismatch, strings.Join(hosts, " "), strings.Join(policy.MX, " "))}
			}
			hosts, tlsMode = matching, tlsmode.StartTLS
		}
	}
	var hops []forwarder.Hop
	for _, h := range hosts {
		ips, err := r.dns.lookupIP(ctx, h)
		if err != nil {
			r.log.Warn("mx host address lookup failed", "host", h, "error", err)
		}
		for _, ip := range ips {
			hops = append(hops, forwarder.Hop{Address: net.JoinHostPort(ip.String(), r.opt.Port), ServerName: h, TLS: tlsMode})
		}
	}
	if len(hops) == 0 {
		return nil, &forwarder.Error{Op: "look up the MX hosts of " + r.opt.Domain, Kind: forwarder.KindConnect,
			Err: fmt.Errorf("%w: %s", ErrNoHost, strings.Join(hosts, " "))}
	}
	return hops, nil
}

// hosts returns the MX host names in the order to try (RFC 5321 §5.1), or
// the domain itself when it has no MX but an address.
func (r *Route) hosts(ctx context.Context) ([]string, error) {
	op := "look up MX " + r.opt.Domain
	mxs, err := r.dns.lookupMX(ctx, r.opt.Domain)
	if errors.Is(err, errNotFound) {
		return nil, &forwarder.Error{Op: op, Kind: forwarder.KindRejected, Code: 550, Message: "5.1.2 " + ErrNoDomain.Error(), Err: ErrNoDomain}
	}
	if err != nil {
		return nil, &forwarder.Error{Op: op, Kind: forwarder.KindConnect, Err: err}
	}
	if len(mxs) == 1 && mxs[0].Mx == "." {
		return nil, &forwarder.Error{Op: op, Kind: forwarder.KindRejected, Code: 556, Message: "5.1.10 " + ErrNullMX.Error(), Err: ErrNullMX}
	}
	if len(mxs) == 0 {
		// Implicit MX: the domain itself, when it has an address.
		ips, err := r.dns.lookupIP(ctx, r.opt.Domain)
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, &forwarder.Error{Op: op, Kind: forwarder.KindConnect, Err: err}
		}
		if len(ips) == 0 {
			return nil, &forwarder.Error{Op: op, Kind: forwarder.KindRejected, Code: 550, Message: "5.1.2 " + ErrNoAddress.Error(), Err: ErrNoAddress}
		}
		return []string{r.opt.Domain}, nil
	}
	return order(mxs), nil
}

// order sorts MX records by preference, shuffling those of equal
// preference (RFC 5321 §5.1), and returns their host names without the
// final dot; a "." among other records is dropped.
func order(mxs []*dns.MX) []string {
	mxs = slices.Clone(mxs)
	rand.Shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	slices.SortStableFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	var hosts []string
	for _, m := range mxs {
		h := strings.ToLower(strings.TrimSuffix(m.Mx, "."))
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// policy returns the domain's MTA-STS policy in force, or nil when there
// is none (RFC 8461 §5.1): the cached one while the record's id is
// unchanged, else a fresh one; a failed lookup or fetch keeps a cached
// policy until it expires.
func (r *Route) policy(ctx context.Context) *Policy {
	now := r.now()
	cached, haveCached := r.sts.get(r.opt.Domain, now)
	id, err := r.record(ctx)
	switch {
	case err != nil:
		if !errors.Is(err, errNoPolicy) {
			r.log.Warn("mta-sts record lookup failed", "error", err)
		}
		if haveCached {
			return cached.policy
		}
		return nil
	case haveCached && cached.id == id:
		return cached.policy
	}
	fctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	p, err := fetchPolicy(fctx, r.http, r.opt.Domain)
	if err != nil {
		r.log.Warn("mta-sts policy fetch failed", "error", err)
		if haveCached {
			return cached.policy
		}
		return nil
	}
	r.sts.put(r.opt.Domain, cachedPolicy{id: id, policy: p, expires: now.Add(p.MaxAge)})
	return p
}

// record returns the id of the domain's one valid _mta-sts TXT record;
// none, or more than one, is errNoPolicy (RFC 8461 §3.1).
func (r *Route) record(ctx context.Context) (string, error) {
	txts, err := r.dns.lookupTXT(ctx, "_mta-sts."+r.opt.Domain)
	if errors.Is(err, errNotFound) {
		return "", errNoPolicy
	}
	if err != nil {
		return "", err
	}
	var ids []string
	for _, t := range txts {
		if !strings.HasPrefix(t, "v=STSv1") {
			continue
		}
		id, ok := parseRecord(t)
		if !ok {
			return "", errNoPolicy
		}
		ids = append(ids, id)
	}
	if len(ids) != 1 {
		return "", errNoPolicy
	}
	return ids[0], nil
}
