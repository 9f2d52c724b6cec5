package main

import (
	"bytes"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// TestCheckSendTest runs `check --send-test` against the demo's IMAP server
// and an SMTP sink that logs the route's account in: a sink that refuses a
// foreign From as Exchange Online does (554 5.2.252 SendAsDenied), replies
// injected at DATA and AUTH, and a sink that accepts. Each refusal exits
// non-zero with the server's code and its explanation; an accepted test
// message reaches the sink in redirect mode, labelled, with its foreign From
// (also when forward.mode is attach); without --send-test nothing is sent.
func TestCheckSendTest(t *testing.T) {
	bin := binary(t)
	env, cfg := startDemoConfig(t)
	const user, password = demo.TriageAddr, "smtp-secret-K2v9"
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	const plaintext = "        insecure_plaintext: true\n"
	if !strings.HasSuffix(string(cfg), plaintext) {
		t.Fatalf("demo config does not end with its smtp block:\n%s", cfg)
	}
	// config points the demo's mailbox at sink, logging in as user.
	config := func(sink *smtpsink.Sink, mode string) string {
		c := strings.Replace(string(cfg), env.Sink.Addr(), sink.Addr(), 1)
		c = strings.Replace(c, "      mode: redirect\n", "      mode: "+mode+"\n", 1)
		return c + "        username: " + user + "\n        password_file: " + pwFile + "\n"
	}
	start := func(opt smtpsink.Options) *smtpsink.Sink {
		opt.Username, opt.Password = user, password
		s, err := smtpsink.Start(t.Context(), opt)
		if err != nil {
			t.Fatalf("start SMTP sink: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	sendAsDenied := start(smtpsink.Options{SendAsDenied: true})
	accepting := start(smtpsink.Options{})

	for _, tc := range []struct {
		name     string
		sink     *smtpsink.Sink
		fault    smtpsink.Fault
		mode     string
		sendTest bool
		ok       bool
		want     []string // in the send test's line
		sent     bool     // the sink keeps the test message
	}{
		{"Exchange Online refuses a foreign From", sendAsDenied, smtpsink.Fault{}, "redirect", true, false,
			[]string{"554", "SendAsDenied", "will not relay mail in the customer's name; use route mx"}, false},
		{"external forwarding blocked", accepting,
			smtpsink.Fault{Reject: smtpsink.StageData, Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 520}, Text: "Access denied, Your organization does not allow external forwarding"},
			"redirect", true, false, []string{"550", "tenant admin", "Automatic forwarding rules"}, false},
		{"relay denied", accepting,
			smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 554, Enhanced: smtp.EnhancedCode{5, 7, 1}, Text: "Relay access denied"},
			"redirect", true, false, []string{"554", "relay denied"}, false},
		{"login refused", accepting,
			smtpsink.Fault{Reject: smtpsink.StageAuth, Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 8}, Text: "Username and Password not accepted"},
			"redirect", true, false, []string{"535", "did not accept the login"}, false},
		{"temporary refusal", accepting,
			smtpsink.Fault{Reject: smtpsink.StageData, Code: 451, Enhanced: smtp.EnhancedCode{4, 7, 1}, Text: "try again later"},
			"redirect", true, false, []string{"451", "for now"}, false},
		{"other permanent refusal", accepting,
			smtpsink.Fault{Reject: smtpsink.StageData, Code: 550, Enhanced: smtp.EnhancedCode{5, 6, 0}, Text: "content rejected"},
			"redirect", true, false, []string{"550", "refused the message for good"}, false},
		{"accepted", accepting, smtpsink.Fault{}, "redirect", true, true,
			[]string{"accepted", "must have the requester " + sendTestFrom}, true},
		{"accepted, sent in redirect mode although forward.mode is attach", accepting, smtpsink.Fault{}, "attach", true, true,
			[]string{"accepted"}, true},
		{"without --send-test", sendAsDenied, smtpsink.Fault{}, "redirect", false, true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sink.Reset()
			tc.sink.SetFault(tc.fault)
			defer tc.sink.SetFault(smtpsink.Fault{})
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(config(tc.sink, tc.mode)), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"--config", path}
			if tc.sendTest {
				args = append(args, "--send-test")
			}
			out := runCheck(t, bin, tc.ok, nil, args...)
			if strings.Contains(out, password) {
				t.Errorf("check printed the SMTP password:\n%s", out)
			}
			line := sendTestLine(out)
			switch {
			case !tc.sendTest && line != "":
				t.Errorf("a send test ran without --send-test:\n%s", out)
			case tc.sendTest && line == "":
				t.Errorf("no send test line:\n%s", out)
			case tc.sendTest && strings.HasPrefix(line, "FAIL") == tc.ok:
				t.Errorf("send test line %q, want ok=%v", line, tc.ok)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("send test line has no %q:\n%s", w, line)
				}
			}
			msgs := tc.sink.Messages()
			if !tc.sent {
				if len(msgs) != 0 {
					t.Errorf("the sink kept %d messages, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("the sink kept %d messages, want the test message", len(msgs))
			}
			checkTestMessage(t, msgs[0])
		})
	}
}

// checkTestMessage: the test message went out in redirect mode to the
// helpdesk, labelled, with its foreign From.
func checkTestMessage(t *testing.T, m smtpsink.Message) {
	t.Helper()
	if m.From != demo.TriageAddr || len(m.To) != 1 || m.To[0] != demo.HelpdeskAddr {
		t.Errorf("envelope %s -> %v, want %s -> %s", m.From, m.To, demo.TriageAddr, demo.HelpdeskAddr)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read the test message: %v", err)
	}
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil || from.Address != sendTestFrom {
		t.Errorf("From = %q, want %s", msg.Header.Get("From"), sendTestFrom)
	}
	for field, want := range map[string]string{
		"Subject":                sendTestSubject,
		"Auto-Submitted":         "auto-generated",
		"X-Mailtriage-Send-Test": "yes",
		"Resent-From":            demo.TriageAddr,
		"To":                     demo.HelpdeskAddr,
	} {
		if got := msg.Header.Get(field); got != want {
			t.Errorf("%s = %q, want %q", field, got, want)
		}
	}
}

// sendTestLine is the line of check output about the send test, "" when
// there is none.
func sendTestLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, ": send test") {
			return l
		}
	}
	return ""
}

// TestSendTestOtherRoutes: route imap appends nothing and says why; a route
// other than smtp, mx and imap sends nothing and says so (route mx:
// TestRunOnceRouteMX).
func TestSendTestOtherRoutes(t *testing.T) {
	for _, tc := range []struct {
		route string
		want  string
	}{
		{config.RouteIMAP, "route imap appends the original byte for byte, so From is kept; nothing appended"},
		{"carrier-pigeon", "the send test covers routes smtp and mx; nothing sent on route carrier-pigeon"},
	} {
		t.Run(tc.route, func(t *testing.T) {
			l := sendTest(t.Context(), config.Mailbox{Name: "support", Forward: config.Forward{Route: tc.route}})
			if l.err != nil || l.detail != tc.want {
				t.Errorf("sendTest = %q, %v; want %q", l.detail, l.err, tc.want)
			}
		})
	}
}

// TestExplainAcceptance: Gmail's submission servers rewrite From, which the
// 250 cannot show; every other server gets the check to make.
func TestExplainAcceptance(t *testing.T) {
	for _, tc := range []struct {
		address string
		want    string
	}{
		{"smtp.gmail.com:587", "Gmail accepts it but rewrites From"},
		{"SMTP.GoogleMail.com.:465", "Gmail accepts it but rewrites From"},
		{"smtp.office365.com:587", "the server accepted a foreign From"},
		{"127.0.0.1:2525", "the server accepted a foreign From"},
	} {
		if got := explainAcceptance(tc.address); !strings.HasPrefix(got, tc.want) {
			t.Errorf("explainAcceptance(%s) = %q, want it to start with %q", tc.address, got, tc.want)
		}
	}
}
