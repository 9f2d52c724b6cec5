package poller

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/notify"
)

// TestNotifyClasses: a notice follows each flagged message of a
// configured class once its flag is final (a refused forward included, for
// forward_failed), over the forwarder's session with a null envelope
// sender; other classes and forwarded mail get none, and the originals in
// the review folder get $Notified.
func TestNotifyClasses(t *testing.T) {
	tests := []struct {
		name    string
		classes []notify.Class
		fault   smtpsink.Fault
		want    []string // notice recipients
	}{
		{"encrypted", []notify.Class{notify.ClassEncrypted}, smtpsink.Fault{}, []string{"bob@example.org"}},
		{"forward_failed", []notify.Class{notify.ClassForwardFailed}, smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550, Times: 1}, []string{"alice@example.com"}},
		{"unparseable only", []notify.Class{notify.ClassUnparseable}, smtpsink.Fault{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.appendMsg("INBOX", cleanMessage("clean-1"))
			e.appendMsg("INBOX", encryptedMessage("secret-1"))
			nt, err := notify.New(notify.Config{From: "support-noreply@example.net", Classes: tt.classes}, e.fw, e.st)
			if err != nil {
				t.Fatal(err)
			}
			p := e.poller(nil, func(mb *Mailbox) { mb.Notifier = nt; mb.BatchSize = 10 })
			e.sink.SetFault(tt.fault)
			rep := e.cycle(p)
			var got []string
			for _, m := range e.sink.Messages() {
				if m.From == "" {
					got = append(got, m.To...)
				}
			}
			if !slices.Equal(got, tt.want) || rep.Counts.Notified != len(tt.want) {
				t.Fatalf("notices to %v, report counts %d; want %v", got, rep.Counts.Notified, tt.want)
			}
			for _, m := range e.folder("Triage/Review") {
				wantKeyword := len(tt.want) > 0 && (tt.name == "encrypted") == (m.MessageID == "secret-1@example.org")
				if m.has(KeywordNotified) != wantKeyword {
					t.Errorf("%s in review has %v; want %s: %v", m.MessageID, m.Flags, KeywordNotified, wantKeyword)
				}
			}
		})
	}
}

// countingSender counts the notices it is asked to send.
type countingSender struct {
	notify.Sender
	calls int
}

func (s *countingSender) Send(ctx context.Context, from string, to []string, msg []byte) error {
	s.calls++
	return s.Sender.Send(ctx, from, to, msg)
}

// TestNoticeFailures: when the notice route is down, the cycle tries no
// more notices (each would wait for the same failure) and flags on; a
// recipient refused (5xx) stops only its own notice.
func TestNoticeFailures(t *testing.T) {
	tests := []struct {
		name         string
		down         bool
		fault        smtpsink.Fault
		wantTried    int
		wantNotified int
	}{
		{"route down", true, smtpsink.Fault{}, 1, 0},
		{"4xx", false, smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 451}, 1, 0},
		{"one recipient refused", false, smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550, Times: 1}, 3, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			for _, id := range []string{"s1", "s2", "s3"} {
				e.appendMsg("INBOX", strings.Replace(encryptedMessage(id), "bob@example.org", id+"@example.org", 1))
			}
			addr := e.sink.Addr()
			if tt.down {
				addr = closedPort(t)
			}
			send := &countingSender{Sender: e.forwarder(addr)}
			nt, err := notify.New(notify.Config{From: "support-noreply@example.net", Classes: []notify.Class{notify.ClassEncrypted}}, send, e.st)
			if err != nil {
				t.Fatal(err)
			}
			p := e.poller(nil, func(mb *Mailbox) { mb.Notifier = nt; mb.BatchSize = 10 })
			e.sink.SetFault(tt.fault)
			rep := e.cycle(p)
			if rep.Counts.Flagged != 3 || rep.Counts.Notified != tt.wantNotified || send.calls != tt.wantTried {
				t.Errorf("flagged %d, notified %d, notices tried %d; want 3, %d, %d", rep.Counts.Flagged, rep.Counts.Notified, send.calls, tt.wantNotified, tt.wantTried)
			}
			if n := len(e.folder("Triage/Review")); n != 3 {
				t.Errorf("review holds %d; want 3", n)
			}
		})
	}
}
