package poller

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// The interop suite against Cyrus IMAP 3.6, with Debian's namespace
// (INBOX. and ".") and Cyrus' own default (altnamespace and "/"), with all
// its capabilities, without MOVE, and without MOVE and UIDPLUS: check
// shows the server's folder names and passes, a cycle flags and forwards,
// a second one reads nothing again, the release loop forwards what a
// reviewer moved, and a third cycle sends nothing twice.
func TestCyrusInterop(t *testing.T) {
	for _, ns := range []struct {
		name                    string
		upstream                bool
		review, release, prefix string
	}{
		{"Debian namespace", false, "INBOX.Triage.Review", "INBOX.Triage.Release", "INBOX."},
		{"upstream namespace", true, "Triage/Review", "Triage/Release", ""},
	} {
		for _, caps := range []struct {
			name string
			hide []string
		}{
			{"all capabilities", nil},
			{"no MOVE", []string{"MOVE"}},
			{"no MOVE, no UIDPLUS", []string{"MOVE", "UIDPLUS"}},
		} {
			t.Run(ns.name+", "+caps.name, func(t *testing.T) {
				e := newCyrusEnv(t, testenv.CyrusOptions{UpstreamNamespace: ns.upstream, HideCapabilities: caps.hide})
				p := e.poller(nil, nil)
				c, err := p.dial(t.Context(), nil)
				if err != nil {
					t.Fatal(err)
				}
				for _, hidden := range caps.hide {
					if c.caps.Has(imap.Cap(hidden)) {
						t.Fatalf("Cyrus still advertises %s", hidden)
					}
				}
				c.logout(t.Context())

				res := p.Check(t.Context())
				for _, r := range res {
					if r.Err != nil {
						t.Fatalf("check: %s: %v", r.Name, r.Err)
					}
				}
				names := make([]string, len(res))
				for i, r := range res {
					names[i] = r.Name
				}
				for _, want := range []string{"mailbox support: review folder " + ns.review, "mailbox support: release folder " + ns.release} {
					if !slices.Contains(names, want) {
						t.Errorf("check lines %q lack %q", names, want)
					}
				}

				e.append("INBOX", encryptedMessage("cy-enc-1"))
				e.append("INBOX", cleanMessage("cy-clean-1"))
				e.append("INBOX", cleanMessage("cy-clean-2"))
				if rep := e.cycle(p); rep.Counts.Flagged != 1 || rep.Counts.Forwarded != 2 {
					t.Fatalf("first cycle: %+v", rep.Counts)
				}
				if got := e.count(ns.review); got != 1 {
					t.Fatalf("%s holds %d messages, want the flagged one", ns.review, got)
				}
				if rep := e.cycle(p); rep.Counts.Seen != 0 || rep.Counts.Forwarded != 0 {
					t.Fatalf("second cycle: %+v, want nothing read again", rep.Counts)
				}
				e.moveAll(ns.review, ns.release)
				if rep := e.cycle(p); rep.Counts.Forwarded != 1 {
					t.Fatalf("release cycle: %+v", rep.Counts)
				}
				if got := e.count(ns.release); got != 0 && !slices.Contains(caps.hide, "UIDPLUS") {
					t.Errorf("%s holds %d messages after the release loop", ns.release, got)
				}
				if rep := e.cycle(p); rep.Counts.Forwarded != 0 {
					t.Fatalf("third cycle forwarded %d again", rep.Counts.Forwarded)
				}
				if e.sink.Count() != 3 {
					t.Errorf("sink got %d messages, want the two clean ones and the released one", e.sink.Count())
				}
			})
		}
	}
}
