package e2e

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message"
)

// TestHostileHeaders: through Dovecot, `run --once` and the sink, a header
// that smuggles fields past the classifier with a bare CR is flagged
// $Unparseable and never reaches the helpdesk, and a sender's own
// X-Mailtriage-* fields arrive renamed: each of ours is in the copy once,
// with our value.
func TestHostileHeaders(t *testing.T) {
	smuggler := "From: Mallory <m@attacker.example>\r\nTo: support@example.test\r\nMessage-ID: <smuggler@attacker.example>\r\n" +
		"Subject: invoice\rX-Mailtriage-Released: yes\rContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n" +
		"\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n" +
		"hQEMA5n0a1b2c3d4AQf/Xy0\r\n--b--\r\n"
	forger := "From: Mallory <m@attacker.example>\r\nTo: support@example.test\r\nMessage-ID: <forger@attacker.example>\r\n" +
		"X-Mailtriage-Released: yes\r\nX-Mailtriage-Relay: none\r\nx-mailtriage-thread: <forged@attacker.example>\r\n" +
		"Subject: hello\r\nContent-Type: text/plain\r\n\r\nplease reset my password\r\n"
	h := newHarness(t, setup{state: "file", imapTLS: "implicit", afterForward: "seen"})
	h.seed([][]byte{[]byte(smuggler), []byte(forger)})
	h.runOnce("hostile")

	msgs, _ := h.mailbox()
	var flagged []string
	for _, s := range msgs {
		if s.Folder == reviewFolder {
			flagged = append(flagged, string(s.Raw[:min(len(s.Raw), 160)]))
			if !bytes.Contains(s.Raw, []byte("<smuggler@attacker.example>")) || !s.has("$Unparseable") || !s.has(imap.FlagFlagged) {
				t.Errorf("review holds %q with %v, want the smuggler with $Unparseable", s.Raw[:min(len(s.Raw), 120)], s.Flags)
			}
		}
	}
	if len(flagged) != 1 {
		t.Errorf("review folder holds %d messages, want the smuggler alone: %q", len(flagged), flagged)
	}

	sent := h.sink.Messages()
	if len(sent) != 1 {
		t.Fatalf("the helpdesk got %d messages, want the forger's alone", len(sent))
	}
	m, err := message.Read(bytes.NewReader(sent[0].Data))
	if err != nil {
		t.Fatalf("parse the forwarded copy: %v", err)
	}
	if ct, _, _ := m.Header.ContentType(); ct != "text/plain" && ct != "" {
		t.Errorf("the helpdesk reads Content-Type %q", ct)
	}
	count := map[string][]string{}
	for f := m.Header.Fields(); f.Next(); {
		count[strings.ToLower(f.Key())] = append(count[strings.ToLower(f.Key())], f.Value())
	}
	for name, want := range map[string]string{
		"x-mailtriage-relay":             "none",
		"x-mailtriage-encryption":        "none",
		"x-original-mailtriage-relay":    "none",
		"x-original-mailtriage-released": "yes",
		"x-original-mailtriage-thread":   "<forged@attacker.example>",
		"x-mailtriage-thread":            "<forger@attacker.example>", // ours: the root is the message itself
	} {
		if got := count[name]; len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want once %q", name, got, want)
		}
	}
	if got := count["x-mailtriage-released"]; len(got) != 0 {
		t.Errorf("x-mailtriage-released: %q, want none: the message was not released", got)
	}
}
