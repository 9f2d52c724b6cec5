package bench

import (
	"bytes"
	"context"
	"maps"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// TestMixNotices: `run --once` over the benchmark mix with notify on sends
// exactly one notice per sender of encrypted mail (the mix repeats each
// corpus sender many times) and none to anyone else, and forwards what it
// forwards without notify.
func TestMixNotices(t *testing.T) {
	const n = 400
	ts := loadTemplates(t)
	bin := buildBinary(t)
	d := testenv.StartDovecot(t)
	sink, err := smtpsink.Start(context.Background(), smtpsink.Options{TLS: tlsmode.None})
	if err != nil {
		t.Fatalf("start SMTP sink: %v", err)
	}
	defer sink.Close()

	// The senders a notice is due to: the Reply-To, else From, of the
	// encrypted messages of the mix; the corpus has no list or automatic
	// mail among them.
	m := newMix(benchSeed, ts)
	senders := map[string]bool{}
	for i := range n {
		raw, flag := m.message("inbox", i)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !flag {
			continue
		}
		if relay := msg.Header.Get("List-Id") + msg.Header.Get("Auto-Submitted") + msg.Header.Get("Precedence"); relay != "" {
			t.Fatalf("message %d of the mix is list or automatic mail (%q): the expectation below does not hold", i, relay)
		}
		to := msg.Header.Get("Reply-To")
		if to == "" {
			to = msg.Header.Get("From")
		}
		a, err := mail.ParseAddress(to)
		if err != nil {
			t.Fatalf("message %d: sender %q: %v", i, to, err)
		}
		senders[strings.ToLower(a.Address)] = true
	}
	if len(senders) < 2 {
		t.Fatalf("the mix has %d encrypted senders; want several", len(senders))
	}

	c := dialIMAP(t, d, d.User)
	st, err := writeMaildir(d.MaildirPath(d.User), "inbox", n, newMix(benchSeed, ts))
	if err != nil {
		t.Fatalf("seed the mailbox: %v", err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("examine INBOX: %v", err)
	}
	c.Close()

	dir := t.TempDir()
	cfg := writeConfig(t, dir, "file:"+filepath.Join(dir, "state.db"), d, sink.Addr(), []mailboxConfig{{
		name: "support", user: d.User, passwordFile: writeSecret(t, dir, d.Password),
		notify: "    notify:\n      from: support-noreply@helpdesk.test\n",
	}})
	runMailtriage(t, bin, "run", "--once", "--config", cfg)

	var notified []string
	forwards := 0
	for _, msg := range sink.Messages() {
		if msg.From != "" {
			forwards++
			continue
		}
		if len(msg.To) != 1 {
			t.Errorf("a notice to %v; want one recipient", msg.To)
			continue
		}
		notified = append(notified, msg.To[0])
	}
	slices.Sort(notified)
	want := slices.Sorted(maps.Keys(senders))
	if !slices.Equal(notified, want) {
		t.Errorf("notices went to %v; want one to each of %v", notified, want)
	}
	if forwards != st.forward {
		t.Errorf("%d forwards; want %d, as without notify", forwards, st.forward)
	}
	t.Logf("%d messages, %d flagged, %d forwarded, %d notices", st.messages, st.flag, forwards, len(notified))
}
