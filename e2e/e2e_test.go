package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// corpusMessage is one file of testdata/corpus with its label.
type corpusMessage struct {
	File       string
	Raw        []byte
	Encryption string // labels.tsv: none, smime-encrypted, ..., unparseable
	Action     string // labels.tsv: forward | flag (default policy)
}

// keyword is the review keyword a flagged corpus message must carry.
func (m corpusMessage) keyword() imap.Flag {
	if m.Encryption == "unparseable" {
		return "$Unparseable"
	}
	return "$Encrypted"
}

// loadCorpus reads testdata/corpus/labels.tsv and the files it names.
func loadCorpus(t *testing.T) []corpusMessage {
	t.Helper()
	dir := filepath.Join("..", "testdata", "corpus")
	f, err := os.Open(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatalf("open corpus labels: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var cols map[string]int
	var out []corpusMessage
	seen := map[[32]byte]string{}
	for sc.Scan() {
		fields := strings.Split(sc.Text(), "\t")
		if cols == nil {
			cols = map[string]int{}
			for i, name := range fields {
				cols[name] = i
			}
			for _, need := range []string{"file", "encryption", "action"} {
				if _, ok := cols[need]; !ok {
					t.Fatalf("labels.tsv has no %s column", need)
				}
			}
			continue
		}
		m := corpusMessage{File: fields[cols["file"]], Encryption: fields[cols["encryption"]], Action: fields[cols["action"]]}
		if m.Raw, err = os.ReadFile(filepath.Join(dir, m.File)); err != nil {
			t.Fatalf("read corpus message: %v", err)
		}
		if other, dup := seen[key(m.Raw)]; dup {
			t.Fatalf("corpus files %s and %s are the same message", other, m.File)
		}
		seen[key(m.Raw)] = m.File
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read corpus labels: %v", err)
	}
	if len(out) < 20 {
		t.Fatalf("corpus has %d labelled messages; want the whole corpus", len(out))
	}
	return out
}

func raws(corpus []corpusMessage) [][]byte {
	out := make([][]byte, len(corpus))
	for i, m := range corpus {
		out[i] = m.Raw
	}
	return out
}

// checkCorpusHandled asserts the state after the corpus went through
// mailtriage: flagged mail in the review folder with its keyword and
// \Flagged, clean mail in INBOX with $Forwarded and \Seen and at the sink
// exactly once with its body intact below the added headers, nothing lost.
func checkCorpusHandled(t *testing.T, h *harness, corpus []corpusMessage) {
	t.Helper()
	msgs, _ := h.mailbox()
	byKey := map[[32]byte]int{}
	for i, m := range corpus {
		byKey[key(m.Raw)] = i
	}
	found := make([][]stored, len(corpus))
	for _, s := range msgs {
		i, ok := byKey[key(s.Raw)]
		if !ok {
			t.Errorf("%s uid %d is no corpus message", s.Folder, s.UID)
			continue
		}
		found[i] = append(found[i], s)
	}
	if len(msgs) != len(corpus) {
		t.Errorf("INBOX + %s hold %d messages, want the corpus' %d", reviewFolder, len(msgs), len(corpus))
	}
	originals := map[string]int{} // exact bytes as Dovecot serves them -> corpus index
	wantSent := 0
	for i, m := range corpus {
		if len(found[i]) != 1 {
			t.Errorf("%s: %d copies in the mailbox, want 1", m.File, len(found[i]))
			continue
		}
		s := found[i][0]
		switch m.Action {
		case "flag":
			if s.Folder != reviewFolder || !s.has(imap.FlagFlagged) || !s.has(m.keyword()) {
				t.Errorf("%s (%s): in %s with %v; want %s with \\Flagged and %s", m.File, m.Encryption, s.Folder, s.Flags, reviewFolder, m.keyword())
			}
		default:
			wantSent++
			originals[string(s.Raw)] = i
			if s.Folder != "INBOX" || !s.has(imap.FlagForwarded) || !s.has(imap.FlagSeen) || s.has(imap.FlagFlagged) {
				t.Errorf("%s: in %s with %v; want INBOX with $Forwarded and \\Seen", m.File, s.Folder, s.Flags)
			}
		}
	}
	sent := make([]int, len(corpus))
	for _, sm := range h.sink.Messages() {
		added, i := forwardedBody(sm.Data, originals)
		if i < 0 {
			t.Errorf("the sink got a message that is not a clean corpus message below added headers:\n%.400s", sm.Data)
			continue
		}
		sent[i]++
		if sm.From != triageFrom || !reflect.DeepEqual(sm.To, []string{helpdesk}) {
			t.Errorf("%s: envelope %s -> %v, want %s -> %s", corpus[i].File, sm.From, sm.To, triageFrom, helpdesk)
		}
		checkAddedHeaders(t, corpus[i].File, added)
	}
	for i, m := range corpus {
		if m.Action == "forward" && sent[i] != 1 {
			t.Errorf("%s reached the sink %d times, want once", m.File, sent[i])
		}
	}
	if got := h.sink.Count(); got != wantSent {
		t.Errorf("the sink got %d messages, want the %d clean ones", got, wantSent)
	}
}

// checkAddedHeaders: what mailtriage puts above the original is header
// fields only, with the annotations and the Resent-* block of redirect mode.
func checkAddedHeaders(t *testing.T, file string, added []string) {
	t.Helper()
	names := map[string]bool{}
	for _, line := range added {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue // folded continuation
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			t.Errorf("%s: added line %q is not a header field", file, line)
			continue
		}
		names[strings.ToLower(name)] = true
	}
	for _, want := range []string{"x-mailtriage-encryption", "x-mailtriage-transport-tls", "x-mailtriage-relay",
		"resent-from", "resent-to", "resent-date", "resent-message-id"} {
		if !names[want] {
			t.Errorf("%s: the forwarded copy lacks %s above the original (added: %q)", file, want, added)
		}
	}
}

// TestRunOnceCorpus: the corpus through `run --once`, then a second run that
// must change nothing, then a UIDVALIDITY reset of both folders that must
// re-flag and re-send nothing; with each state engine.
func TestRunOnceCorpus(t *testing.T) {
	corpus := loadCorpus(t)
	for _, state := range []string{"redis", "file"} {
		t.Run(state, func(t *testing.T) {
			h := newHarness(t, state)
			h.seed(raws(corpus))
			h.runOnce("first")
			checkCorpusHandled(t, h, corpus)

			before := h.snapshot(true)
			h.runOnce("second")
			if after := h.snapshot(true); !reflect.DeepEqual(before, after) {
				t.Errorf("a second run --once changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, after)
			}

			_, oldValidity := h.mailbox()
			before = h.snapshot(false)
			h.dc.ResetUIDValidity(h.dc.User, "INBOX")
			h.dc.ResetUIDValidity(h.dc.User, reviewFolder)
			h.runOnce("after-uidvalidity-reset")
			_, newValidity := h.mailbox()
			for folder, v := range oldValidity {
				if newValidity[folder] == v {
					t.Fatalf("UIDVALIDITY of %s stayed %d: the reset did not happen", folder, v)
				}
			}
			if after := h.snapshot(false); !reflect.DeepEqual(before, after) {
				t.Errorf("after a UIDVALIDITY reset, run --once changed the mailbox or sent mail:\nbefore %q\nafter  %q", before, after)
			}
			checkCorpusHandled(t, h, corpus)
		})
	}
}

// TestTwoProcessesOnce: two `run --once` started together on one mailbox
// and one Redis handle each message once.
func TestTwoProcessesOnce(t *testing.T) {
	corpus := loadCorpus(t)
	h := newHarness(t, "redis")
	h.seed(raws(corpus))
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	logs := make([]string, 2)
	for i := range errs {
		cmd, logPath := h.command(ctx, []string{"one", "two"}[i], "--once")
		logs[i] = logPath
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mailtriage: %v", err)
		}
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v\n%s", i+1, err, tail(logs[i]))
		}
	}
	checkCorpusHandled(t, h, corpus)
}
