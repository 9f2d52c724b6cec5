package analyzer

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// tlsRules recognize a hop that used TLS, each with the MTA it comes from.
var tlsRules = []struct {
	re   *regexp.Regexp
	what string
}{
	// RFC 3848 with-protocol types: ESMTPS, ESMTPSA, UTF8SMTPS, UTF8SMTPSA, LMTPS.
	{regexp.MustCompile(`(?i)\bwith\s+(esmtps|esmtpsa|smtps|utf8smtps|utf8smtpsa|lmtps|lmtpsa)\b`), "with-protocol ESMTPS (RFC 3848)"},
	// Postfix: (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
	{regexp.MustCompile(`(?i)\(using\s+(tlsv?[0-9.]+|ssl)`), "Postfix \"using TLS\""},
	// Mimecast and others: (Using TLS); Exchange: with Microsoft SMTP
	// Server (TLS)
	{regexp.MustCompile(`(?i)\(using\s+tls\)|\(tls\)`), "\"(TLS)\""},
	// Sendmail: (version=TLSv1.3 cipher=… verify=…); Microsoft and Gmail:
	// (version=TLS1_2, cipher=…)
	{regexp.MustCompile(`(?i)\bversion=tls`), "version=TLS (Sendmail, Microsoft, Gmail)"},
	// Exim: (TLS1.3) tls TLS_AES_256_GCM_SHA384, or X=TLS1.2:…
	{regexp.MustCompile(`(?i)\(tls1\.[0-9]\)|\btls\s+tls_|\bX=TLS`), "Exim TLS"},
}

// plainProto recognizes the with-protocols of a hop without TLS.
var plainProto = regexp.MustCompile(`(?i)\bwith\s+(e?smtpa?|utf8smtpa?|microsoft smtp server)\b`)

// localHop recognizes hops inside one host or organization: they are not
// judged.
var localHop = regexp.MustCompile(`(?i)\bwith\s+(lmtp|local|mapi|http|https|imap|pop3?)\b|invoked by uid|from userid|\bby\s+localhost\b|\(qmail [0-9]+ invoked by`)

var hopFrom = regexp.MustCompile(`(?i)^\s*from\s+(\S+)`)
var hopByWord = regexp.MustCompile(`(?i)\sby\s`)
var hopBy = regexp.MustCompile(`(?i)\bby\s+(\S+)`)
var hopIP = regexp.MustCompile(`(?i)(?:ipv6:)?[0-9a-f]*:[0-9a-f:.]+|\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}\b`)

// maxHopReasons bounds the reasons a long (or hostile) Received chain adds.
const maxHopReasons = 12

// detectTransport judges each Received hop (RFC 5321 section 4.4): tls when
// every judged hop used TLS, plain when a judged external hop did not,
// unknown when nothing tells.
func detectTransport(h Header) (TransportTLS, []string) {
	var reasons []string
	judged, tls := 0, 0
	plain := false
	for i, v := range h.Values("Received") {
		hop := fmt.Sprintf("Received hop %d", i+1)
		fm := hopFrom.FindStringSubmatch(v)
		if fm == nil {
			continue // no "from": a local submission or an internal handoff
		}
		from := strings.ToLower(fm[1])
		by := ""
		if bm := hopBy.FindStringSubmatch(v); bm != nil {
			by = strings.ToLower(strings.TrimRight(bm[1], ";"))
		}
		name := fmt.Sprintf("%s (from %s by %s)", hop, from, by)
		fromPart := v
		if loc := hopByWord.FindStringIndex(v); loc != nil {
			fromPart = v[:loc[0]]
		}
		if localHop.MatchString(v) || internalHost(from, fromPart) || from == by && by != "" {
			continue
		}
		used := ""
		for _, r := range tlsRules {
			if r.re.MatchString(v) {
				used = r.what
				break
			}
		}
		switch {
		case used != "":
			judged++
			tls++
			reasons = append(reasons, fmt.Sprintf("%s: TLS (%s)", name, used))
		case plainProto.MatchString(v):
			judged++
			plain = true
			reasons = append(reasons, fmt.Sprintf("%s: no TLS (%s)", name, strings.TrimSpace(plainProto.FindString(v))))
		}
	}
	if len(reasons) > maxHopReasons {
		reasons = append(reasons[:maxHopReasons], fmt.Sprintf("Received: %d more judged hops", len(reasons)-maxHopReasons))
	}
	switch {
	case plain:
		return TransportTLSPlain, reasons
	case judged > 0 && tls == judged:
		return TransportTLSYes, reasons
	default:
		return TransportTLSUnknown, append(reasons, "Received: no hop tells whether TLS was used")
	}
}

// heloClause matches what a Received from clause quotes of the client's
// HELO/EHLO argument: qmail's "(HELO name)", Exim's "helo=name". The client
// chooses it, so an address in it says nothing about where the connection
// came from (RFC 5321 section 4.4: the TCP-info is what the server saw).
var heloClause = regexp.MustCompile(`(?i)\(helo\s[^)]*\)|\bhelo=[^\s)]*`)

// internalHost reports whether a hop comes from localhost or from a
// loopback, private or link-local address. The address the server saw
// decides: the first IP literal of the from clause's comments (Postfix
// "(rdns [ip])", qmail "(user@ip)", Exim "([ip])"), HELO arguments left
// out; else the from name itself when it is a literal; else a localhost name.
func internalHost(helo, fromPart string) bool {
	rest := fromPart
	if loc := hopFrom.FindStringIndex(fromPart); loc != nil {
		rest = fromPart[loc[1]:]
	}
	for _, lit := range hopIP.FindAllString(heloClause.ReplaceAllString(rest, " "), -1) {
		if ip, ok := parseHopIP(lit); ok {
			return internalIP(ip)
		}
	}
	if ip, ok := parseHopIP(strings.Trim(helo, "[]")); ok {
		return internalIP(ip)
	}
	if helo == "localhost" || strings.HasPrefix(helo, "localhost.") {
		return true
	}
	return strings.Contains(strings.ToLower(fromPart), "localhost")
}

func parseHopIP(lit string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(strings.TrimPrefix(strings.ToLower(lit), "ipv6:"))
	return ip, err == nil
}

func internalIP(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()
}
