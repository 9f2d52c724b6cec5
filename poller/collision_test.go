package poller

import (
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// collidingEncrypted is a PGP/MIME message that copies the Message-ID,
// Date, From, To and Subject of cleanMessage(id): another message under
// the same identifying headers.
func collidingEncrypted(id string) string {
	clean := cleanMessage(id)
	head := clean[:strings.Index(clean, "MIME-Version:")]
	enc := encryptedMessage(id)
	return head + enc[strings.Index(enc, "MIME-Version:"):]
}

// Issue 11 item 6: a fingerprint collision never hides a message. Two
// different messages under the same identifying headers are each handled on
// their own: the clean one forwarded, the encrypted one flagged into review,
// whichever comes first and whether or not they share a batch; read again,
// each is still recognised and nothing is sent twice.
func TestFingerprintCollisionIsFlagged(t *testing.T) {
	clean, encrypted := cleanMessage("twin"), collidingEncrypted("twin")
	cases := []struct {
		name   string
		rounds [][]string // messages delivered before each cycle
	}{
		{"an encrypted copy after the clean one was forwarded", [][]string{{clean}, {encrypted}}},
		{"a clean copy after the encrypted one was flagged", [][]string{{encrypted}, {clean}}},
		{"both in one batch", [][]string{{clean, encrypted}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := e.poller(nil, nil)
			var total Counts
			for _, round := range c.rounds {
				for _, raw := range round {
					e.appendMsg("INBOX", raw)
				}
				rep := e.cycle(p)
				total.Forwarded += rep.Counts.Forwarded
				total.Flagged += rep.Counts.Flagged
			}
			if total.Forwarded != 1 || total.Flagged != 1 {
				t.Errorf("counts over the cycles: %d forwarded, %d flagged; want 1 and 1", total.Forwarded, total.Flagged)
			}
			if got := e.received(); !slices.Equal(got, []string{"twin@example.com"}) {
				t.Errorf("helpdesk received %v, want the clean message once", got)
			}
			inbox := e.folder("INBOX")
			if len(inbox) != 1 || !inbox[0].has(KeywordForwarded) || !inbox[0].has(imap.FlagSeen) {
				t.Errorf("INBOX = %+v, want only the forwarded clean message, marked", inbox)
			}
			review := e.folder("Triage/Review")
			if len(review) != 1 || review[0].MessageID != "twin@example.com" || !review[0].has(KeywordEncrypted) || !review[0].has(imap.FlagFlagged) {
				t.Errorf("review folder = %+v, want the encrypted copy with $Encrypted and \\Flagged", review)
			}

			// Another cycle reads nothing new; the records still cover both.
			if rep := e.cycle(p); rep.Counts != (Counts{}) {
				t.Errorf("last cycle counts = %+v, want nothing done", rep.Counts)
			}
			if n := e.sink.Count(); n != 1 {
				t.Errorf("the helpdesk has %d messages, want 1", n)
			}
		})
	}
}
