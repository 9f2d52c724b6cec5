package notify

import (
	"net/mail"
	"strings"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Rule is one reason not to send a notice, with where it comes from. The
// README lists every rule (a test checks that it does).
type Rule struct {
	Name   string // short name, in logs: "list-id"
	Reason string // in plain words
	Source string // the RFC section or the helpdesk that follows it
}

// headerRule skips a message that carries a header field: any value, or
// one of Values (a lower-case token, or a prefix with Prefix), unless it is
// one of Except.
type headerRule struct {
	Rule
	Field  string
	Values []string
	Prefix bool
	Except []string
}

// headerRules are the fields that say a message is a list's, bulk,
// automatic, or asks not to be answered.
var headerRules = []headerRule{
	{Rule{"auto-submitted", "Auto-Submitted other than \"no\": an automatic message", "RFC 3834 §2 and §5, RFC 5230 §4.5"}, "Auto-Submitted", nil, false, []string{"no"}},
	{Rule{"list-id", "List-Id: a mailing list's message", "RFC 3834 §2, RFC 2919, RFC 5230 §4.5"}, "List-Id", nil, false, nil},
	{Rule{"list-post", "List-Post: a mailing list's message", "RFC 3834 §2, RFC 2369"}, "List-Post", nil, false, nil},
	{Rule{"list-unsubscribe", "List-Unsubscribe: a list's or bulk sender's message", "RFC 2369, RFC 8058; Zammad"}, "List-Unsubscribe", nil, false, nil},
	{Rule{"list-help", "List-Help: a mailing list's message", "RFC 2369"}, "List-Help", nil, false, nil},
	{Rule{"list-owner", "List-Owner: a mailing list's message", "RFC 2369"}, "List-Owner", nil, false, nil},
	{Rule{"precedence", "Precedence bulk, list or junk", "RFC 3834 §2 (de facto), RFC 5230 §4.5; Zammad, Request Tracker"}, "Precedence", []string{"bulk", "list", "junk"}, false, nil},
	{Rule{"x-auto-response-suppress", "X-Auto-Response-Suppress: the sender asks for no automatic replies", "Microsoft [MS-OXCMAIL] §2.2.3.2.14; Zammad"}, "X-Auto-Response-Suppress", nil, false, nil},
	{Rule{"x-loop", "X-Loop: a message that went round a loop detector", "procmail, Zammad"}, "X-Loop", nil, false, nil},
	{Rule{"x-rt-loop-prevention", "X-RT-Loop-Prevention: mail from a Request Tracker", "Request Tracker (RT::Interface::Email)"}, "X-RT-Loop-Prevention", nil, false, nil},
	{Rule{"x-autoreply", "X-Autoreply: an automatic reply", "Zammad"}, "X-Autoreply", nil, false, nil},
	{Rule{"x-autorespond", "X-Autorespond: an automatic reply", "Zammad"}, "X-Autorespond", nil, false, nil},
	{Rule{"x-fc-machinegenerated", "X-FC-Machinegenerated: true: machine-generated mail", "Request Tracker"}, "X-FC-Machinegenerated", []string{"true"}, false, nil},
	{Rule{"report", "Content-Type multipart/report: a bounce, delivery or read receipt, or abuse report", "RFC 6522, RFC 3464, RFC 8098, RFC 5965"}, "Content-Type", []string{"multipart/report"}, true, nil},
	{Rule{"feedback-type", "Feedback-Type: an abuse or feedback report", "RFC 5965"}, "Feedback-Type", nil, false, nil},
}

// addressRule skips a sender whose local part (before "@", lower-cased)
// is Local, or starts or ends with it.
type addressRule struct {
	Rule
	Local string
	Kind  string // "is", "prefix" or "suffix"
}

// addressRules are the addresses of servers, list software and senders
// that ask not to be answered. They apply to the recipient of the notice
// and to the message's envelope sender (Return-Path).
var addressRules = []addressRule{
	{Rule{"mailer-daemon", "MAILER-DAEMON: a mail server's own address", "RFC 3834 §2, RFC 5230 §4.5"}, "mailer-daemon", "is"},
	{Rule{"postmaster", "postmaster: a mail server's own address", "RFC 5321 §4.5.1; Request Tracker"}, "postmaster", "is"},
	{Rule{"owner-", "owner-*: a mailing list's owner address", "RFC 5230 §4.5"}, "owner-", "prefix"},
	{Rule{"-request", "*-request: a mailing list's command address", "RFC 5230 §4.5"}, "-request", "suffix"},
	{Rule{"-owner", "*-owner: a mailing list's owner address", "GNU Mailman"}, "-owner", "suffix"},
	{Rule{"-bounces", "*-bounces: a mailing list's bounce address", "GNU Mailman"}, "-bounces", "suffix"},
	{Rule{"bounce", "bounce*: a bounce-processing address", "common bulk-mail practice; Zammad"}, "bounce", "prefix"},
	{Rule{"listserv", "LISTSERV: list software", "RFC 5230 §4.5"}, "listserv", "is"},
	{Rule{"majordomo", "majordomo: list software", "RFC 5230 §4.5"}, "majordomo", "is"},
	{Rule{"noreply", "noreply*: the sender says it reads no replies", "Zammad, Request Tracker"}, "noreply", "prefix"},
	{Rule{"no-reply", "no-reply*: the sender says it reads no replies", "Zammad, Request Tracker"}, "no-reply", "prefix"},
	{Rule{"no_reply", "no_reply*: the sender says it reads no replies", "Zammad"}, "no_reply", "prefix"},
	{Rule{"donotreply", "donotreply*: the sender says it reads no replies", "Zammad"}, "donotreply", "prefix"},
	{Rule{"do-not-reply", "do-not-reply*: the sender says it reads no replies", "Zammad"}, "do-not-reply", "prefix"},
	{Rule{"do_not_reply", "do_not_reply*: the sender says it reads no replies", "Zammad"}, "do_not_reply", "prefix"},
}

// The rules that read the envelope and the addresses as a whole.
var (
	RuleNullReturnPath = Rule{"null-return-path", "Return-Path <>: a bounce or another automatic message", "RFC 3834 §2, RFC 5321 §4.5.5, RFC 5230 §4.5"}
	RuleNoAddress      = Rule{"no-address", "no single address to answer in Reply-To or From", "RFC 3834 §4"}
	RuleOwnAddress     = Rule{"own-address", "the sender is one of our own addresses (notify.from, forward.from, forward.to, the mailbox's login)", "RFC 3834 §2, RFC 5230 §4.5"}
	RuleAppleRelay     = Rule{"apple-private-relay", "a Sign in with Apple relay address (privaterelay.appleid.com): it bounces mail from a domain not registered with Apple; set notify.apple_relay_registered when ours is", "Apple, Sign in with Apple private email relay"}
	RuleRateLimit      = Rule{"rate-limit", "a notice went to this sender less than notify.period ago", "RFC 3834 §2, RFC 5230 §4.6"}
)

// Rules returns every rule, in the order they are checked (the rate limit
// last).
func Rules() []Rule {
	var rs []Rule
	for _, r := range headerRules {
		rs = append(rs, r.Rule)
	}
	rs = append(rs, RuleNullReturnPath)
	rs = append(rs, RuleNoAddress)
	for _, r := range addressRules {
		rs = append(rs, r.Rule)
	}
	return append(rs, RuleOwnAddress, RuleAppleRelay, RuleRateLimit)
}

// appleRelayDomain is Sign in with Apple's relay. Hide My Email aliases
// (icloud.com) take mail from anyone and are answered like any address.
const appleRelayDomain = "privaterelay.appleid.com"

// Fields are the header fields the rules and the notice read; Keep drops
// the rest.
func Fields() []string {
	fs := []string{"From", "Reply-To", "Return-Path", "Date"}
	for _, r := range headerRules {
		fs = append(fs, r.Field)
	}
	return fs
}

// maxKeptValue bounds each kept field value: the rules read a token or
// an address, never more.
const maxKeptValue = 1024

// Keep returns the fields of h that Fields names, each value cut to 1 KiB,
// so that a flagged message waiting for its notice holds little memory.
func Keep(h analyzer.Header) analyzer.Header {
	names := Fields()
	var kept analyzer.Header
	for _, f := range h {
		for _, n := range names {
			if strings.EqualFold(f.Name, n) {
				v := f.Value
				if len(v) > maxKeptValue {
					v = v[:maxKeptValue]
				}
				kept = append(kept, analyzer.Field{Name: n, Value: v})
				break
			}
		}
	}
	return kept
}

// Options are the settings Check applies besides the tables.
type Options struct {
	Own                  []string // our own addresses, never answered
	AppleRelayRegistered bool     // our sending domain is registered with Sign in with Apple
}

// Check decides whether the sender of h may get a notice: it returns the
// address to send it to, or the first rule that forbids one. The address
// is Reply-To when it names one address, else From (RFC 3834 §4, as a
// reply to a request is sent); a relay alias or reply token is answered
// as it stands, never decoded.
func Check(h analyzer.Header, opt Options) (string, *Rule) {
	for i := range headerRules {
		if r := &headerRules[i]; r.matches(h) {
			return "", &r.Rule
		}
	}
	rp, hasRP := returnPath(h)
	if hasRP && rp == "" {
		return "", &RuleNullReturnPath
	}
	to := recipient(h)
	if to == "" {
		return "", &RuleNoAddress
	}
	for _, addr := range []string{to, rp} {
		if r := matchAddress(addr); r != nil {
			return "", r
		}
	}
	for _, own := range opt.Own {
		if strings.EqualFold(strings.TrimSpace(own), to) {
			return "", &RuleOwnAddress
		}
	}
	if _, domain, _ := strings.Cut(to, "@"); domain == appleRelayDomain && !opt.AppleRelayRegistered {
		return "", &RuleAppleRelay
	}
	return to, nil
}

func (r *headerRule) matches(h analyzer.Header) bool {
	for _, v := range h.Values(r.Field) {
		tok := strings.ToLower(strings.TrimSpace(v))
		if r.Prefix {
			for _, want := range r.Values {
				if strings.HasPrefix(tok, want) {
					return true
				}
			}
			continue
		}
		// The first token: "auto-replied; owner-email=..." (RFC 3834 §5).
		if i := strings.IndexAny(tok, "; \t"); i >= 0 {
			tok = tok[:i]
		}
		if contains(r.Except, tok) {
			continue
		}
		if r.Values == nil || contains(r.Values, tok) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// matchAddress returns the address rule addr (lower case) falls under.
func matchAddress(addr string) *Rule {
	local, _, ok := strings.Cut(addr, "@")
	if !ok {
		return nil
	}
	for i := range addressRules {
		r := &addressRules[i]
		var hit bool
		switch r.Kind {
		case "is":
			hit = local == r.Local
		case "prefix":
			hit = strings.HasPrefix(local, r.Local)
		case "suffix":
			hit = strings.HasSuffix(local, r.Local)
		}
		if hit {
			return &r.Rule
		}
	}
	return nil
}

// returnPath returns the envelope sender the delivering server recorded
// (RFC 5321 §4.4), lower-cased; "" with true for the null path "<>".
func returnPath(h analyzer.Header) (string, bool) {
	v := h.Values("Return-Path")
	if len(v) == 0 {
		return "", false
	}
	// The first: a delivering server prepends its own (RFC 5321 §4.4).
	s := strings.TrimSpace(v[0])
	inner := strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">"))
	if inner == "" {
		return "", true
	}
	if a, err := mail.ParseAddress("<" + inner + ">"); err == nil {
		return strings.ToLower(a.Address), true
	}
	return strings.ToLower(inner), true
}

// recipient is the single address of Reply-To, else of From, lower-cased;
// "" when neither names exactly one.
func recipient(h analyzer.Header) string {
	for _, name := range []string{"Reply-To", "From"} {
		v := h.Get(name)
		if strings.TrimSpace(v) == "" {
			continue
		}
		list, err := mail.ParseAddressList(v)
		if err != nil || len(list) != 1 {
			return ""
		}
		return strings.ToLower(list[0].Address)
	}
	return ""
}
