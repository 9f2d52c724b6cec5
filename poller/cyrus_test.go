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
// shows the server's folder names and passes, then the interop cycles.
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

				e.interop(p, ns.review, ns.release, !slices.Contains(caps.hide, "UIDPLUS"))
			})
		}
	}
}
