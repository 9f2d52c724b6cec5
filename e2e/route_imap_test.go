package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// The helpdesk's account of the imap route, in the harness' Dovecot.
const (
	helpdeskAccount  = "intake@example.test"
	helpdeskPassword = "intake-pass-never-logged-Qw7"
)

// useIMAPRoute points the harness' config at route imap into the
// helpdesk's INBOX instead of the SMTP sink.
func (h *harness) useIMAPRoute() {
	h.t.Helper()
	h.dc.AddUser(helpdeskAccount, helpdeskPassword)
	pwFile := filepath.Join(h.dir, "helpdesk-password")
	if err := os.WriteFile(pwFile, []byte(helpdeskPassword+"\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	conf, err := os.ReadFile(h.config)
	if err != nil {
		h.t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(conf), "    forward:\n")
	if !ok {
		h.t.Fatal("the harness config has no forward section")
	}
	route := fmt.Sprintf(`    forward:
      route: imap
      imap:
        address: %q
        ca_file: %q
        username: %q
        password_file: %q
`, h.dc.Addr, h.dc.CAFile, helpdeskAccount, pwFile)
	if err := os.WriteFile(h.config, []byte(head+route), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// helpdeskCopies reads the helpdesk's INBOX.
func (h *harness) helpdeskCopies() []stored {
	h.t.Helper()
	c := h.dc.Dial(h.t, helpdeskAccount, helpdeskPassword)
	defer c.Logout()
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		h.t.Fatalf("EXAMINE the helpdesk's INBOX: %v", err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	body := &imap.FetchItemBodySection{Peek: true}
	bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{body},
	}).Collect()
	if err != nil {
		h.t.Fatalf("FETCH the helpdesk's INBOX: %v", err)
	}
	out := make([]stored, len(bufs))
	for i, b := range bufs {
		var flags []string
		for _, f := range b.Flags {
			if f != `\Recent` {
				flags = append(flags, string(f))
			}
		}
		sort.Strings(flags)
		out[i] = stored{Folder: "helpdesk", UID: b.UID, Flags: flags, Raw: b.FindBodySection(body)}
	}
	return out
}

// TestRunOnceCorpusIMAPRoute: the corpus through `run --once` on route
// imap: each clean message lands once in the helpdesk's INBOX, unseen, the
// original byte for byte below the annotation and the fingerprint field (no
// Resent-*); the originals are marked, flagged mail is in review, nothing
// goes to the SMTP sink; a second run changes nothing; `check` opens the
// route's folder.
func TestRunOnceCorpusIMAPRoute(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, setup{state: "file", imapTLS: "implicit", afterForward: "seen"})
	h.useIMAPRoute()
	h.seed(raws(corpus))
	h.runOnce("first")

	originals := map[string]int{}
	wantCopies := 0
	for i, m := range corpus {
		if m.Action == "forward" {
			originals[string(served(m.Raw))] = i
			wantCopies++
		}
	}
	copies := h.helpdeskCopies()
	got := make([]int, len(corpus))
	for _, c := range copies {
		added, i := forwardedBody(c.Raw, originals)
		if i < 0 {
			t.Errorf("the helpdesk got a message that is not a clean corpus message below added fields:\n%.400s", c.Raw)
			continue
		}
		got[i]++
		if c.has(imap.FlagSeen) {
			t.Errorf("%s: the helpdesk's copy is \\Seen", corpus[i].File)
		}
		names := map[string]bool{}
		for _, line := range added {
			if name, _, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, " ") {
				names[strings.ToLower(name)] = true
			}
		}
		for _, want := range []string{"x-mailtriage-encryption", "x-mailtriage-transport-tls", "x-mailtriage-relay", "x-mailtriage-fingerprint"} {
			if !names[want] {
				t.Errorf("%s: the copy lacks %s above the original (added: %q)", corpus[i].File, want, added)
			}
		}
		if names["resent-from"] || names["resent-message-id"] {
			t.Errorf("%s: the copy has a Resent-* block on route imap (added: %q)", corpus[i].File, added)
		}
	}
	for i, m := range corpus {
		want := 0
		if m.Action == "forward" {
			want = 1
		}
		if got[i] != want {
			t.Errorf("%s (%s): %d copies at the helpdesk, want %d", m.File, m.Action, got[i], want)
		}
	}
	if len(copies) != wantCopies {
		t.Errorf("the helpdesk's INBOX holds %d messages, want the %d clean ones", len(copies), wantCopies)
	}
	msgs, _ := h.mailbox()
	byKey := map[[32]byte]int{}
	for i, m := range corpus {
		byKey[key(m.Raw)] = i
	}
	for _, s := range msgs {
		i, ok := byKey[key(s.Raw)]
		if !ok {
			t.Errorf("%s uid %d is no corpus message", s.Folder, s.UID)
			continue
		}
		switch m := corpus[i]; {
		case m.Action == "forward" && (s.Folder != "INBOX" || !s.has(imap.FlagForwarded) || !s.has(imap.FlagSeen)):
			t.Errorf("%s: in %s with %v; want INBOX with $Forwarded and \\Seen", m.File, s.Folder, s.Flags)
		case m.Action == "flag" && (s.Folder != reviewFolder || !s.has(imap.FlagFlagged) || !s.has(m.keyword())):
			t.Errorf("%s: in %s with %v; want %s with \\Flagged and %s", m.File, s.Folder, s.Flags, reviewFolder, m.keyword())
		}
	}
	if len(msgs) != len(corpus) {
		t.Errorf("the watched mailbox holds %d messages, want %d", len(msgs), len(corpus))
	}
	if n := h.sink.Count(); n != 0 {
		t.Errorf("the SMTP sink got %d messages on route imap", n)
	}

	snapshot := func() []string {
		out := h.snapshot(true)
		for _, c := range h.helpdeskCopies() {
			k := key(c.Raw)
			out = append(out, fmt.Sprintf("helpdesk %x %s uid=%d", k[:8], strings.Join(c.Flags, ","), c.UID))
		}
		return out
	}
	before := snapshot()
	h.runOnce("second")
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Errorf("a second run --once changed a mailbox:\nbefore %q\nafter  %q", before, after)
	}

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "check", "--config", h.config).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("imap route "+h.dc.Addr)) {
		t.Errorf("mailtriage check: %v\n%s", err, out)
	}
	for name, text := range map[string][]byte{"check output": out, "first.log": readFile(t, filepath.Join(h.dir, "first.log"))} {
		if bytes.Contains(text, []byte(helpdeskPassword)) {
			t.Errorf("%s shows the helpdesk's password", name)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
