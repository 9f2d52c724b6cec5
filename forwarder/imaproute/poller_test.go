package imaproute_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/poller"
	"github.com/mailtriage/mailtriage/store"
)

// watched is the poller of the harness account's INBOX, forwarding into fw.
func watched(t *testing.T, dc *testenv.Dovecot, st store.Store, fw poller.Forwarder) *poller.Poller {
	t.Helper()
	return watchedWith(t, dc, st, fw, 0)
}

// watchedWith is watched with the stop grace given (0: the default).
func watchedWith(t *testing.T, dc *testenv.Dovecot, st store.Store, fw poller.Forwarder, grace time.Duration) *poller.Poller {
	t.Helper()
	mb := poller.Mailbox{
		Name:          "support",
		IMAP:          login(dc, dc.User, dc.Password),
		ReviewFolder:  "Triage/Review",
		ReleaseFolder: "Triage/Release",
		BatchSize:     2,
		LeaseTTL:      5 * time.Second,
		StopGrace:     grace,
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	return poller.New(mb, analyzer.New(nil), st, fw, nil, log)
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), "file:"+filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// crashAfter forwards through the route and, after the nth APPEND, asks
// the cycle to stop and holds the message until the stop grace has run
// out: the poller then abandons the cycle without recording or marking
// the message, as a process killed at that point would.
type crashAfter struct {
	route  *imaproute.Route
	n      int
	cancel context.CancelFunc
}

func (c *crashAfter) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	for j := range jobs {
		results <- forwarder.Result{Key: j.Key, Err: c.forward(ctx, j)}
	}
}

func (c *crashAfter) forward(ctx context.Context, j forwarder.Job) error {
	if err := c.route.Forward(ctx, j.Verdict, j.Released, j.Body.Size(), j.Body.Reader()); err != nil {
		return err
	}
	if c.n--; c.n == 0 {
		c.cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (c *crashAfter) Close() error { return c.route.Close() }

// TestPollerForwardsOverIMAP runs the poller end to end into the helpdesk's
// account: a cycle that dies right after an APPEND (before the record),
// then cycles of a restarted worker. Every message lands once, unseen, as
// it was sent; the originals are marked; a further cycle changes nothing.
func TestPollerForwardsOverIMAP(t *testing.T) {
	tests := []struct {
		name       string
		crashAfter int // 0: no crash
	}{
		{"no crash", 0},
		{"crash after the first append", 1},
		{"crash after the third append", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dc, acct := helpdesk(t)
			var sent [][]byte
			var ids []string
			for _, id := range []string{"p1", "p2", "p3", "p4", "p5"} {
				sent = append(sent, message(id))
				ids = append(ids, id+"@example.com")
			}
			dc.Deliver(dc.User, "INBOX", sent...)
			st := openStore(t)

			if tc.crashAfter > 0 {
				ctx, cancel := context.WithCancel(t.Context())
				fw := &crashAfter{route: newRoute(t, imaproute.Config{IMAP: acct}), n: tc.crashAfter, cancel: cancel}
				if _, err := watchedWith(t, dc, st, fw, time.Millisecond).CycleNow(ctx); err == nil {
					t.Fatal("the crashed cycle reported no error")
				}
				cancel()
				if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != tc.crashAfter {
					t.Fatalf("the crashed cycle appended %d messages, want %d", got, tc.crashAfter)
				}
			}

			// The restarted worker: a new route, the same store.
			p := watched(t, dc, st, newRoute(t, imaproute.Config{IMAP: acct}))
			if _, err := p.CycleNow(t.Context()); err != nil {
				t.Fatalf("cycle: %v", err)
			}
			check := func(when string) {
				t.Helper()
				copies := folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")
				if len(copies) != len(sent) {
					t.Fatalf("%s: the helpdesk's INBOX holds %d messages, want %d", when, len(copies), len(sent))
				}
				var got []string
				for _, c := range copies {
					if hasFlag(c.Flags, imap.FlagSeen) {
						t.Errorf("%s: a copy is \\Seen (flags %v)", when, c.Flags)
					}
					i := slices.IndexFunc(sent, func(raw []byte) bool { return bytes.HasSuffix(c.Raw, raw) })
					if i < 0 {
						t.Errorf("%s: a copy does not end with any original byte for byte:\n%s", when, c.Raw)
						continue
					}
					got = append(got, ids[i])
				}
				slices.Sort(got)
				if !slices.Equal(got, ids) {
					t.Errorf("%s: the helpdesk holds copies of %v, want each of %v once", when, got, ids)
				}
				origs := folder(t, dc, dc.User, dc.Password, "INBOX")
				if len(origs) != len(sent) {
					t.Errorf("%s: the watched INBOX holds %d messages, want all %d (none flagged away)", when, len(origs), len(sent))
				}
				for _, o := range origs {
					if !hasFlag(o.Flags, "$Forwarded") || !hasFlag(o.Flags, imap.FlagSeen) {
						t.Errorf("%s: an original has flags %v, want $Forwarded and \\Seen", when, o.Flags)
					}
				}
			}
			check("after the cycle")

			rep, err := p.CycleNow(t.Context())
			if err != nil {
				t.Fatalf("second cycle: %v", err)
			}
			if rep.Counts.Forwarded != 0 {
				t.Errorf("second cycle forwarded %d messages, want 0", rep.Counts.Forwarded)
			}
			check("after a second cycle")
		})
	}
}
