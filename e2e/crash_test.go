package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// Crash test parameters. Each worker is killed once the sink has received
// between crashMinSent and crashMinSent+crashSpread more messages (plus up
// to crashJitter), so that the kills land in the middle of the work at
// varied points of a message's handling, or after crashMaxLife when there
// is nothing left to send.
const (
	crashMessages = 500
	crashKills    = 10
	crashMinSent  = 5
	crashSpread   = 40
	crashJitter   = 20 * time.Millisecond
	crashMaxLife  = 3 * time.Second
	// crashSMTPDelay slows every SMTP reply a little so that forwarding the
	// mailbox spans the ten kills.
	crashSMTPDelay = 4 * time.Millisecond
	// crashWindow is the duplicate window README "Guarantees" documents:
	// a crash sends again at most the records not yet written (the
	// poller's recorderWindow, 4), the message whose 250 had just come, and
	// the messages in flight, sent and their 250 not yet read (on each of
	// the default 3 sessions, up to forwarder.PipelineDepth).
	crashWindow = 4 + 1 + forwarder.DefaultConnections*forwarder.PipelineDepth
)

var (
	messageIDField = regexp.MustCompile(`(?mi)^Message-ID:[ \t]*<[^>\r\n]*>`)
	crashIDField   = regexp.MustCompile(`(?mi)^Message-ID:[ \t]*<e2e-crash-(\d+)@mailtriage\.test>`)
)

// withMessageID gives raw the Message-ID <e2e-crash-N@mailtriage.test>,
// replacing its own or adding one on top.
func withMessageID(raw []byte, n int) []byte {
	id := fmt.Sprintf("Message-ID: <e2e-crash-%d@mailtriage.test>", n)
	if loc := messageIDField.FindIndex(raw); loc != nil {
		out := append([]byte(nil), raw[:loc[0]]...)
		out = append(out, id...)
		return append(out, raw[loc[1]:]...)
	}
	eol := "\n"
	if strings.Contains(string(raw[:min(len(raw), 2000)]), "\r\n") {
		eol = "\r\n"
	}
	return append([]byte(id+eol), raw...)
}

// crashID returns N of the message's e2e-crash Message-ID, or -1.
func crashID(raw []byte) int {
	m := crashIDField.FindSubmatch(raw)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		return -1
	}
	return n
}

// TestCrashRestart: a 500-message mailbox, `mailtriage run` killed with
// SIGKILL at random moments ten times and restarted, then `run --once`.
// Every clean message must have reached the sink at least once, every
// encrypted one must be in the review folder, none may be missing from
// both places, and duplicates may come only from the window between the
// SMTP 250 and the outcome record: at most crashWindow per kill.
func TestCrashRestart(t *testing.T) {
	h := newHarness(t, setup{state: "redis", imapTLS: "implicit", afterForward: "seen"})
	base := seedNumbered(t, h, crashMessages)
	h.sink.SetFault(smtpsink.Fault{Delay: crashSMTPDelay})

	rdb := redis.NewClient(&redis.Options{Addr: h.redis.Addr})
	defer rdb.Close()
	// A killed worker's lease blocks the mailbox until it expires; the test
	// expires it at once (store key layout P:{M}:lease).
	leaseKey := "mailtriage:{" + mailboxName + "}:lease"

	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("crash schedule seed %d", seed)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	midWork := 0
	lives := make([]int, crashKills) // the sink's connections when each worker was killed: a worker's own are numbered up to it
	for kill := range crashKills {
		cmd, logPath := h.command(ctx, fmt.Sprintf("crash-%d", kill))
		start, sentBefore := time.Now(), h.sink.Count()
		if err := cmd.Start(); err != nil {
			t.Fatalf("start mailtriage run: %v", err)
		}
		target := sentBefore + crashMinSent + rng.IntN(crashSpread)
		for h.sink.Count() < target && time.Since(start) < crashMaxLife {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(crashJitter))))
		life := time.Since(start)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("SIGKILL mailtriage: %v\n%s", err, tail(logPath))
		}
		if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("mailtriage run ended before the kill (%v):\n%s", err, tail(logPath))
		}
		if err := rdb.Del(ctx, leaseKey).Err(); err != nil {
			t.Fatalf("expire the dead worker's lease: %v", err)
		}
		sent := h.sink.Count()
		lives[kill] = h.sink.Connections()
		if sent > sentBefore {
			midWork++
		}
		t.Logf("kill %d after %v: the sink holds %d messages", kill+1, life.Round(time.Millisecond), sent)
	}
	h.sink.SetFault(smtpsink.Fault{})
	h.runOnce("final")

	tl := tallyCrashIDs(t, h, base, lives)
	t.Logf("crash test: %d kills (%d while forwarding), %d messages (%d clean, %d encrypted), %d forwarded, %d duplicates",
		crashKills, midWork, crashMessages, tl.clean, tl.flagged, tl.forwarded, tl.duplicates)
	fmt.Printf("e2e crash test: %d SIGKILLs (%d while forwarding), %d messages, %d forwarded, %d duplicates\n",
		crashKills, midWork, crashMessages, tl.forwarded, tl.duplicates)
}

// seedNumbered seeds n messages, the corpus over and over, each given
// Message-ID number i by withMessageID; it returns the corpus message
// behind each.
func seedNumbered(t *testing.T, h *harness, n int) []corpusMessage {
	t.Helper()
	corpus := loadCorpus(t)
	msgs := make([][]byte, n)
	base := make([]corpusMessage, n)
	for i := range msgs {
		base[i] = corpus[i%len(corpus)]
		msgs[i] = withMessageID(base[i].Raw, i)
		if crashID(msgs[i]) != i {
			t.Fatalf("%s: could not give it Message-ID number %d", base[i].File, i)
		}
	}
	h.seed(msgs)
	return base
}

// crashTally counts what became of messages numbered by withMessageID.
type crashTally struct {
	clean, flagged, forwarded, duplicates int
}

// tallyCrashIDs reads the mailbox and the sink back after messages base[i]
// were seeded as withMessageID(base[i].Raw, i): every message must be in
// the mailbox exactly once, in its place with its marks, every clean one
// must have reached the sink and no encrypted one. It counts the
// forwarded messages and the duplicates. With lives, the sink's connection
// count when each worker was killed, it also holds each killed worker to
// the documented window (crashWindow).
func tallyCrashIDs(t *testing.T, h *harness, base []corpusMessage, lives []int) crashTally {
	t.Helper()
	// The mailbox: every message exactly once, in its place.
	c := h.imapClient()
	where := make([][]stored, len(base))
	for _, folder := range []string{"INBOX", reviewFolder} {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("EXAMINE %s: %v", folder, err)
		}
		if sel.NumMessages == 0 {
			continue
		}
		hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
		bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{hdr},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH %s: %v", folder, err)
		}
		for _, b := range bufs {
			n := crashID(b.FindBodySection(hdr))
			if n < 0 {
				t.Errorf("%s uid %d has no e2e-crash Message-ID", folder, b.UID)
				continue
			}
			flags := make([]string, len(b.Flags))
			for i, f := range b.Flags {
				flags[i] = string(f)
			}
			where[n] = append(where[n], stored{Folder: folder, UID: b.UID, Flags: flags})
		}
	}
	// The sink: how often each message arrived, and with lives each
	// arrival after the first charged to the worker that had sent it
	// before (it was killed before that send counted). The sender is known
	// by the connection the message came on, not by when it arrived: what
	// a worker had in flight reaches the sink after its death too.
	sent := make([]int, len(base))
	last := make([]int, len(base)) // the connection of the latest arrival
	charged := make([]int, len(lives)+1)
	life := func(conn int) int {
		for l, end := range lives {
			if conn <= end {
				return l
			}
		}
		return len(lives) // the final run
	}
	for _, sm := range h.sink.Messages() {
		n := crashID(sm.Data)
		if n < 0 {
			t.Errorf("the sink got a message without an e2e-crash Message-ID:\n%.300s", sm.Data)
			continue
		}
		if sent[n] > 0 {
			charged[life(last[n])]++
		}
		sent[n]++
		last[n] = sm.Connection
	}
	if len(lives) > 0 {
		t.Logf("duplicates charged to each killed worker: %v (window %d)", charged[:len(lives)], crashWindow)
	}
	for l, n := range charged {
		if l < len(lives) && n > crashWindow {
			t.Errorf("worker %d (killed after sink connection %d) caused %d duplicates; the documented window is %d per crash", l+1, lives[l], n, crashWindow)
		}
	}

	var tl crashTally
	unparseableForwarded := map[string]bool{}
	for i, m := range base {
		if len(where[i]) != 1 {
			t.Errorf("message %d (%s) is in the mailbox %d times (%v), want once", i, m.File, len(where[i]), where[i])
			continue
		}
		s := where[i][0]
		encrypted := m.Action == "flag" && m.Encryption != "unparseable"
		switch {
		case encrypted:
			tl.flagged++
			if s.Folder != reviewFolder || !s.has(imap.FlagFlagged) || !s.has("$Encrypted") {
				t.Errorf("message %d (%s) is in %s with %v; want %s with \\Flagged and $Encrypted", i, m.File, s.Folder, s.Flags, reviewFolder)
			}
			if sent[i] > 0 {
				t.Errorf("encrypted message %d (%s) reached the sink %d times", i, m.File, sent[i])
			}
		case m.Action == "forward":
			tl.clean++
			if sent[i] == 0 {
				t.Errorf("clean message %d (%s) never reached the sink", i, m.File)
			}
			if s.Folder != "INBOX" || !s.has(imap.FlagForwarded) || !s.has(imap.FlagSeen) {
				t.Errorf("clean message %d (%s) is in %s with %v; want INBOX with $Forwarded and \\Seen", i, m.File, s.Folder, s.Flags)
			}
		}
		if sent[i] > 0 && m.Encryption == "unparseable" {
			unparseableForwarded[m.File] = true
		}
		if sent[i] > 0 {
			tl.forwarded++
			tl.duplicates += sent[i] - 1
		}
	}
	if len(unparseableForwarded) > 0 {
		t.Logf("labelled unparseable but forwarded (TestRunOnceCorpus judges these): %v", slices.Sorted(maps.Keys(unparseableForwarded)))
	}
	return tl
}
