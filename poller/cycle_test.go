package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
)

// The basic contract over both TLS modes: clean mail is forwarded and
// marked, encrypted mail goes to review with its keywords, and a second
// cycle does nothing.
func TestCycleForwardsCleanAndFlagsEncrypted(t *testing.T) {
	for _, mode := range []tlsmode.Mode{tlsmode.Implicit, tlsmode.StartTLS} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, envOptions{tls: mode})
			e.appendMsg("INBOX", cleanMessage("clean-1"))
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			e.appendMsg("INBOX", cleanMessage("clean-2"))
			p := e.poller(nil, nil)

			rep := e.cycle(p)
			if rep.Counts.Seen != 3 || rep.Counts.Forwarded != 2 || rep.Counts.Flagged != 1 || rep.Counts.Failed != 0 {
				t.Fatalf("first cycle counts = %+v, want 3 seen, 2 forwarded, 1 flagged", rep.Counts)
			}
			if got := e.received(); !slices.Equal(got, []string{"clean-1@example.com", "clean-2@example.com"}) {
				t.Fatalf("helpdesk received %v", got)
			}
			inbox := e.folder("INBOX")
			if len(inbox) != 2 {
				t.Fatalf("INBOX holds %d messages, want the 2 clean ones: %+v", len(inbox), inbox)
			}
			for _, m := range inbox {
				if !m.has(imap.FlagSeen) || !m.has(KeywordForwarded) || m.has(imap.FlagFlagged) {
					t.Errorf("forwarded %s has flags %v, want $Forwarded and \\Seen", m.MessageID, m.Flags)
				}
			}
			review := e.folder("Triage/Review")
			s, ok := find(review, "secret-1@example.org")
			if !ok || len(review) != 1 {
				t.Fatalf("review folder = %+v, want the encrypted message", review)
			}
			if !s.has(KeywordEncrypted) || !s.has(imap.FlagFlagged) || s.has(imap.FlagSeen) {
				t.Errorf("flagged message has %v, want $Encrypted and \\Flagged, unseen", s.Flags)
			}
			var flagged *Entry
			for i := range rep.Entries {
				if rep.Entries[i].Action == EntryFlagged {
					flagged = &rep.Entries[i]
				}
			}
			if flagged == nil || flagged.MovedTo != "Triage/Review" || flagged.Verdict.Encryption != analyzer.EncryptionPGPEncrypted {
				t.Errorf("report entry of the flagged message = %+v", flagged)
			}

			rep = e.cycle(p)
			if rep.Counts != (Counts{}) {
				t.Errorf("second cycle counts = %+v, want nothing done", rep.Counts)
			}
			if n := e.sink.Count(); n != 2 {
				t.Errorf("after the second cycle the helpdesk has %d messages, want 2", n)
			}
			if e.metrics.messages["clean/forwarded"] != 2 || e.metrics.messages["encrypted/flagged"] != 1 {
				t.Errorf("metrics = %v", e.metrics.messages)
			}
		})
	}
}

// A reset UIDVALIDITY (the folder recreated with the same mail) rereads the
// folder but acts on nothing already recorded.
func TestUIDValidityChangeResendsNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	e.appendMsg("INBOX", encryptedMessage("secret-1"))
	p := e.poller(nil, nil)
	e.cycle(p)
	if n := e.sink.Count(); n != 1 {
		t.Fatalf("first cycle sent %d, want 1", n)
	}

	if err := e.user.Delete("INBOX"); err != nil {
		t.Fatal(err)
	}
	if err := e.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	e.appendMsg("INBOX", encryptedMessage("secret-1")) // a copy a person restored
	e.appendMsg("INBOX", cleanMessage("clean-2"))

	rep := e.cycle(p)
	if got := e.received(); !slices.Equal(got, []string{"clean-1@example.com", "clean-2@example.com"}) {
		t.Fatalf("after the reset the helpdesk received %v, want clean-1 once and the new clean-2", got)
	}
	if rep.Counts.Forwarded != 1 || rep.Counts.Skipped != 2 {
		t.Errorf("counts after reset = %+v, want 1 forwarded and 2 done before", rep.Counts)
	}
	if m, _ := find(e.folder("INBOX"), "clean-1@example.com"); !m.has(KeywordForwarded) {
		t.Errorf("clean-1 after the reset has %v, want its marking restored", m.Flags)
	}
	if _, ok := find(e.folder("Triage/Review"), "secret-1@example.org"); !ok {
		t.Error("restored encrypted copy is not back in review")
	}
	st, err := e.st.MailboxState(t.Context(), "support")
	if err != nil || st.HighWater != 3 {
		t.Errorf("state after reset = %+v, %v; want high-water 3", st, err)
	}
}

// The same message delivered twice into one batch is sent once; both
// copies are marked.
func TestDoubleDeliverySentOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("twice"))
	e.appendMsg("INBOX", cleanMessage("twice"))
	rep := e.cycle(e.poller(nil, nil))
	if e.sink.Count() != 1 || rep.Counts.Forwarded != 1 || rep.Counts.Skipped != 1 {
		t.Fatalf("sent %d, counts %+v; want one send and one copy done", e.sink.Count(), rep.Counts)
	}
	for _, m := range e.folder("INBOX") {
		if !m.has(KeywordForwarded) || !m.has(imap.FlagSeen) {
			t.Errorf("copy uid %d has %v, want it marked", m.UID, m.Flags)
		}
	}
}

// SMTP failures: 4xx leaves mail untouched and backs off, 5xx flags it with
// $ForwardFailed, a dead server never stops flagging.
func TestForwardFailures(t *testing.T) {
	for _, tc := range []struct {
		name        string
		fault       smtpsink.Fault
		down        bool // the SMTP server is not there at all
		wantFlagged int  // review folder size
		wantInbox   int
		wantBackoff bool
		wantKind    string
	}{
		{name: "452 temporary", fault: smtpsink.Fault{Reject: smtpsink.StageMail, Code: 452}, wantFlagged: 1, wantInbox: 2, wantBackoff: true, wantKind: "session"},
		{name: "421 temporary at DATA", fault: smtpsink.Fault{Reject: smtpsink.StageData, Code: 421}, wantFlagged: 1, wantInbox: 2, wantBackoff: true, wantKind: "session"},
		{name: "550 permanent", fault: smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550}, wantFlagged: 3, wantInbox: 0, wantKind: "rejected"},
		{name: "server down", down: true, wantFlagged: 1, wantInbox: 2, wantBackoff: true, wantKind: "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", cleanMessage("clean-1"))
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			e.appendMsg("INBOX", cleanMessage("clean-2"))
			fw := Forwarder(e.fw)
			if tc.down {
				fw = e.forwarder(closedPort(t))
			} else {
				e.sink.SetFault(tc.fault)
			}
			p := e.poller(fw, nil)
			e.cycle(p)

			review, inbox := e.folder("Triage/Review"), e.folder("INBOX")
			if len(review) != tc.wantFlagged || len(inbox) != tc.wantInbox {
				t.Fatalf("review %d, inbox %d; want %d, %d", len(review), len(inbox), tc.wantFlagged, tc.wantInbox)
			}
			if s, ok := find(review, "secret-1@example.org"); !ok || !s.has(KeywordEncrypted) {
				t.Errorf("encrypted mail not flagged: %+v", review)
			}
			for _, m := range inbox {
				if len(m.Flags) != 0 {
					t.Errorf("deferred %s was touched: %v", m.MessageID, m.Flags)
				}
			}
			for _, m := range review {
				if strings.HasPrefix(m.MessageID, "clean") && (!m.has(KeywordForwardFailed) || !m.has(imap.FlagFlagged)) {
					t.Errorf("refused %s has %v, want $ForwardFailed and \\Flagged", m.MessageID, m.Flags)
				}
			}
			if e.metrics.failed[tc.wantKind] == 0 {
				t.Errorf("forward failures counted %v, want a %s one", e.metrics.failed, tc.wantKind)
			}
			ok, _ := p.forwardingAllowed(time.Now())
			if ok == tc.wantBackoff {
				t.Fatalf("forwarding allowed = %v after the failure", ok)
			}
			if !tc.wantBackoff {
				return
			}
			// During the backoff nothing is tried; after it the mail goes.
			attempts := e.metrics.failed[tc.wantKind]
			rep := e.cycle(p)
			if e.metrics.failed[tc.wantKind] != attempts || rep.Counts.Forwarded != 0 {
				t.Errorf("a cycle in backoff tried to forward: %+v", rep.Counts)
			}
			if tc.down {
				return
			}
			e.sink.SetFault(smtpsink.Fault{})
			p.mu.Lock()
			p.backoff.until = time.Now()
			p.mu.Unlock()
			rep = e.cycle(p)
			if rep.Counts.Forwarded != 2 || e.sink.Count() != 2 {
				t.Errorf("after the backoff: %+v, helpdesk has %d", rep.Counts, e.sink.Count())
			}
			if ok, _ := p.forwardingAllowed(time.Now()); !ok || p.backoff.delay != 0 {
				t.Errorf("backoff not cleared by a success: %+v", p.backoff)
			}
		})
	}
}

// Another worker's lease makes the cycle skip quietly.
func TestLeaseHeldSkips(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	lease, err := e.st.AcquireLease(t.Context(), "support", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p := e.poller(nil, nil)
	rep := e.cycle(p)
	if !rep.Skipped || rep.Counts.Seen != 0 || e.sink.Count() != 0 {
		t.Fatalf("cycle under another's lease: %+v, sent %d", rep, e.sink.Count())
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if rep := e.cycle(p); rep.Skipped || rep.Counts.Forwarded != 1 {
		t.Fatalf("cycle after release: %+v", rep)
	}
}

// Two workers on one mailbox, started together, send each message once:
// in one process on the bbolt store, and as two replicas with their own
// connections to one Redis.
func TestTwoWorkersSendOnce(t *testing.T) {
	for _, engine := range []string{"bbolt", "redis"} {
		t.Run(engine, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			for _, id := range []string{"a", "b", "c", "d", "e"} {
				e.appendMsg("INBOX", cleanMessage(id))
			}
			p1, p2 := e.poller(nil, nil), e.poller(e.forwarder(e.sink.Addr()), nil)
			if engine == "redis" {
				r := testenv.StartRedis(t)
				for _, p := range []*Poller{p1, p2} {
					st, err := store.Open(t.Context(), r.URL, store.Options{Prefix: "poller-test"})
					if err != nil {
						t.Fatalf("open redis store: %v", err)
					}
					t.Cleanup(func() { st.Close() })
					p.st = st
				}
			}
			var wg sync.WaitGroup
			for _, p := range []*Poller{p1, p2, p1, p2} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := p.Cycle(t.Context()); err != nil {
						t.Errorf("cycle: %v", err)
					}
				}()
			}
			wg.Wait()
			e.cycle(p1)
			got := e.received()
			slices.Sort(got)
			if want := []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com", "e@example.com"}; !slices.Equal(got, want) {
				t.Fatalf("helpdesk received %v, want each once", got)
			}
		})
	}
}

// Replicas sharing a Redis store space their cycles: a mailbox one of them
// has just cycled is skipped by the others, without a login, until the
// spacing has passed; an IDLE wake-up cycles at once; a failed cycle does
// not count.
func TestSpacingSkipsReplicas(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("a"))
	const spacing = 400 * time.Millisecond
	r := testenv.StartRedis(t)
	openStore := func() store.Store {
		st, err := store.Open(t.Context(), r.URL, store.Options{Prefix: "spacing-test"})
		if err != nil {
			t.Fatalf("open redis store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	spaced := func(mb *Mailbox) { mb.Spacing = spacing }
	p1, p2 := e.poller(nil, spaced), e.poller(e.forwarder(e.sink.Addr()), spaced)
	p1.st, p2.st = openStore(), openStore()

	broken := e.poller(nil, func(mb *Mailbox) { spaced(mb); mb.IMAP.Address = closedPort(t) })
	broken.st = p1.st
	if _, err := broken.Cycle(t.Context()); err == nil {
		t.Fatal("a cycle against a closed port succeeded")
	}
	if rep := e.cycle(p2); rep.Skipped || rep.Counts.Forwarded != 1 {
		t.Fatalf("first cycle after a failed one: %+v, want a (not skipped) cycle forwarding 1", rep)
	}
	e.appendMsg("INBOX", cleanMessage("b"))
	if rep := e.cycle(p1); !rep.Skipped || rep.Counts.Seen != 0 {
		t.Fatalf("replica's cycle right after: %+v, want skipped", rep)
	}
	rep, err := p1.CycleNow(t.Context())
	if err != nil || rep.Skipped || rep.Counts.Forwarded != 1 {
		t.Fatalf("IDLE-woken cycle: %+v, %v; want message b forwarded", rep, err)
	}
	time.Sleep(spacing + 100*time.Millisecond)
	e.appendMsg("INBOX", cleanMessage("c"))
	if rep := e.cycle(p2); rep.Skipped || rep.Counts.Forwarded != 1 {
		t.Fatalf("cycle after the spacing: %+v, want message c forwarded", rep)
	}
	if got := e.received(); len(got) != 3 {
		t.Fatalf("helpdesk received %v, want a, b and c once", got)
	}
}

// The release loop: a reviewer moves flagged mail into the release folder;
// it is forwarded once, marked and moved back.
func TestReleaseLoop(t *testing.T) {
	for _, tc := range []struct {
		after     string
		wantIn    string // folder the released message ends in; "" = deleted
		wantFlags []imap.Flag
	}{
		{after: AfterForwardSeen, wantIn: "INBOX", wantFlags: []imap.Flag{KeywordForwarded, imap.FlagSeen}},
		{after: AfterForwardMove, wantIn: "Triage/Forwarded", wantFlags: []imap.Flag{KeywordForwarded, imap.FlagSeen}},
		{after: AfterForwardDelete},
	} {
		t.Run(tc.after, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			p := e.poller(nil, func(mb *Mailbox) { mb.AfterForward = tc.after; mb.ForwardedFolder = "Triage/Forwarded" })
			e.cycle(p)
			if e.sink.Count() != 0 || len(e.folder("Triage/Review")) != 1 {
				t.Fatal("encrypted mail not flagged first")
			}
			// The reviewer's move.
			if err := e.user.Create("Triage/Release", nil); err != nil {
				t.Fatal(err)
			}
			e.appendMsg("Triage/Release", encryptedMessage("secret-1"), KeywordEncrypted, imap.FlagFlagged)

			rep := e.cycle(p)
			if got := e.received(); !slices.Equal(got, []string{"secret-1@example.org"}) {
				t.Fatalf("helpdesk received %v, want the released message", got)
			}
			if !strings.Contains(string(e.sink.Messages()[0].Data), "X-Mailtriage-Released: yes") {
				t.Error("released copy lacks X-Mailtriage-Released: yes")
			}
			if rep.Counts.Forwarded != 1 || !rep.Entries[len(rep.Entries)-1].Released {
				t.Errorf("release cycle report: %+v", rep)
			}
			if n := len(e.folder("Triage/Release")); n != 0 {
				t.Errorf("release folder still holds %d messages", n)
			}
			if tc.wantIn != "" {
				m, ok := find(e.folder(tc.wantIn), "secret-1@example.org")
				for _, f := range tc.wantFlags {
					if !ok || !m.has(f) {
						t.Errorf("released message in %s: %+v (found %v), want %v", tc.wantIn, m, ok, tc.wantFlags)
					}
				}
			}
			// Nothing is sent twice: not the copy moved back, nor a second release.
			e.appendMsg("Triage/Release", encryptedMessage("secret-1"))
			e.cycle(p)
			e.cycle(p)
			if n := e.sink.Count(); n != 1 {
				t.Errorf("helpdesk has %d messages after more cycles, want 1", n)
			}
		})
	}
}

// after_forward move and delete on the watched folder.
// The marks of several batches go in one STORE or MOVE each, until
// MarkEvery messages are read or MarkDelay has passed; nothing is marked
// before it is recorded and the high-water mark covers every batch.
func TestMarksOfBatchesTogether(t *testing.T) {
	cases := []struct {
		name        string
		edit        func(*Mailbox)
		store, move int32
	}{
		// 5 batches of 2; s3 and s8 flagged.
		{"default: one marking", nil, 2, 1},
		{"every batch", func(mb *Mailbox) { mb.MarkEvery = 2 }, 7, 2},
		{"every two batches", func(mb *Mailbox) { mb.MarkEvery = 4 }, 5, 2},
		{"delay passed", func(mb *Mailbox) { mb.MarkDelay = time.Nanosecond }, 7, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			counts := &commandCounts{}
			e := newEnv(t, envOptions{counts: counts})
			for i := 1; i <= 10; i++ {
				id := fmt.Sprintf("m%d", i)
				if i == 3 || i == 8 {
					e.appendMsg("INBOX", encryptedMessage(id))
				} else {
					e.appendMsg("INBOX", cleanMessage(id))
				}
			}
			rep := e.cycle(e.poller(nil, tc.edit))
			if rep.Counts.Forwarded != 8 || rep.Counts.Flagged != 2 {
				t.Fatalf("counts = %+v, want 8 forwarded, 2 flagged", rep.Counts)
			}
			if s, m := counts.store.Load(), counts.move.Load(); s != tc.store || m != tc.move {
				t.Errorf("%d STOREs and %d MOVEs, want %d and %d", s, m, tc.store, tc.move)
			}
			inbox := e.folder("INBOX")
			if len(inbox) != 8 {
				t.Fatalf("INBOX holds %d messages, want the 8 forwarded", len(inbox))
			}
			for _, m := range inbox {
				if !m.has(KeywordForwarded) || !m.has(imap.FlagSeen) {
					t.Errorf("%s not marked forwarded: %v", m.MessageID, m.Flags)
				}
			}
			if n := len(e.folder("Triage/Review")); n != 2 {
				t.Errorf("review folder holds %d messages, want 2", n)
			}
			if st, err := e.st.MailboxState(t.Context(), "support"); err != nil || st.HighWater != 10 {
				t.Errorf("high-water = %+v, %v; want 10", st, err)
			}
		})
	}
}

// A cycle with nothing new asks STATUS and selects nothing: SELECT makes
// a server such as Dovecot resync a big folder.
func TestIdleCycleSelectsNothing(t *testing.T) {
	counts := &commandCounts{}
	e := newEnv(t, envOptions{counts: counts})
	e.appendMsg("INBOX", cleanMessage("a"))
	e.appendMsg("INBOX", cleanMessage("b"))
	p := e.poller(nil, nil)
	if rep := e.cycle(p); rep.Counts.Forwarded != 2 {
		t.Fatalf("first cycle counts = %+v, want 2 forwarded", rep.Counts)
	}
	counts.sel.Store(0)
	if rep := e.cycle(p); rep.Counts != (Counts{}) {
		t.Fatalf("idle cycle counts = %+v, want nothing done", rep.Counts)
	}
	if n := counts.sel.Load(); n != 0 {
		t.Errorf("idle cycle sent %d SELECTs, want none", n)
	}
	e.appendMsg("INBOX", cleanMessage("c"))
	if rep := e.cycle(p); rep.Counts.Forwarded != 1 || rep.Counts.Seen != 1 {
		t.Fatalf("cycle after new mail counts = %+v, want c alone forwarded", rep.Counts)
	}
	if n := counts.sel.Load(); n != 1 {
		t.Errorf("cycle after new mail sent %d SELECTs, want 1", n)
	}
}

func TestAfterForward(t *testing.T) {
	for _, tc := range []struct {
		after         string
		wantInbox     int
		wantForwarded int
	}{
		{after: AfterForwardMove, wantInbox: 0, wantForwarded: 2},
		{after: AfterForwardDelete, wantInbox: 0, wantForwarded: -1},
	} {
		t.Run(tc.after, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", cleanMessage("clean-1"))
			e.appendMsg("INBOX", cleanMessage("clean-2"))
			p := e.poller(nil, func(mb *Mailbox) { mb.AfterForward = tc.after; mb.ForwardedFolder = "Triage/Forwarded" })
			rep := e.cycle(p)
			if rep.Counts.Forwarded != 2 || e.sink.Count() != 2 {
				t.Fatalf("counts %+v, sent %d", rep.Counts, e.sink.Count())
			}
			if n := len(e.folder("INBOX")); n != tc.wantInbox {
				t.Errorf("INBOX holds %d, want %d", n, tc.wantInbox)
			}
			fwd := e.folder("Triage/Forwarded")
			if tc.wantForwarded < 0 {
				if fwd != nil {
					t.Errorf("forwarded folder exists with delete: %+v", fwd)
				}
				return
			}
			if len(fwd) != tc.wantForwarded {
				t.Errorf("forwarded folder holds %d, want %d", len(fwd), tc.wantForwarded)
			}
			for _, m := range fwd {
				if !m.has(KeywordForwarded) || !m.has(imap.FlagSeen) {
					t.Errorf("moved %s has %v", m.MessageID, m.Flags)
				}
			}
		})
	}
}

// Without MOVE the poller copies, marks its own UIDs \Deleted and expunges
// only those (UIDPLUS); without UIDPLUS it expunges nothing. A message a
// person marked \Deleted survives either way.
func TestWithoutMove(t *testing.T) {
	for _, tc := range []struct {
		name       string
		hide       []imap.Cap
		wantInbox  int // messages left in INBOX
		wantOrigDl bool
	}{
		{name: "UIDPLUS", hide: []imap.Cap{imap.CapMove, imap.CapNamespace}, wantInbox: 2},
		{name: "no UIDPLUS", hide: []imap.Cap{imap.CapMove, imap.CapNamespace, imap.CapUIDPlus}, wantInbox: 3, wantOrigDl: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{hide: tc.hide})
			e.appendMsg("INBOX", cleanMessage("someone-deleted"), imap.FlagDeleted)
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			e.appendMsg("INBOX", cleanMessage("clean-1"))
			p := e.poller(nil, nil)
			e.cycle(p)

			inbox := e.folder("INBOX")
			if len(inbox) != tc.wantInbox {
				t.Fatalf("INBOX holds %+v, want %d messages", inbox, tc.wantInbox)
			}
			if m, ok := find(inbox, "someone-deleted@example.com"); !ok || !m.has(imap.FlagDeleted) {
				t.Errorf("the message a person marked deleted did not survive: %+v", inbox)
			}
			orig, ok := find(inbox, "secret-1@example.org")
			if ok != tc.wantOrigDl || (ok && !orig.has(imap.FlagDeleted)) {
				t.Errorf("original of the flagged message: %+v (present %v)", orig, ok)
			}
			if s, ok := find(e.folder("Triage/Review"), "secret-1@example.org"); !ok || !s.has(KeywordEncrypted) {
				t.Errorf("no flagged copy in review")
			}
			e.cycle(p)
			// A UIDVALIDITY reset rereads our \Deleted originals: no second copy.
			if err := e.st.SetMailboxState(t.Context(), "support", store.MailboxState{UIDValidity: 999}); err != nil {
				t.Fatal(err)
			}
			e.cycle(p)
			if n := len(e.folder("Triage/Review")); n != 1 {
				t.Errorf("review holds %d copies after more cycles, want 1", n)
			}
			if n := e.sink.Count(); n != 2 {
				t.Errorf("helpdesk has %d messages, want 2", n)
			}
		})
	}
}

// Keywords only where PERMANENTFLAGS allow: a folder without \* gets only
// the listed flags and the folders carry the state.
func TestAllowedFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		perm []imap.Flag
		in   []imap.Flag
		want []imap.Flag
	}{
		{"not sent: all", nil, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}},
		{"wildcard: all", []imap.Flag{imap.FlagSeen, imap.FlagWildcard}, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}},
		{"listed only", []imap.Flag{imap.FlagSeen, imap.FlagFlagged}, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}, []imap.Flag{imap.FlagFlagged}},
		{"listed keyword", []imap.Flag{KeywordForwarded, imap.FlagSeen}, []imap.Flag{KeywordForwarded, imap.FlagSeen}, []imap.Flag{KeywordForwarded, imap.FlagSeen}},
		{"empty list: none", []imap.Flag{}, []imap.Flag{KeywordEncrypted, imap.FlagFlagged}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cy := &cycle{p: New(Mailbox{}, nil, nil, nil, nil, nil), sel: &imap.SelectData{PermanentFlags: tc.perm}, folder: "INBOX"}
			if got := cy.allowed(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("allowed(%v) under %v = %v, want %v", tc.in, tc.perm, got, tc.want)
			}
		})
	}
}

// A server that takes no keywords: \Flagged and \Seen only, the folders
// carry the state, and the mail still goes where it should.
func TestServerWithoutKeywords(t *testing.T) {
	e := newEnv(t, envOptions{noKeywords: true})
	e.appendMsg("INBOX", cleanMessage("clean-1"))
	e.appendMsg("INBOX", encryptedMessage("secret-1"))
	e.cycle(e.poller(nil, nil))
	inbox, review := e.folder("INBOX"), e.folder("Triage/Review")
	if len(inbox) != 1 || len(review) != 1 || e.sink.Count() != 1 {
		t.Fatalf("inbox %+v, review %+v, sent %d", inbox, review, e.sink.Count())
	}
	if m := inbox[0]; !m.has(imap.FlagSeen) || m.has(KeywordForwarded) {
		t.Errorf("forwarded message has %v, want \\Seen without keywords", m.Flags)
	}
	if m := review[0]; !m.has(imap.FlagFlagged) || m.has(KeywordEncrypted) {
		t.Errorf("flagged message has %v, want \\Flagged without keywords", m.Flags)
	}
}

// The high-water mark stops at the first message not done.
func TestHighWaterStopsAtDeferred(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("c1"))
	e.appendMsg("INBOX", cleanMessage("c2"))
	e.appendMsg("INBOX", encryptedMessage("s3"))
	e.appendMsg("INBOX", cleanMessage("c4"))
	var calls atomic.Int32
	fw := funcForwarder(func(_ context.Context, v analyzer.Verdict, body io.Reader) error {
		if err := drain(body); err != nil {
			return err
		}
		if calls.Add(1) == 2 {
			return tempErr{}
		}
		return nil
	})
	p := e.poller(fw, nil)
	rep := e.cycle(p)
	if rep.Counts.Forwarded != 1 || rep.Counts.Flagged != 1 || rep.Counts.Skipped != 2 {
		t.Fatalf("counts = %+v, want c1 forwarded, s3 flagged, c2 and c4 deferred", rep.Counts)
	}
	st, err := e.st.MailboxState(t.Context(), "support")
	if err != nil || st.HighWater != 1 {
		t.Fatalf("high-water = %+v, %v; want 1 (c2 is not done)", st, err)
	}
	p.mu.Lock()
	p.backoff.until = time.Now()
	p.mu.Unlock()
	rep = e.cycle(p)
	if rep.Counts.Forwarded != 2 {
		t.Fatalf("second cycle counts = %+v, want c2 and c4 forwarded", rep.Counts)
	}
	if st, _ := e.st.MailboxState(t.Context(), "support"); st.HighWater != 4 {
		t.Errorf("high-water after the retry = %d, want 4", st.HighWater)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("forward calls = %d, want 4 (c1, c2 failed, c2, c4)", n)
	}
}

// Stopping: the message in hand finishes, the rest waits, the lease is
// released.
func TestStopFinishesMessageInHand(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, id := range []string{"a", "b", "c"} {
		e.appendMsg("INBOX", cleanMessage(id))
	}
	ctx, cancel := context.WithCancel(t.Context())
	var sent atomic.Int32
	fw := funcForwarder(func(fctx context.Context, _ analyzer.Verdict, body io.Reader) error {
		cancel() // the stop arrives while the first message is in hand
		time.Sleep(200 * time.Millisecond)
		if err := fctx.Err(); err != nil {
			return err
		}
		sent.Add(1)
		return drain(body)
	})
	p := e.poller(fw, nil)
	_, err := p.Cycle(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped cycle returned %v, want context.Canceled", err)
	}
	if n := sent.Load(); n != 1 {
		t.Fatalf("sent %d messages after the stop, want the one in hand", n)
	}
	if m, _ := find(e.folder("INBOX"), "a@example.com"); !m.has(KeywordForwarded) {
		t.Errorf("message in hand not marked: %v", m.Flags)
	}
	lease, err := e.st.AcquireLease(t.Context(), "support", time.Minute)
	if err != nil {
		t.Fatalf("lease not released after the stop: %v", err)
	}
	lease.Release(t.Context())
}

// A lost lease cancels the cycle at once.
func TestLeaseLostCancels(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("a"))
	e.appendMsg("INBOX", cleanMessage("b"))
	p := e.poller(nil, nil)
	p.st = lostLease{State: e.st}
	p.mb.LeaseTTL = 300 * time.Millisecond
	p.fw = funcForwarder(func(ctx context.Context, _ analyzer.Verdict, body io.Reader) error {
		<-ctx.Done() // the renewal fails after 100 ms
		return ctx.Err()
	})
	start := time.Now()
	_, err := p.Cycle(t.Context())
	if err == nil || !errors.Is(err, store.ErrLeaseLost) && !strings.Contains(err.Error(), "lease") {
		t.Fatalf("cycle with a lost lease returned %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancellation took %v", d)
	}
}

type tempErr struct{}

func (tempErr) Error() string   { return "451 try later" }
func (tempErr) Temporary() bool { return true }

// lostLease hands out leases whose renewal fails.
type lostLease struct{ State }

func (l lostLease) AcquireLease(ctx context.Context, mailbox string, ttl time.Duration) (store.Lease, error) {
	lease, err := l.State.AcquireLease(ctx, mailbox, ttl)
	return failingLease{lease}, err
}

type failingLease struct{ store.Lease }

func (failingLease) Renew(context.Context) error { return store.ErrLeaseLost }

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The whole corpus through one cycle: every message labelled flag ends in
// review, every one labelled forward reaches the helpdesk once, nothing is
// lost. The one message unparseable only by a missing close delimiter is
// invisible in IMAP facts by design (analyzer.TestTruncatedMultipart) and
// may go either way, handled once.
func TestCorpusThroughCycle(t *testing.T) {
	labels, err := os.ReadFile("../testdata/corpus/labels.tsv")
	if err != nil {
		t.Fatalf("corpus labels: %v", err)
	}
	e := newEnv(t, envOptions{})
	var files, actions []string
	for i, line := range strings.Split(strings.TrimSpace(string(labels)), "\n") {
		f := strings.Split(line, "\t")
		if i == 0 || len(f) < 8 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("../testdata/corpus", f[0]))
		if err != nil {
			t.Fatalf("corpus file: %v", err)
		}
		e.appendMsg("INBOX", string(raw))
		files, actions = append(files, f[0]), append(actions, f[7])
	}
	p := e.poller(nil, func(mb *Mailbox) { mb.BatchSize = 16 })
	rep := e.cycle(p)
	if rep.Counts.Seen != len(files) || rep.Counts.Failed != 0 {
		t.Fatalf("counts = %+v for %d corpus messages", rep.Counts, len(files))
	}
	byUID := make(map[uint32]Entry)
	for _, en := range rep.Entries {
		byUID[en.UID] = en
	}
	wantForward := 0
	for i, file := range files {
		en := byUID[uint32(i+1)]
		want := map[string]analyzer.Action{"forward": EntryForwarded, "flag": EntryFlagged}[actions[i]]
		if en.Action != want {
			t.Errorf("%s: %s (%s, %v), want %s", file, en.Action, en.Verdict.Encryption, en.Verdict.Reasons, want)
		}
		if want == EntryForwarded {
			wantForward++
		}
	}
	inbox, review := e.folder("INBOX"), e.folder("Triage/Review")
	if e.sink.Count() != wantForward || len(inbox) != wantForward || len(inbox)+len(review) != len(files) {
		t.Errorf("sent %d, inbox %d, review %d; want %d forwarded of %d", e.sink.Count(), len(inbox), len(review), wantForward, len(files))
	}
	for _, m := range review {
		if !m.has(imap.FlagFlagged) {
			t.Errorf("%s in review without \\Flagged: %v", m.MessageID, m.Flags)
		}
	}
	// Cut short: only the streamed body shows it (analyzer.CloseCheck), and
	// it must end where scan puts it, flagged $Unparseable, never sent.
	if m, ok := find(review, "broken-unterminated-boundary@corpus.mailtriage.example"); !ok || !m.has(KeywordUnparseable) {
		t.Errorf("truncated multipart: in review %v with flags %v, want $Unparseable", ok, m.Flags)
	}
	if rep := e.cycle(p); rep.Counts != (Counts{}) {
		t.Errorf("second cycle over the corpus did %+v", rep.Counts)
	}
}

// A reply whose relay kept only In-Reply-To still joins its conversation:
// the thread key comes from the store (or from earlier in the batch), and
// the forwarded copy says so in X-Mailtriage-Thread.
func TestThreadKeyFromStore(t *testing.T) {
	e := newEnv(t, envOptions{})
	msg := func(id, refs string) string {
		raw := cleanMessage(id)
		if refs != "" {
			raw = strings.Replace(raw, "MIME-Version: 1.0\r\n", "In-Reply-To: <"+refs+">\r\nMIME-Version: 1.0\r\n", 1)
		}
		return raw
	}
	e.appendMsg("INBOX", msg("root", ""))
	e.appendMsg("INBOX", msg("reply1", "root@example.com"))
	e.appendMsg("INBOX", msg("reply2", "reply1@example.com")) // resolved from earlier in the batch
	p := e.poller(nil, func(mb *Mailbox) { mb.BatchSize = 3 })
	e.cycle(p)
	e.appendMsg("INBOX", msg("reply3", "reply2@example.com")) // resolved from the store
	rep := e.cycle(p)
	if len(rep.Entries) != 1 || rep.Entries[0].Verdict.ThreadKey != "root@example.com" {
		t.Fatalf("reply3 entry = %+v, want thread key root@example.com", rep.Entries)
	}
	msgs := e.sink.Messages()
	for i, m := range msgs {
		if !strings.Contains(string(m.Data), "X-Mailtriage-Thread: <root@example.com>") {
			t.Errorf("forwarded copy %d lacks the root thread key:\n%s", i, m.Data)
		}
	}
}

// The body timeout is per message, though one FETCH streams several.
func TestBodyTimeoutPerMessage(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, id := range []string{"a", "b", "c", "d"} {
		e.appendMsg("INBOX", cleanMessage(id))
	}
	var sent atomic.Int32
	slow := funcForwarder(func(_ context.Context, _ analyzer.Verdict, body io.Reader) error {
		time.Sleep(150 * time.Millisecond)
		sent.Add(1)
		return drain(body)
	})
	p := e.poller(slow, func(mb *Mailbox) { mb.BatchSize = 10; mb.IMAP.BodyTimeout = 400 * time.Millisecond })
	rep := e.cycle(p)
	if rep.Counts.Forwarded != 4 || sent.Load() != 4 {
		t.Fatalf("counts %+v, sent %d; want all 4 within their own timeouts", rep.Counts, sent.Load())
	}
}
