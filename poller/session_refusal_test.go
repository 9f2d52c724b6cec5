package poller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// TestSessionRefusalLeavesMailUntouched: when the helpdesk's server refuses
// the session — EHLO, our sender, a 421, or a HELO check that Postfix delays
// to RCPT — no clean message is blamed: all stay in the inbox untouched,
// forwarding pauses, and they go once the server takes mail again. 552 to
// RCPT is temporary too (RFC 5321 §4.5.3.1.10), and so is a provider's
// sending quota used up, though it comes as a 5xx to the data. Encrypted
// mail is flagged meanwhile.
func TestSessionRefusalLeavesMailUntouched(t *testing.T) {
	const clean = 6
	helo := "<localhost>: Helo command rejected: need fully-qualified hostname"
	for _, tc := range []struct {
		name  string
		fault smtpsink.Fault
	}{
		{"504 to EHLO", smtpsink.Fault{Reject: smtpsink.StageEHLO, Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: helo}},
		{"504 Helo rejected at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: helo}},
		{"421 to EHLO", smtpsink.Fault{Reject: smtpsink.StageEHLO, Code: 421, Enhanced: smtp.EnhancedCode{4, 3, 2}}},
		{"421 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 421, Enhanced: smtp.EnhancedCode{4, 3, 2}}},
		{"550 to MAIL: sender refused", smtpsink.Fault{Reject: smtpsink.StageMail, Code: 550, Enhanced: smtp.EnhancedCode{5, 7, 1}}},
		{"530 at RCPT: authentication required", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 530, Enhanced: smtp.EnhancedCode{5, 7, 0}}},
		{"552 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 552, Enhanced: smtp.EnhancedCode{5, 2, 2}}},
		{"Gmail's daily quota after the data", smtpsink.Fault{Reject: smtpsink.StageData, Code: 550, Enhanced: smtp.EnhancedCode{5, 4, 5}, Text: "Daily user sending limit exceeded."}},
		{"Exchange's submission quota after the data", smtpsink.Fault{Reject: smtpsink.StageData, Code: 554, Enhanced: smtp.EnhancedCode{5, 2, 0},
			Text: "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message Cannot submit message."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			for i := range clean {
				e.appendMsg("INBOX", cleanMessage(fmt.Sprintf("clean-%d", i)))
			}
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			e.sink.SetFault(tc.fault)
			p := e.poller(nil, nil)
			e.cycle(p)

			review, inbox := e.folder("Triage/Review"), e.folder("INBOX")
			var blamed []string
			for _, m := range review {
				if strings.HasPrefix(m.MessageID, "clean") {
					blamed = append(blamed, m.MessageID)
				}
			}
			if len(blamed) != 0 || len(inbox) != clean || len(review) != 1 {
				t.Fatalf("review %d (clean ones blamed: %v), inbox %d; want the %d clean ones left in the inbox", len(review), blamed, len(inbox), clean)
			}
			for _, m := range inbox {
				if len(m.Flags) != 0 {
					t.Errorf("%s was touched: %v", m.MessageID, m.Flags)
				}
			}
			if ok, _ := p.forwardingAllowed(time.Now()); ok {
				t.Fatal("forwarding not paused after a session refusal")
			}

			e.sink.SetFault(smtpsink.Fault{})
			p.mu.Lock()
			p.backoff.until = time.Now()
			p.mu.Unlock()
			rep := e.cycle(p)
			if rep.Counts.Forwarded != clean || e.sink.Count() != clean {
				t.Errorf("after the refusal cleared: %+v, helpdesk has %d, want %d", rep.Counts, e.sink.Count(), clean)
			}
			for _, m := range e.folder("INBOX") {
				if !m.has(KeywordForwarded) || !m.has(imap.FlagSeen) {
					t.Errorf("%s has %v after forwarding", m.MessageID, m.Flags)
				}
			}
		})
	}
}
