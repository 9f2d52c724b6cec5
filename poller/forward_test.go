package poller

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/spool"
)

// reversedForwarder takes every job before it answers any, then answers
// them last first, each as outcome says from the Message-ID: a Deliver
// with everything in flight at once, finishing in its own order.
type reversedForwarder struct {
	outcome func(messageID string) error

	mu        sync.Mutex
	delivered []string // Message-IDs, in the order the jobs came
	bodies    map[string]string
}

func (f *reversedForwarder) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	var held []forwarder.Job
	for j := range jobs {
		body, err := io.ReadAll(j.Body.Reader())
		if err != nil || int64(len(body)) != j.Body.Size() {
			panic("a job's body does not read back whole")
		}
		f.mu.Lock()
		f.delivered = append(f.delivered, j.Verdict.MessageID)
		f.bodies[j.Verdict.MessageID] = string(body)
		f.mu.Unlock()
		held = append(held, j)
	}
	for _, j := range slices.Backward(held) {
		results <- forwarder.Result{Key: j.Key, Err: f.outcome(j.Verdict.MessageID)}
	}
}

func (f *reversedForwarder) Close() error { return nil }

// permErr is a refusal for good: it has no Temporary method.
type permErr struct{}

func (permErr) Error() string { return "550 no such user" }

// Results out of order and of every kind: each message ends as its own
// result says (sent and marked, deferred and untouched, refused and
// flagged), a second copy of a message sent is done and one of a message
// deferred waits, and every message has exactly one line in the report.
func TestDeliverOutOfOrderMixedOutcomes(t *testing.T) {
	e := newEnv(t, envOptions{})
	ids := []string{"sent-1", "temp-1", "perm-1", "sent-2", "sent-1", "temp-1", "sent-3", "perm-2"}
	raws := make(map[string]string)
	for _, id := range ids {
		raws[id+"@example.com"] = cleanMessage(id)
		e.appendMsg("INBOX", cleanMessage(id))
	}
	e.appendMsg("INBOX", encryptedMessage("secret-9")) // uid 9: flagged, never sent
	fw := &reversedForwarder{bodies: make(map[string]string), outcome: func(id string) error {
		switch {
		case strings.HasPrefix(id, "temp-"):
			return tempErr{}
		case strings.HasPrefix(id, "perm-"):
			return permErr{}
		}
		return nil
	}}
	p := e.poller(fw, func(mb *Mailbox) { mb.BatchSize = 20 })
	rep := e.cycle(p)

	// The copies were not handed to Deliver; the bodies went whole.
	want := []string{"sent-1@example.com", "temp-1@example.com", "perm-1@example.com", "sent-2@example.com", "sent-3@example.com", "perm-2@example.com"}
	if !slices.Equal(fw.delivered, want) {
		t.Errorf("delivered %v, want %v", fw.delivered, want)
	}
	for id, body := range fw.bodies {
		if body != raws[id] {
			t.Errorf("body of %s changed on the way: %q", id, body)
		}
	}

	// One line per message, each with the action its result says.
	wantAction := map[uint32]analyzer.Action{
		1: EntryForwarded, 2: EntryDeferred, 3: EntryForwardFailed, 4: EntryForwarded,
		5: EntryDone, 6: EntryDeferred, 7: EntryForwarded, 8: EntryForwardFailed, 9: EntryFlagged,
	}
	got := make(map[uint32]analyzer.Action)
	for _, en := range rep.Entries {
		if _, twice := got[en.UID]; twice {
			t.Errorf("uid %d has two lines in the report", en.UID)
		}
		got[en.UID] = en.Action
		switch {
		case en.UID == 2 && !temporary(en.Err):
			t.Errorf("the deferral of uid 2 carries %v, want the SMTP server's temporary error", en.Err)
		case en.UID == 6 && en.Err != nil:
			t.Errorf("the copy of a deferred message carries %v, want no error (it waits with the first)", en.Err)
		}
	}
	for uid, action := range wantAction {
		if got[uid] != action {
			t.Errorf("uid %d: %q, want %q", uid, got[uid], action)
		}
	}
	if c := rep.Counts; c.Seen != 9 || c.Forwarded != 3 || c.Flagged != 3 || c.Skipped != 3 || c.Failed != 3 {
		t.Errorf("counts %+v, want 9 seen, 3 forwarded, 3 flagged, 3 skipped, 3 failed", c)
	}

	// The marks on the server.
	for _, m := range e.folder("INBOX") {
		sent := m.UID == 1 || m.UID == 4 || m.UID == 5 || m.UID == 7
		if sent != (m.has(KeywordForwarded) && m.has(imap.FlagSeen)) || !sent && len(m.Flags) != 0 {
			t.Errorf("uid %d (%s) in INBOX has %v", m.UID, m.MessageID, m.Flags)
		}
	}
	review := e.folder("Triage/Review")
	for _, id := range []string{"perm-1@example.com", "perm-2@example.com"} {
		if m, ok := find(review, id); !ok || !m.has(KeywordForwardFailed) || !m.has(imap.FlagFlagged) {
			t.Errorf("refused %s: in review %v with %v, want $ForwardFailed and \\Flagged", id, ok, m.Flags)
		}
	}
	if len(review) != 3 {
		t.Errorf("review holds %d messages, want the 2 refused and the encrypted one", len(review))
	}
	if st, err := e.st.MailboxState(t.Context(), "support"); err != nil || st.HighWater != 1 {
		t.Errorf("high-water %+v, %v; want 1 (uid 2 waits)", st, err)
	}
	if ok, _ := p.forwardingAllowed(time.Now()); ok || p.backoff.delay != minBackoff {
		t.Errorf("backoff %+v after one temporary failure, want one step", p.backoff)
	}
	if e.metrics.failed["temporary"] != 1 || e.metrics.failed["permanent"] != 2 {
		t.Errorf("forward failures counted %v, want 1 temporary, 2 permanent", e.metrics.failed)
	}

	// Nothing was lost: after the backoff the deferred message goes, once,
	// and its copy is done with it.
	p.mu.Lock()
	p.backoff.until = time.Now()
	p.mu.Unlock()
	p.fw = e.fw
	rep = e.cycle(p)
	if e.sink.Count() != 1 || rep.Counts.Forwarded != 1 {
		t.Fatalf("second cycle sent %d (counts %+v), want temp-1 once", e.sink.Count(), rep.Counts)
	}
	for _, m := range e.folder("INBOX") {
		if !m.has(KeywordForwarded) {
			t.Errorf("uid %d (%s) still unmarked after the second cycle", m.UID, m.MessageID)
		}
	}
}

// A body that cannot be read from IMAP or spooled is the source's trouble,
// its own kind: never a temporary SMTP failure (no backoff, no forward
// failure counted); a multipart cut short becomes unparseable; with the
// session dead, the cycle ends.
func TestSourceFailureIsItsOwnKind(t *testing.T) {
	errCut := errors.New("literal cut off")
	raw := cleanMessage("src")
	multipart := &imap.BodyStructureMultiPart{Subtype: "mixed", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b1"}}}
	for _, tc := range []struct {
		name      string
		body      io.Reader
		bs        imap.BodyStructure
		spoolDir  string // "" = the default
		broken    bool   // the IMAP session is dead
		want      resultKind
		goesOn    bool // the feeder takes the next message
		wantFatal bool
	}{
		{name: "read error mid-stream", body: io.MultiReader(strings.NewReader(raw[:40]), iotest.ErrReader(errCut)), want: resultUnread},
		{name: "spool file cannot be made", body: strings.NewReader(raw), spoolDir: "missing", want: resultUnread},
		{name: "multipart cut short", body: strings.NewReader("--b1\r\n\r\nno close\r\n"), bs: multipart, want: resultCutShort, goesOn: true},
		{name: "read error, session dead", body: iotest.ErrReader(errCut), broken: true, wantFatal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := e.poller(nil, nil)
			if tc.spoolDir != "" {
				p.spool = spool.New(0, filepath.Join(t.TempDir(), tc.spoolDir))
			}
			c, err := p.dial(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.logout(t.Context())
			cy := &cycle{p: p, c: c, stop: t.Context(), ctx: t.Context(), rep: &Report{}, marks: newMarks(), folder: "INBOX", forwarding: true}
			rec := cy.startRecorder()
			defer rec.stop()
			m := &message{Facts: Facts{UID: 7, BodyStructure: tc.bs}, v: analyzer.Verdict{MessageID: "src@example.com", Fingerprint: "fp-src"}}
			fl := &flight{msgs: []*message{m}, index: map[imap.UID]int{7: 0}, bodies: make([]*spool.Buffer, 1), checkClose: tc.bs != nil,
				rec: rec, results: make(chan forwarder.Result, 1), delivered: make(chan struct{})}
			f := &feeder{cy: cy, fl: fl, ctx: t.Context(), stop: t.Context(), jobs: make(chan forwarder.Job, 1),
				sent: make(map[string]imap.UID), seen: make(map[imap.UID]bool)}
			if tc.broken {
				c.c.Close()
				<-c.c.Closed()
			}

			if more := f.send(7, tc.body); more != tc.goesOn {
				t.Errorf("feeder goes on = %v, want %v", more, tc.goesOn)
			}
			if len(f.jobs) != 0 {
				t.Fatal("a body not read whole was handed to Deliver")
			}
			res := <-fl.results
			var source *sourceError
			if !errors.As(res.Err, &source) || temporary(res.Err) {
				t.Fatalf("result %v: want a source error, not a temporary one", res.Err)
			}
			o, err := cy.settle(m, res.Err, false, rec)
			if tc.wantFatal {
				if err == nil || !errors.Is(err, errCut) {
					t.Fatalf("settle = %v, want the cycle's end with the read error", err)
				}
				return
			}
			if err != nil || o.kind != tc.want {
				t.Fatalf("settle = kind %d, %v; want kind %d", o.kind, err, tc.want)
			}
			cy.apply(o, false)
			if len(e.metrics.failed) != 0 || p.forwardingPaused() {
				t.Errorf("a source failure counted as a forward failure: %v, paused %v", e.metrics.failed, p.forwardingPaused())
			}
			switch tc.want {
			case resultUnread:
				if len(cy.rep.Entries) != 1 || cy.rep.Entries[0].Action != EntryDeferred || cy.rep.Entries[0].Err == nil {
					t.Errorf("entries %+v, want uid 7 deferred with its error", cy.rep.Entries)
				}
			case resultCutShort:
				if m.v.Encryption != analyzer.EncryptionUnparseable || len(cy.marks.flagged) != 1 {
					t.Errorf("cut short: verdict %s, %d to flag; want unparseable, flagged", m.v.Encryption, len(cy.marks.flagged))
				}
			}
		})
	}
}

// A Deliver that panics does not crash the worker: the panic reaches the
// cycle's goroutine, where the scheduler recovers it, and the feeder ends.
func TestDeliverPanicReachesCycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("boom"))
	p := e.poller(funcForwarder(func(context.Context, analyzer.Verdict, io.Reader) error { panic("forwarder exploded") }), nil)
	defer func() {
		if v := recover(); v == nil || !strings.Contains(v.(string), "forwarder exploded") {
			t.Errorf("recovered %v, want the forwarder's panic", v)
		}
	}()
	p.Cycle(t.Context())
	t.Fatal("the cycle returned after a panic in Deliver")
}
