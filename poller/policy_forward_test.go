package poller

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
)

// encryptedShapes are encrypted messages the poller meets, each with a Cc,
// in CRLF form as a server holds them.
func encryptedShapes() []struct{ name, id, raw string } {
	head := func(id string) string {
		return "From: Bob <bob@example.org>\r\n" +
			"To: support@example.net, Sales <sales@example.net>\r\n" +
			"Cc: Carol <carol@example.org>\r\n" +
			"Subject: Contract " + id + "\r\n" +
			"Date: Tue, 24 Nov 2026 09:02:00 +0000\r\n" +
			"Message-ID: <" + id + "@example.org>\r\n" +
			"MIME-Version: 1.0\r\n"
	}
	armor := "-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA5ZHj1sX7QqWAQf/Zm9vYmFyYmF6cXV4\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n"
	// The armor in base64 lines of 76, as Exchange attaches encrypted.asc.
	var armorB64 strings.Builder
	for s := base64.StdEncoding.EncodeToString([]byte(armor)); s != ""; {
		n := min(len(s), 76)
		armorB64.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	return []struct{ name, id, raw string }{
		{"PGP/MIME", "pgp-mime", head("pgp-mime") +
			"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
			"--b1\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n" + armor + "\r\n--b1--\r\n"},
		{"S/MIME enveloped-data", "smime", head("smime") +
			"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"\r\n" +
			"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n" +
			"MIIBAAYJKoZIhvcNAQcDoIAwgAIBADGB\r\n"},
		{"PGP/MIME rewrapped by Exchange", "exchange", head("exchange") +
			"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\r\n" +
			"--b1\r\nContent-Type: application/pgp-encrypted; name=\"PGPMIME Versions Identification\"\r\n" +
			"Content-Disposition: attachment; filename=\"PGPMIME Versions Identification\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\nVmVyc2lvbjogMQ0K\r\n\r\n" +
			"--b1\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n" +
			"Content-Disposition: attachment; filename=\"encrypted.asc\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" + armorB64.String() + "\r\n--b1--\r\n"},
	}
}

// Under the default policy each encrypted shape goes to review; the
// Exchange shape needs the sample of its octet-stream part, which the poller
// fetches because analyzer.SamplePaths names it.
func TestEncryptedShapesFlagged(t *testing.T) {
	for _, c := range encryptedShapes() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", c.raw)
			rep := e.cycle(e.poller(nil, nil))
			if rep.Counts.Flagged != 1 || rep.Counts.Forwarded != 0 {
				t.Fatalf("counts = %+v, want the message flagged", rep.Counts)
			}
			review := e.folder("Triage/Review")
			if len(review) != 1 || !review[0].has(KeywordEncrypted) {
				t.Errorf("review folder = %+v, want the message with $Encrypted", review)
			}
			if n := e.sink.Count(); n != 0 {
				t.Errorf("the helpdesk received %d messages, want none", n)
			}
		})
	}
}

// Issue 15 item 4: a helpdesk that decrypts (Zammad, Request Tracker with
// the keys uploaded) sets policy.encrypted: forward. The encrypted message
// then goes out in redirect mode byte for byte under the annotation and
// Resent-* fields, its To and Cc untouched, to the helpdesk's envelope
// address only.
func TestPolicyForwardsEncrypted(t *testing.T) {
	for _, c := range encryptedShapes() {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", c.raw)
			p := e.poller(nil, func(mb *Mailbox) {
				mb.Policy = analyzer.Policy{analyzer.ClassEncrypted: analyzer.ActionForward}
			})
			rep := e.cycle(p)
			if rep.Counts.Forwarded != 1 || rep.Counts.Flagged != 0 {
				t.Fatalf("counts = %+v, want the encrypted message forwarded", rep.Counts)
			}
			msgs := e.sink.Messages()
			if len(msgs) != 1 {
				t.Fatalf("the helpdesk received %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if !slices.Equal(got.To, []string{"helpdesk@example.zendesk.com"}) {
				t.Errorf("envelope recipients %v, want the helpdesk only", got.To)
			}
			prefix, ok := bytes.CutSuffix(got.Data, []byte(c.raw))
			if !ok {
				t.Fatalf("the forwarded message does not end with the original, byte for byte:\n%s", got.Data)
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(prefix), "\r\n"), "\r\n") {
				if !strings.HasPrefix(line, "X-Mailtriage-") && !strings.HasPrefix(line, "Resent-") && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
					t.Errorf("prepended line %q is neither an annotation nor a Resent-* field", line)
				}
			}
			if !bytes.Contains(prefix, []byte("X-Mailtriage-Encryption: ")) || bytes.Contains(prefix, []byte("X-Mailtriage-Encryption: none")) {
				t.Errorf("annotation does not say the message is encrypted:\n%s", prefix)
			}
			inbox := e.folder("INBOX")
			if len(inbox) != 1 || inbox[0].MessageID != c.id+"@example.org" || !inbox[0].has(KeywordForwarded) || !inbox[0].has(imap.FlagSeen) {
				t.Errorf("INBOX = %+v, want the message marked $Forwarded and \\Seen", inbox)
			}
			if review := e.folder("Triage/Review"); len(review) != 0 {
				t.Errorf("review folder = %+v, want it empty", review)
			}
		})
	}
}
