package analyzer

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// mailProviders groups the domains one mail provider's systems go by: the
// d= of the ARC sets it seals, the names of its hosts in Received, its
// users' and tenants' address domains. An ARC set sealed by the provider
// that also sent or received the message is that provider's own record,
// not an intermediary's.
var mailProviders = []struct {
	name    string
	domains []string
	source  string
}{
	{"microsoft", []string{"microsoft.com", "outlook.com", "office365.com", "hotmail.com", "live.com", "msn.com", "onmicrosoft.com"},
		"Microsoft 365 and Outlook.com seal ARC as d=microsoft.com, s=arcselector9901 (Microsoft Learn, \"Use the Authenticated Received Chain (ARC) in Microsoft 365\"); hosts *.prod.outlook.com, *.outlook.office365.com, *.protection.outlook.com; tenants at *.onmicrosoft.com"},
	{"google", []string{"google.com", "gmail.com", "googlemail.com", "1e100.net"},
		"Gmail seals ARC as d=google.com, s=arc-20160816 on receipt (Google Workspace Admin Help, \"Authenticated Received Chain\"); hosts mx.google.com, *.1e100.net"},
	{"yahoo", []string{"yahoo.com", "yahoodns.net", "aol.com", "ymail.com"},
		"Yahoo and AOL seal ARC as d=yahoo.com (Yahoo Sender Hub, \"ARC\"); hosts *.mail.yahoo.com, *.yahoodns.net"},
	{"apple", []string{"icloud.com", "me.com", "mac.com", "apple.com"},
		"iCloud Mail hosts *.me.com, *.icloud.com (see appleHosts)"},
}

// twoLevelSuffixes are second-level labels under a country code that
// registries sell names below (co.uk, com.au, …): the organizational
// domain then has three labels.
var twoLevelSuffixes = []string{"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "gv"}

// organization is the system a domain or host name belongs to: the
// provider's name for a provider's domains, else the organizational
// domain (the registered name, RFC 7489 section 3.2, approximated without
// the public suffix list).
func organization(name string) string {
	name = strings.Trim(strings.ToLower(name), ".[] ")
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return ""
	}
	n := 2
	if len(labels) >= 3 && len(labels[len(labels)-1]) == 2 && slices.Contains(twoLevelSuffixes, labels[len(labels)-2]) {
		n = 3
	}
	org := strings.Join(labels[len(labels)-n:], ".")
	for _, p := range mailProviders {
		if slices.Contains(p.domains, org) {
			return p.name
		}
	}
	return org
}

// arcSealDomain reads the d= tag of an ARC-Seal (RFC 8617 section 4.1.3).
var arcSealDomain = regexp.MustCompile(`(?i)(?:^|;)\s*d\s*=\s*([a-z0-9.-]+)`)

// submissionHop recognizes a Received hop by which the sender's own system
// took the message from its author: authenticated submission (RFC 3848
// ESMTPA, ESMTPSA), Exchange's MAPI, webmail, a local program.
var submissionHop = regexp.MustCompile(`(?i)\bwith\s+(esmtpsa|esmtpa|utf8smtpsa|utf8smtpa|mapi|http|https|local)\b|invoked by uid|from userid`)

// arcIntermediary reads the ARC sets (RFC 8617): each says that the system
// that sealed it handled the message. The sender's own system (From's
// domain, or the system that took the sender's submission) and the
// receiving system (the by-host of the newest Received) seal ARC sets on
// ordinary mail (Microsoft 365, Gmail); any other sealer is an
// intermediary that forwarded the message.
func arcIntermediary(h Header, from []headerAddress) (bool, []string) {
	var sealers []string
	for _, v := range h.Values("ARC-Seal") {
		if m := arcSealDomain.FindStringSubmatch(v); m != nil {
			sealers = append(sealers, strings.ToLower(m[1]))
		}
	}
	if len(sealers) == 0 {
		return false, nil
	}
	own := map[string]string{} // organization -> whose system it is
	for _, f := range from {
		own[organization(f.domain)] = "the sender's (From " + f.domain + ")"
	}
	received := h.Values("Received")
	for _, v := range received {
		if bm := hopBy.FindStringSubmatch(v); bm != nil && submissionHop.MatchString(v) {
			if org := organization(strings.TrimRight(bm[1], ";")); org != "" {
				own[org] = "the sender's (submission to " + strings.ToLower(strings.TrimRight(bm[1], ";")) + ")"
			}
		}
	}
	for _, v := range received {
		bm := hopBy.FindStringSubmatch(v)
		if bm == nil {
			continue
		}
		by := strings.ToLower(strings.TrimRight(bm[1], ";"))
		if org := organization(by); org != "" && !hopIP.MatchString(by) {
			own[org] = "the receiver's (by " + by + ")"
			break
		}
	}
	var reasons []string
	for _, d := range slices.Compact(sealers) {
		if whose, ok := own[organization(d)]; ok {
			reasons = append(reasons, fmt.Sprintf("ARC-Seal d=%s is %s own system: not forwarding", d, whose))
			continue
		}
		return true, append(reasons, fmt.Sprintf("ARC-Seal d=%s is neither the sender's nor the receiver's system: an intermediary forwarded the message (RFC 8617)", d))
	}
	return false, reasons
}
