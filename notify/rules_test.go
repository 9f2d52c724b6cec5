package notify

import (
	"os"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
)

// header builds a header from "Name: value" lines.
func header(lines ...string) analyzer.Header {
	var h analyzer.Header
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		h = append(h, analyzer.Field{Name: name, Value: strings.TrimSpace(value)})
	}
	return h
}

const customer = "From: Alice Example <Alice@Customer.example>"

// TestCheck has a row for every do-not-reply rule (TestCheckCoversRules
// holds it to that) and the cases that must still get a notice.
func TestCheck(t *testing.T) {
	own := Options{Own: []string{"support-noreply@example.com", "triage@example.com", "support@example.com"}}
	tests := []struct {
		name   string
		header analyzer.Header
		opt    Options
		rule   string // "" = a notice goes to want
		want   string
	}{
		{"plain customer", header(customer, "Return-Path: <alice@customer.example>"), own, "", "alice@customer.example"},
		{"reply-to wins", header(customer, "Reply-To: desk@customer.example"), own, "", "desk@customer.example"},
		{"no return path recorded", header(customer), own, "", "alice@customer.example"},
		{"auto-submitted no is a person", header(customer, "Auto-Submitted: no"), own, "", "alice@customer.example"},
		{"precedence first-class", header(customer, "Precedence: first-class"), own, "", "alice@customer.example"},
		{"firefox relay alias answered as it stands", header("From: abc123@mozmail.com"), own, "", "abc123@mozmail.com"},
		{"reply token answered as it stands", header("From: Bob <bob_at_x_abc@duck.com>", "Reply-To: bob_at_x_abc_tok123@duck.com"), own, "", "bob_at_x_abc_tok123@duck.com"},
		{"hide my email alias answered", header("From: x9_fox_1a@icloud.com"), own, "", "x9_fox_1a@icloud.com"},
		{"apple relay, domain registered", header("From: zx81@privaterelay.appleid.com"), Options{AppleRelayRegistered: true}, "", "zx81@privaterelay.appleid.com"},
		{"bounce-like word inside the local part", header("From: rebounce@customer.example"), own, "", "rebounce@customer.example"},

		{"auto-replied", header(customer, "Auto-Submitted: auto-replied"), own, "auto-submitted", ""},
		{"auto-generated with a parameter", header(customer, "Auto-Submitted: Auto-Generated; owner-email=x@y"), own, "auto-submitted", ""},
		{"list-id", header(customer, "List-Id: <users.lists.example>"), own, "list-id", ""},
		{"list-post", header(customer, "List-Post: <mailto:users@lists.example>"), own, "list-post", ""},
		{"list-unsubscribe", header(customer, "List-Unsubscribe: <https://x.example/u>"), own, "list-unsubscribe", ""},
		{"list-help", header(customer, "List-Help: <mailto:help@lists.example>"), own, "list-help", ""},
		{"list-owner", header(customer, "List-Owner: <mailto:owner@lists.example>"), own, "list-owner", ""},
		{"precedence bulk", header(customer, "Precedence: bulk"), own, "precedence", ""},
		{"precedence list", header(customer, "Precedence: List"), own, "precedence", ""},
		{"precedence junk", header(customer, "Precedence: junk"), own, "precedence", ""},
		{"x-auto-response-suppress", header(customer, "X-Auto-Response-Suppress: OOF, AutoReply"), own, "x-auto-response-suppress", ""},
		{"x-loop", header(customer, "X-Loop: helpdesk@example.com"), own, "x-loop", ""},
		{"x-rt-loop-prevention", header(customer, "X-RT-Loop-Prevention: example.com"), own, "x-rt-loop-prevention", ""},
		{"x-autoreply", header(customer, "X-Autoreply: yes"), own, "x-autoreply", ""},
		{"x-autorespond", header(customer, "X-Autorespond: vacation"), own, "x-autorespond", ""},
		{"x-fc-machinegenerated", header(customer, "X-FC-Machinegenerated: true"), own, "x-fc-machinegenerated", ""},
		{"multipart/report", header(customer, "Content-Type: multipart/report; report-type=delivery-status; boundary=x"), own, "report", ""},
		{"feedback-type", header(customer, "Feedback-Type: abuse"), own, "feedback-type", ""},
		{"null return path", header(customer, "Return-Path: <>"), own, "null-return-path", ""},
		{"null return path with spaces", header(customer, "Return-Path: < >"), own, "null-return-path", ""},
		{"no from", header("Subject: hi"), own, "no-address", ""},
		{"two from addresses", header("From: a@x.example, b@x.example"), own, "no-address", ""},
		{"unparseable from", header("From: <<<"), own, "no-address", ""},
		{"reply-to to two", header(customer, "Reply-To: a@x.example, b@x.example"), own, "no-address", ""},
		{"mailer-daemon", header("From: MAILER-DAEMON@mx.example"), own, "mailer-daemon", ""},
		{"postmaster", header("From: postmaster@mx.example"), own, "postmaster", ""},
		{"owner-", header("From: owner-users@lists.example"), own, "owner-", ""},
		{"-request", header("From: users-request@lists.example"), own, "-request", ""},
		{"-owner", header("From: users-owner@lists.example"), own, "-owner", ""},
		{"-bounces", header("From: users-bounces@lists.example"), own, "-bounces", ""},
		{"bounce", header("From: bounces+abc=x@mail.example"), own, "bounce", ""},
		{"listserv", header("From: LISTSERV@lists.example"), own, "listserv", ""},
		{"majordomo", header("From: majordomo@lists.example"), own, "majordomo", ""},
		{"noreply", header("From: NoReply@shop.example"), own, "noreply", ""},
		{"noreply with a suffix", header("From: noreply-billing@shop.example"), own, "noreply", ""},
		{"no-reply", header("From: no-reply@shop.example"), own, "no-reply", ""},
		{"no_reply", header("From: no_reply@shop.example"), own, "no_reply", ""},
		{"donotreply", header("From: donotreply@shop.example"), own, "donotreply", ""},
		{"do-not-reply", header("From: do-not-reply@shop.example"), own, "do-not-reply", ""},
		{"do_not_reply", header("From: do_not_reply@shop.example"), own, "do_not_reply", ""},
		{"return path of a list", header(customer, "Return-Path: <users-bounces@lists.example>"), own, "-bounces", ""},
		{"reply-to noreply", header(customer, "Reply-To: noreply@customer.example"), own, "noreply", ""},
		{"own notice address", header("From: Support-NoReply@example.com"), own, "own-address", ""},
		{"own forward address", header("From: triage@example.com"), own, "own-address", ""},
		{"own mailbox", header("From: support@example.com"), own, "own-address", ""},
		{"apple relay", header("From: zx81@privaterelay.appleid.com"), own, "apple-private-relay", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, rule := Check(Keep(tt.header), tt.opt)
			got := ""
			if rule != nil {
				got = rule.Name
			}
			if got != tt.rule || to != tt.want {
				t.Errorf("Check = %q, rule %q; want %q, rule %q", to, got, tt.want, tt.rule)
			}
		})
	}
}

// TestCheckCoversRules: every rule but the rate limit (TestNotifyRateLimit)
// has a row in TestCheck that triggers it.
func TestCheckCoversRules(t *testing.T) {
	b, err := os.ReadFile("rules_test.go")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, r := range Rules() {
		if r.Name == RuleRateLimit.Name {
			continue
		}
		if !strings.Contains(src, `own, "`+r.Name+`", ""}`) {
			t.Errorf("rule %s has no row in TestCheck", r.Name)
		}
		if r.Reason == "" || r.Source == "" {
			t.Errorf("rule %s lacks its reason or source", r.Name)
		}
	}
}

// TestKeep: only the named fields stay, each value bounded.
func TestKeep(t *testing.T) {
	h := header(customer, "Received: from x", "Subject: secret plans", "List-Id: "+strings.Repeat("x", 5000))
	kept := Keep(h)
	if len(kept) != 2 || kept.Get("Subject") != "" || kept.Get("Received") != "" || len(kept.Get("List-Id")) != maxKeptValue {
		t.Errorf("Keep = %q", kept)
	}
}

// FuzzCheck: no header, however hostile, makes Check panic or answer an
// address that would break an SMTP command or a header line.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{customer, "From: =?utf-8?q?=E2=80=AE?= <a@b>", "Return-Path: <", "From: a@b\r\nBcc: c@d", "Reply-To: \"x\" <>"} {
		f.Add(s, "Return-Path: <x@y>")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		to, rule := Check(header(a, b), Options{})
		if rule == nil && (to == "" || strings.ContainsAny(to, "\r\n<> ")) {
			t.Fatalf("Check(%q, %q) = %q without a rule", a, b, to)
		}
	})
}
