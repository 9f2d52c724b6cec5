package e2e

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/poller"
)

const (
	noticeFrom = "support-noreply@example.test"
	operator   = "ops@example.test"
)

// notifyBlock turns sender notices on in a harness' config.
const notifyBlock = `    notify:
      from: ` + noticeFrom + `
      classes: [encrypted]
      operator_line: "Please send it unencrypted, or use our upload page at https://example.test/upload."
    digest:
      to: [` + operator + `]
`

// pgpMessage is the corpus' PGP/MIME encrypted message with a Subject and
// Message-ID of id and the given header lines (From first) in place of its
// From.
func pgpMessage(t *testing.T, id string, header ...string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "corpus", "pgp-mime-encrypted.eml"))
	if err != nil {
		t.Fatalf("read corpus message: %v", err)
	}
	head, body, _ := bytes.Cut(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n\n"))
	lines := append(header, "Subject: Contract "+id, "Message-ID: <"+id+"@mail.example>")
	for _, l := range strings.Split(string(head), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if !slices.Contains([]string{"From", "Subject", "Message-ID"}, name) {
			lines = append(lines, l)
		}
	}
	return []byte(strings.ReplaceAll(strings.Join(lines, "\n")+"\n\n"+string(body), "\n", "\r\n"))
}

func plainMessage(id, from string) []byte {
	return []byte("From: " + from + "\r\nTo: support@example.test\r\nSubject: Printer " + id + "\r\n" +
		"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\nMessage-ID: <" + id + "@mail.example>\r\n\r\nThe printer is on fire.\r\n")
}

// noticeCase is one message of the notify mix: who should get a notice,
// and who not.
type noticeCase struct {
	raw    []byte
	notice string // the notice's recipient; "" for none
}

func notifyMix(t *testing.T) []noticeCase {
	return []noticeCase{
		{pgpMessage(t, "n1", "From: Alice <alice@customer.example>", "Return-Path: <alice@customer.example>"), "alice@customer.example"},
		{pgpMessage(t, "n2", "From: Alice <alice@customer.example>"), ""}, // same sender: the rate limit
		{pgpMessage(t, "n3", "From: Bob <bob@customer.example>", "Reply-To: desk@customer.example"), "desk@customer.example"},
		{pgpMessage(t, "n4", "From: abc123@mozmail.com", "Reply-To: abc123_reply_tok9@mozmail.com"), "abc123_reply_tok9@mozmail.com"},
		{pgpMessage(t, "n5", "From: Carol <carol@lists.example>", "List-Id: <users.lists.example>"), ""},
		{pgpMessage(t, "n6", "From: Dave <dave@customer.example>", "Auto-Submitted: auto-replied"), ""},
		{pgpMessage(t, "n7", "From: Erin <erin@customer.example>", "Return-Path: <>"), ""},
		{pgpMessage(t, "n8", "From: NoReply <noreply@shop.example>"), ""},
		{pgpMessage(t, "n9", "From: Frank <frank@customer.example>", "Precedence: bulk"), ""},
		{pgpMessage(t, "n10", "From: zx81@privaterelay.appleid.com"), ""},
		{plainMessage("n11", "Grace <grace@customer.example>"), ""}, // forwarded, not flagged
	}
}

// TestNotify: with notify on, one notice per encrypted sender that may
// get one, none to a list, an automatic message, a null return path, a
// no-reply address or a second message of the same sender, not even after
// a restart (the limit is in the store); the notices' headers checked and
// $Notified on their originals in the review folder. With notify off,
// nothing is sent but the forwards.
func TestNotify(t *testing.T) {
	for _, tt := range []struct {
		name string
		su   setup
		on   bool
	}{
		{"file", setup{state: "file", imapTLS: "implicit", afterForward: "seen", notify: notifyBlock}, true},
		{"redis", setup{state: "redis", imapTLS: "implicit", afterForward: "seen", notify: notifyBlock}, true},
		{"off", setup{state: "file", imapTLS: "implicit", afterForward: "seen"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.su)
			mix := notifyMix(t)
			var msgs [][]byte
			want := map[string]string{} // notice recipient -> Message-ID of the original
			for i, m := range mix {
				msgs = append(msgs, m.raw)
				if m.notice != "" && tt.on {
					want[m.notice] = fmt.Sprintf("<n%d@mail.example>", i+1)
				}
			}
			h.seed(msgs)
			h.runOnce("first")
			notices, forwards, digests := splitSink(h.sink.Messages())
			if len(forwards) != 1 {
				t.Errorf("%d forwards; want 1 (the clean message)", len(forwards))
			}
			checkNotices(t, notices, want)
			if tt.on {
				checkDigest(t, digests, len(mix)-1, len(want))
			} else if len(digests) != 0 {
				t.Errorf("%d digests with digest off", len(digests))
			}

			notified := map[string]bool{}
			stored, _ := h.mailbox()
			for _, s := range stored {
				if s.Folder != reviewFolder {
					continue
				}
				id := header(t, s.Raw, "Message-ID")
				if s.has(poller.KeywordNotified) {
					notified[id] = true
				}
			}
			for _, id := range want {
				if !notified[id] {
					t.Errorf("original %s in %s lacks %s", id, reviewFolder, poller.KeywordNotified)
				}
				delete(notified, id)
			}
			if len(notified) > 0 {
				t.Errorf("originals whose sender got no notice carry %s: %v", poller.KeywordNotified, notified)
			}
			if tt.on {
				logged, err := os.ReadFile(filepath.Join(h.dir, "first.log"))
				if err != nil {
					t.Fatal(err)
				}
				for _, rule := range []string{"rate-limit", "list-id", "auto-submitted", "null-return-path", "noreply", "precedence", "apple-private-relay"} {
					if !bytes.Contains(logged, []byte(`"rule":"`+rule+`"`)) {
						t.Errorf("the log does not say rule %s kept a notice back", rule)
					}
				}
			}

			// A new process, the same state: Alice's next encrypted
			// message gets no notice within the period.
			h.sink.Reset()
			h.seed([][]byte{pgpMessage(t, "n12", "From: Alice <alice@customer.example>")})
			h.runOnce("second")
			notices, _, digests = splitSink(h.sink.Messages())
			if len(notices) != 0 {
				t.Errorf("after a restart %d notices; want none (the sender had one)", len(notices))
			}
			if len(digests) != 0 {
				t.Errorf("after a restart %d digests; want none within the period", len(digests))
			}
			if tt.su.state == "file" {
				db, err := os.ReadFile(filepath.Join(h.dir, "state.db"))
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range mix {
					// Relay aliases are kept per thread by design (the
					// store's thread notes), so only the others tell.
					if m.notice != "" && !strings.HasSuffix(m.notice, "@mozmail.com") && bytes.Contains(bytes.ToLower(db), []byte(m.notice)) {
						t.Errorf("the state file holds %s in clear", m.notice)
					}
				}
			}
		})
	}
}

// splitSink tells notices (null envelope sender), digests (to the
// operator) and forwards apart.
func splitSink(msgs []smtpsink.Message) (notices, forwards, digests []smtpsink.Message) {
	for _, m := range msgs {
		switch {
		case m.From == "":
			notices = append(notices, m)
		case slices.Equal(m.To, []string{operator}):
			digests = append(digests, m)
		default:
			forwards = append(forwards, m)
		}
	}
	return notices, forwards, digests
}

// checkDigest holds the digests to one, listing the review folder's
// flagged messages, the notices counted, no body.
func checkDigest(t *testing.T, digests []smtpsink.Message, flagged, notified int) {
	t.Helper()
	if len(digests) != 1 {
		t.Fatalf("%d digests; want 1", len(digests))
	}
	d := digests[0]
	t.Logf("example digest:\n%s", d.Data)
	msg, err := mail.ReadMessage(bytes.NewReader(d.Data))
	if err != nil {
		t.Fatal(err)
	}
	if d.From != triageFrom || msg.Header.Get("Auto-Submitted") != "auto-generated" ||
		msg.Header.Get("Subject") != fmt.Sprintf("mailtriage digest: %d waiting in review (%s)", flagged, mailboxName) {
		t.Errorf("digest envelope from %q, header %v", d.From, msg.Header)
	}
	body := decodedBody(t, msg)
	for _, want := range []string{
		fmt.Sprintf("Waiting: %d messages", flagged),
		fmt.Sprintf("  encrypted        %d", flagged),
		fmt.Sprintf("  sender notified  %d", notified),
		"Alice <alice@customer.example>  Contract n1  [encrypted, notified]",
		"Carol <carol@lists.example>  Contract n5  [encrypted]",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("digest lacks %q", want)
		}
	}
	if strings.Contains(body, "BEGIN PGP") {
		t.Error("digest holds a message body")
	}
}

// checkNotices holds the notices to one per recipient of want, with the
// headers of an RFC 3834 response to the original want names.
func checkNotices(t *testing.T, notices []smtpsink.Message, want map[string]string) {
	t.Helper()
	got := map[string]bool{}
	for i, n := range notices {
		if len(n.To) != 1 {
			t.Errorf("notice %d to %v; want one recipient", i, n.To)
			continue
		}
		to := n.To[0]
		if got[to] {
			t.Errorf("a second notice to %s", to)
		}
		got[to] = true
		orig, ok := want[to]
		if !ok {
			t.Errorf("a notice to %s, who should get none", to)
			continue
		}
		if i == 0 {
			t.Logf("example notice (envelope MAIL FROM:<%s> RCPT TO:<%s>):\n%s", n.From, to, n.Data)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(n.Data))
		if err != nil {
			t.Errorf("notice to %s: %v", to, err)
			continue
		}
		h := msg.Header
		checks := []struct{ field, want string }{
			{"From", noticeFrom},
			{"To", to},
			{"Auto-Submitted", "auto-replied"},
			{"X-Auto-Response-Suppress", "All"},
			{"In-Reply-To", orig},
			{"References", orig},
		}
		for _, c := range checks {
			if got := h.Get(c.field); got != c.want {
				t.Errorf("notice to %s: %s = %q; want %q", to, c.field, got, c.want)
			}
		}
		if s := h.Get("Subject"); !strings.HasPrefix(s, "Auto: Contract ") {
			t.Errorf("notice to %s: Subject = %q; want Auto: and the original subject", to, s)
		}
		if h.Get("Message-ID") == "" || h.Get("Date") == "" {
			t.Errorf("notice to %s lacks Message-ID or Date", to)
		}
		body := decodedBody(t, msg)
		for _, part := range []string{"Contract n", "encrypted with PGP", "upload page"} {
			if !strings.Contains(body, part) {
				t.Errorf("notice to %s does not say %q", to, part)
			}
		}
	}
	for to := range want {
		if !got[to] {
			t.Errorf("no notice to %s", to)
		}
	}
	if keys := slices.Sorted(maps.Keys(got)); len(keys) != len(want) {
		t.Errorf("notices to %v; want %d", keys, len(want))
	}
}

// header returns one field of a raw message.
func header(t *testing.T, raw []byte, name string) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read stored message: %v", err)
	}
	return msg.Header.Get(name)
}

// decodedBody is a single-part message's quoted-printable body, decoded.
func decodedBody(t *testing.T, msg *mail.Message) string {
	t.Helper()
	b, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return string(b)
}
