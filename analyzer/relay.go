package analyzer

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
)

// RelayService describes one private relay that masks its users' addresses.
type RelayService struct {
	Name string // apple-hide-my-email, firefox-relay, ...: the relay_service of the contract
	// Domains are alias domains. "example.com" matches that domain only,
	// "*.example.com" its subdomains only.
	Domains []string
	// ReplyDomains hold the relay's reply addresses: mail through them is a
	// reply routed by the relay, and the address is a reply token.
	ReplyDomains []string
	// Headers are header field names the service adds; a name ending in
	// "*" matches every field with that prefix.
	Headers []string
	// DisplaySuffix is what the service appends to the display name of the
	// From it rewrites, e.g. " [via Relay]".
	DisplaySuffix string
	// LocalPattern, when set, must match the local part of an address at
	// one of Domains (for services sharing a domain with ordinary mail).
	LocalPattern string
	// TokenPattern matches the local part of a reply-token address at the
	// service's domains (a rewritten sender that routes replies back).
	TokenPattern string
	// Hosts are the service's own mail hosts (same patterns as Domains). A
	// relay address in Sender alone is believed only when a Received hop
	// comes from one of them: Sender is the sender's to write.
	Hosts []string
	// Product names the product when one Name covers two (Apple's Sign in
	// with Apple relay and iCloud+ Hide My Email); it goes into reasons.
	Product string
	// Source names where the facts come from.
	Source string
}

// DefaultRelayServices is the built-in table of private relays.
func DefaultRelayServices() []RelayService {
	return []RelayService{
		{
			// Apple calls both of its relays Hide My Email ("built in to
			// Sign in with Apple and iCloud+", support.apple.com HT210425);
			// they differ in domain and shape.
			Name:    "apple-hide-my-email",
			Product: "Sign in with Apple private relay",
			Domains: []string{"privaterelay.appleid.com"},
			Hosts:   appleHosts,
			Source:  "Apple support HT210425 (Sign in with Apple hides the address behind a random one at privaterelay.appleid.com); Apple developer docs: the relay accepts mail only from domains the app's developer registered",
		},
		{
			Name:    "apple-hide-my-email",
			Product: "iCloud+ Hide My Email",
			Domains: []string{"icloud.com"},
			// iCloud+ aliases share icloud.com with real accounts: only the
			// generated shape counts, two words and a two-character suffix
			// ("fabulous_tacos_02@icloud.com").
			LocalPattern: `^[a-z]+[._-][a-z]+[._-][0-9][0-9a-z]$`,
			Hosts:        appleHosts,
			Source:       "Apple support HT210425 (iCloud+ Hide My Email: unique, random addresses); AdguardTeam/KnowledgeBaseVPN PR #256 (aliases at icloud.com, not privaterelay.appleid.com); alias shape from public descriptions (namegenerator.biz: fabulous_tacos_02@icloud.com)",
		},
		{
			Name:          "firefox-relay",
			Domains:       []string{"mozmail.com", "*.mozmail.com"},
			ReplyDomains:  []string{"relay.firefox.com"},
			DisplaySuffix: " [via Relay]",
			Source:        "mozilla/fx-private-relay: emails/utils.py generate_from_header (\"<sender> [via Relay]\"), replies@relay.firefox.com (docs/adr)",
		},
		{
			Name:    "duckduckgo",
			Domains: []string{"duck.com"},
			// Forwarded mail's sender becomes sender_at_domain_…@duck.com.
			TokenPattern: `_at_`,
			Source:       "DuckDuckGo Email Protection help pages: @duck.com addresses, replies through the rewritten _at_ address",
		},
		{
			Name: "simplelogin",
			Domains: []string{"simplelogin.com", "simplelogin.co", "simplelogin.fr", "simplelogin.io", "aleeas.com",
				"slmail.me", "silomails.com", "8alias.com", "8shield.net", "dralias.com"},
			// The headers SimpleLogin writes on what it forwards or relays
			// back. Not X-SimpleLogin-Client-IP: its MX stamps that on all
			// mail it receives, abuse reports to its postmaster included.
			Headers: []string{"X-SimpleLogin-Type", "X-SimpleLogin-EmailLog-ID", "X-SimpleLogin-Envelope-From",
				"X-SimpleLogin-Envelope-To", "X-SimpleLogin-Original-*", "X-SimpleLogin-Want-Signing"},
			TokenPattern: `^(ra|reply)\+|^ra_|\+`,
			Source:       "simple-login/app: app/email/headers.py (SL_DIRECTION X-SimpleLogin-Type, SL_EMAIL_LOG_ID, SL_ENVELOPE_FROM/TO, SL_ORIGINAL_FROM, SL_ORIGINAL_LIST_*, SL_WANT_SIGNING; SL_CLIENT_IP is added on receipt); reverse aliases (ra+…, reply+…)",
		},
		{
			Name:    "proton-pass",
			Domains: []string{"passmail.net", "passmail.com", "passinbox.com", "passfwd.com"},
			Source:  "Proton Pass alias domains (Proton support: Pass aliases, built on SimpleLogin)",
		},
		{
			Name:         "addy",
			Domains:      []string{"anonaddy.com", "*.anonaddy.com", "anonaddy.me", "*.anonaddy.me", "addy.io", "*.addy.io", "addymail.com", "*.addymail.com"},
			Headers:      []string{"X-AnonAddy-*"},
			TokenPattern: `\+[^@]*=`,
			Source:       "anonaddy/anonaddy: X-AnonAddy-Original-Sender, -Original-Envelope-From, -Original-From-Header, -Authentication-Results headers; alias+sender=domain@… reply addresses",
		},
		{
			Name:         "fastmail-masked",
			Domains:      []string{"fastmail.com", "fastmail.fm", "fastmail.net", "fastmail.org", "fastmail.us", "fastmail.mx", "fastmail.in"},
			LocalPattern: `^[a-z]+\.[a-z]+[0-9]{3,4}$`,
			Source:       "Fastmail help, Masked Email: random word.word1234@ addresses",
		},
	}
}

// appleHosts are Apple's mail hosts: Received chains through iCloud show
// *.me.com and *.icloud.com (atelierhsn.com "Things I've learned playing
// around with Apple Hide My Email", 2022: st43p00im-….me.com), the MX of
// privaterelay.appleid.com is mx01/mx02.mail.icloud.com.
var appleHosts = []string{"*.me.com", "*.icloud.com", "*.apple.com"}

// relayService is a RelayService with its patterns compiled.
type relayService struct {
	RelayService
	local, token *regexp.Regexp
}

// compileRelays merges extra services into the defaults (same Name: the
// lists are appended) and compiles their patterns. Bad patterns are dropped.
func compileRelays(extra []RelayService) []relayService {
	all := DefaultRelayServices()
	for _, e := range extra {
		i := slices.IndexFunc(all, func(s RelayService) bool { return s.Name == e.Name })
		if i < 0 {
			all = append(all, e)
			continue
		}
		all[i].Domains = append(all[i].Domains, e.Domains...)
		all[i].ReplyDomains = append(all[i].ReplyDomains, e.ReplyDomains...)
		all[i].Headers = append(all[i].Headers, e.Headers...)
		all[i].Hosts = append(all[i].Hosts, e.Hosts...)
	}
	out := make([]relayService, 0, len(all))
	for _, s := range all {
		rs := relayService{RelayService: s}
		if s.LocalPattern != "" {
			rs.local, _ = regexp.Compile(s.LocalPattern)
		}
		if s.TokenPattern != "" {
			rs.token, _ = regexp.Compile(s.TokenPattern)
		}
		out = append(out, rs)
	}
	return out
}

// domainIn reports whether domain matches one of the patterns.
func domainIn(domain string, patterns []string) bool {
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		if sub, ok := strings.CutPrefix(p, "*."); ok {
			if strings.HasSuffix(domain, "."+sub) {
				return true
			}
		} else if domain == p {
			return true
		}
	}
	return false
}

// headerAddress is one address from an addressing header.
type headerAddress struct {
	field, name, addr, local, domain string
}

// addresses parses an address list header leniently.
func addresses(h Header, field string) []headerAddress {
	var out []headerAddress
	for _, v := range h.Values(field) {
		list, err := mail.ParseAddressList(v)
		if err != nil {
			// Fall back to the bracketed or bare address.
			a := extractAddr(v)
			if a == "" {
				continue
			}
			list = []*mail.Address{{Address: a}}
		}
		for _, a := range list {
			addr := strings.ToLower(a.Address)
			local, domain, ok := strings.Cut(addr, "@")
			if !ok {
				continue
			}
			out = append(out, headerAddress{field: field, name: a.Name, addr: addr, local: local, domain: domain})
		}
	}
	return out
}

var bareAddr = regexp.MustCompile(`[^\s<>"(),;:]+@[^\s<>"(),;:]+`)

func extractAddr(v string) string {
	if i := strings.LastIndex(v, "<"); i >= 0 {
		if j := strings.Index(v[i:], ">"); j > 0 {
			return strings.TrimSpace(v[i+1 : i+j])
		}
	}
	return bareAddr.FindString(v)
}

// relayResult is what the relay rules found.
type relayResult struct {
	relay     Relay
	service   string
	tokenized bool
	addrs     []string
	reasons   []string
}

// opaqueRun finds the runs of a local part that may be a long machine-made
// token: 16+ letters and digits, or 8+ after a "+" (a ticket system's
// reply+token).
var opaqueRun = regexp.MustCompile(`[A-Za-z0-9]{16,}`)

// opaque reports whether a local part carries a token: a run (or +detail)
// whose letters and digits are mixed beyond a trailing number. A name with
// a number after it ("mrmartinkofiadu09", "ticket12345") is a person's or a
// system's chosen name, not a token.
func opaque(local string) bool {
	if _, detail, ok := strings.Cut(local, "+"); ok && len(detail) >= 8 && mixed(detail) {
		return true
	}
	for _, run := range opaqueRun.FindAllString(local, -1) {
		if mixed(run) {
			return true
		}
	}
	return false
}

// mixed reports whether s has letters and digits once a trailing run of
// digits is cut off.
func mixed(s string) bool {
	return hasLetterAndDigit(strings.TrimRight(s, "0123456789"))
}

func hasLetterAndDigit(s string) bool {
	return strings.ContainsAny(s, "0123456789") && strings.IndexFunc(s, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) >= 0
}

// embeddedAddr matches another address shown in a display name: "x@y.tld"
// or the "x at y.tld" form relays use for rewritten senders.
var embeddedAddr = regexp.MustCompile(`(?i)[a-z0-9._%+-]+(@| at )[a-z0-9-]+(\.[a-z0-9-]+)+`)

// detectRelay applies the relay table, the tokenized Reply-To rule, and the
// list and forwarding rules. Private beats list beats forwarded.
func (a *Analyzer) detectRelay(h Header) relayResult {
	var r relayResult
	from := addresses(h, "From")
	replyTo := addresses(h, "Reply-To")
	sender := addresses(h, "Sender")
	all := slices.Concat(from, sender, replyTo)

	addAddr := func(addr string) {
		if !slices.Contains(r.addrs, addr) {
			r.addrs = append(r.addrs, addr)
		}
	}
	private := func(service, reason string) {
		if r.relay != RelayPrivate {
			r.relay, r.service = RelayPrivate, service
		}
		r.reasons = append(r.reasons, reason)
	}

	for _, s := range a.relays {
		name := s.Name
		if s.Product != "" {
			name += " (" + s.Product + ")"
		}
		for _, ad := range all {
			atRelay := domainIn(ad.domain, s.Domains) && (s.local == nil || s.local.MatchString(ad.local)) || domainIn(ad.domain, s.ReplyDomains)
			if atRelay && ad.field == "Sender" && !receivedFrom(h, s.Hosts) {
				r.reasons = append(r.reasons, fmt.Sprintf("Sender: %s is a %s address, but From is not and no Received hop comes from its hosts: not believed", ad.addr, name))
				continue
			}
			switch {
			case domainIn(ad.domain, s.Domains) && (s.local == nil || s.local.MatchString(ad.local)):
				addAddr(ad.addr)
				kind := "alias"
				if s.token != nil && s.token.MatchString(ad.local) {
					kind = "reply token"
					if ad.field == "Reply-To" {
						r.tokenized = true
					}
				}
				private(s.Name, fmt.Sprintf("%s: %s is a %s %s", ad.field, ad.addr, name, kind))
			case domainIn(ad.domain, s.ReplyDomains):
				addAddr(ad.addr)
				if ad.field == "Reply-To" {
					r.tokenized = true
				}
				private(s.Name, fmt.Sprintf("%s: %s is a %s reply address", ad.field, ad.addr, name))
			}
			if s.DisplaySuffix != "" && ad.field == "From" && strings.HasSuffix(ad.name, s.DisplaySuffix) {
				addAddr(ad.addr)
				private(s.Name, fmt.Sprintf("From: display name ends in %q (%s)", strings.TrimSpace(s.DisplaySuffix), s.Name))
			}
		}
		for _, f := range h {
			if headerMatches(f.Name, s.Headers) {
				for _, ad := range from {
					addAddr(ad.addr)
				}
				private(s.Name, fmt.Sprintf("header %s names %s", f.Name, s.Name))
				break
			}
		}
	}

	// Generic tokenized Reply-To: differs from From, opaque local part. It
	// does not mask the sender by itself (ticket systems, marketing mail).
	for _, rt := range replyTo {
		if slices.ContainsFunc(from, func(f headerAddress) bool { return f.addr == rt.addr }) || !opaque(rt.local) {
			continue
		}
		r.tokenized = true
		addAddr(rt.addr)
		r.reasons = append(r.reasons, fmt.Sprintf("Reply-To: %s differs from From and carries an opaque token", rt.addr))
	}

	// A rewritten sender of an unknown relay: From shows another address in
	// its display name and its own local part is an opaque token.
	if r.relay != RelayPrivate {
		for _, f := range from {
			if m := embeddedAddr.FindString(f.name); m != "" && !strings.EqualFold(m, f.addr) && opaque(f.local) {
				addAddr(f.addr)
				private("unknown", fmt.Sprintf("From: %s carries an opaque token and shows another sender (%q) in its display name: a relay rewrote it", f.addr, m))
			}
		}
	}
	if r.relay == RelayPrivate {
		return r
	}
	if !r.tokenized {
		r.addrs = nil
	}

	for _, name := range []string{"List-Id", "List-Post"} {
		if v := h.Get(name); v != "" {
			r.relay = RelayList
			r.reasons = append(r.reasons, fmt.Sprintf("header %s: %s (mailing list)", name, clip(v)))
			return r
		}
	}
	if rp := h.Get("Return-Path"); strings.Contains(strings.ToUpper(rp), "SRS0=") || strings.Contains(strings.ToUpper(rp), "SRS1=") {
		r.relay = RelayForwarded
		r.reasons = append(r.reasons, fmt.Sprintf("Return-Path: %s is an SRS-rewritten envelope sender (forwarded)", clip(rp)))
		return r
	}
	for _, f := range h {
		n := strings.ToLower(f.Name)
		if strings.HasPrefix(n, "resent-") || n == "x-forwarded-for" || n == "x-forwarded-to" {
			r.relay = RelayForwarded
			r.reasons = append(r.reasons, fmt.Sprintf("header %s present (forwarded)", f.Name))
			return r
		}
	}
	forwarded, reasons := arcIntermediary(h, from)
	r.reasons = append(r.reasons, reasons...)
	if forwarded {
		r.relay = RelayForwarded
		return r
	}
	r.relay = RelayNone
	return r
}

// receivedFrom reports whether a Received hop's from clause names one of
// the host patterns.
func receivedFrom(h Header, hosts []string) bool {
	if len(hosts) == 0 {
		return false
	}
	for _, v := range h.Values("Received") {
		fromPart := v
		if loc := hopByWord.FindStringIndex(v); loc != nil {
			fromPart = v[:loc[0]]
		}
		for _, name := range hostName.FindAllString(strings.ToLower(fromPart), -1) {
			if domainIn(strings.TrimSuffix(name, "."), hosts) {
				return true
			}
		}
	}
	return false
}

var hostName = regexp.MustCompile(`[a-z0-9-]+(\.[a-z0-9-]+)+\.?`)

// headerMatches reports whether a field name matches one of the patterns.
func headerMatches(name string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
				return true
			}
		} else if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}
