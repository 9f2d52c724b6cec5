package poller

import (
	"slices"
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
