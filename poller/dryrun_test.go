package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/redis/go-redis/v9"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
)

// replyMessage answers the message with Message-ID <parent>.
func replyMessage(id, parent string) string {
	return strings.Replace(cleanMessage(id), "MIME-Version: 1.0\r\n",
		"In-Reply-To: <"+parent+">\r\nReferences: <"+parent+">\r\nMIME-Version: 1.0\r\n", 1)
}

// refusingForwarder fails the test if a message is forwarded.
func refusingForwarder(t *testing.T) funcForwarder {
	return func(_ context.Context, v analyzer.Verdict, _ io.Reader) error {
		t.Errorf("dry run forwarded %s", v.MessageID)
		return errors.New("a dry run must not forward")
	}
}

// TestDryRunChangesNothing runs a real cycle against a private Dovecot,
// delivers more mail (new, encrypted, a reply, a released message), then
// dry-runs the mailbox: it must report what a cycle would do, and leave the
// mailbox (folders, UIDVALIDITY, UIDNEXT, UIDs, flags including \Recent,
// message bytes) and the state (the bbolt file's bytes; every Redis key and
// its DUMP, a running worker's lease included) exactly as they were.
func TestDryRunChangesNothing(t *testing.T) {
	for _, engine := range []string{"bbolt", "redis"} {
		t.Run(engine, func(t *testing.T) {
			ctx := t.Context()
			d := testenv.StartDovecot(t)
			d.Deliver(d.User, "INBOX", []byte(cleanMessage("clean-1")), []byte(encryptedMessage("secret-1")), []byte(cleanMessage("clean-2")))

			var url string
			var rdb *redis.Client
			if engine == "redis" {
				r := testenv.StartRedis(t)
				url = r.URL
				rdb = redis.NewClient(&redis.Options{Addr: r.Addr})
				t.Cleanup(func() { rdb.Close() })
			} else {
				url = "file:" + filepath.Join(t.TempDir(), "state.db")
			}
			sink, err := smtpsink.Start(ctx, smtpsink.Options{})
			if err != nil {
				t.Fatalf("start SMTP sink: %v", err)
			}
			// The test mailbox's settings, pointed at Dovecot.
			e := &env{t: t, addr: d.Addr, tls: tlsmode.Implicit, pool: d.RootCAs}
			mb := e.mailbox()
			mb.IMAP.Auth = credential.Auth{Mechanism: credential.Plain, Username: d.User, Secret: credential.Static(secret.New(d.Password))}
			st, err := store.Open(ctx, url, store.Options{})
			if err != nil {
				t.Fatalf("open store: %v", err)
			}
			rep, err := New(mb, analyzer.New(nil), st, e.forwarder(sink.Addr()), nil, slogFor(t)).Cycle(ctx)
			if err != nil || rep.Counts.Forwarded != 2 || rep.Counts.Flagged != 1 {
				t.Fatalf("first cycle: %+v, %v; want 2 forwarded and 1 flagged", rep.Counts, err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			sent := sink.Count()

			d.Deliver(d.User, "INBOX", []byte(cleanMessage("clean-3")), []byte(encryptedMessage("secret-2")), []byte(replyMessage("reply-1", "clean-1@example.com")))
			d.Deliver(d.User, "Triage/Release", []byte(encryptedMessage("secret-3")))
			if engine == "redis" {
				// A worker is cycling the mailbox meanwhile: the dry run runs
				// beside it and leaves its lease alone.
				worker, err := store.Open(ctx, url, store.Options{})
				if err != nil {
					t.Fatalf("open the running worker's store: %v", err)
				}
				t.Cleanup(func() { worker.Close() })
				if _, err := worker.AcquireLease(ctx, mb.Name, time.Minute); err != nil {
					t.Fatalf("take the running worker's lease: %v", err)
				}
			}

			c := d.Dial(t, d.User, d.Password)
			mailBefore := mailboxSnapshot(t, c)
			stateBefore := stateSnapshot(t, url, rdb)
			ro, err := store.Open(ctx, url, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatalf("open store read-only: %v", err)
			}
			t.Cleanup(func() { ro.Close() })
			dry := New(mb, analyzer.New(nil), ro, refusingForwarder(t), nil, slogFor(t))

			for _, tc := range []struct {
				name string
				opt  DryRunOptions
				want map[string]analyzer.Action // Message-ID → Action
			}{
				{"what a cycle would read", DryRunOptions{}, map[string]analyzer.Action{
					"clean-3@example.com": EntryForwarded, "secret-2@example.org": EntryFlagged,
					"reply-1@example.com": EntryForwarded, "secret-3@example.org": EntryForwarded}},
				{"the last 4, whatever the state", DryRunOptions{Limit: 4}, map[string]analyzer.Action{
					"clean-2@example.com": EntryDone, "clean-3@example.com": EntryForwarded, "secret-2@example.org": EntryFlagged,
					"reply-1@example.com": EntryForwarded, "secret-3@example.org": EntryForwarded}},
				{"since yesterday", DryRunOptions{Since: time.Now().AddDate(0, 0, -1)}, map[string]analyzer.Action{
					"clean-1@example.com": EntryDone, "clean-2@example.com": EntryDone,
					"clean-3@example.com": EntryForwarded, "secret-2@example.org": EntryFlagged,
					"reply-1@example.com": EntryForwarded, "secret-3@example.org": EntryForwarded}},
				{"since tomorrow", DryRunOptions{Since: time.Now().AddDate(0, 0, 2)}, map[string]analyzer.Action{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got := make(map[string]analyzer.Action)
					for en, err := range dry.DryRun(ctx, tc.opt) {
						if err != nil {
							t.Fatalf("dry run: %v", err)
						}
						got[en.Verdict.MessageID] = en.Action
						checkDryEntry(t, en)
					}
					if !maps.Equal(got, tc.want) {
						t.Errorf("dry run says %v, want %v", got, tc.want)
					}
				})
			}

			if after := mailboxSnapshot(t, c); !slices.Equal(after, mailBefore) {
				t.Errorf("the dry run changed the mailbox:\nbefore %s\nafter  %s", strings.Join(mailBefore, "\n       "), strings.Join(after, "\n       "))
			}
			if after := stateSnapshot(t, url, rdb); !maps.Equal(after, stateBefore) {
				t.Errorf("the dry run changed the state:\nbefore %v\nafter  %v", stateBefore, after)
			}
			if sink.Count() != sent {
				t.Errorf("the helpdesk got %d messages during the dry run", sink.Count()-sent)
			}
		})
	}
}

// checkDryEntry checks what a dry-run entry says of one message of the
// test's mailbox.
func checkDryEntry(t *testing.T, en Entry) {
	t.Helper()
	v := en.Verdict
	switch {
	case en.Released:
		if v.Action != analyzer.ActionForward || len(v.Reasons) == 0 || !strings.HasPrefix(v.Reasons[0], "released: in Triage/Release") {
			t.Errorf("released %s: action %s, reasons %q; want forward, first saying it is released", v.MessageID, v.Action, v.Reasons)
		}
	case en.Action == EntryDone:
		if len(v.Reasons) == 0 || !strings.HasPrefix(v.Reasons[0], "done before: recorded as ") {
			t.Errorf("done %s: reasons %q, want the record first", v.MessageID, v.Reasons)
		}
	case en.Action == EntryFlagged:
		if v.Action != analyzer.ActionFlag || en.MovedTo != "Triage/Review" {
			t.Errorf("flagged %s: action %s, moved to %q", v.MessageID, v.Action, en.MovedTo)
		}
	}
	// The reply's thread key comes from the store: the thread of clean-1.
	if v.MessageID == "reply-1@example.com" && v.ThreadKey != "<clean-1@example.com>" && v.ThreadKey != "clean-1@example.com" {
		t.Errorf("reply's thread key %q, want clean-1's", v.ThreadKey)
	}
}

// mailboxSnapshot lists, in one EXAMINE per folder, every folder with its
// UIDVALIDITY and UIDNEXT and every message with its UID, flags and a hash
// of its bytes.
func mailboxSnapshot(t *testing.T, c *imapclient.Client) []string {
	t.Helper()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatalf("list folders: %v", err)
	}
	var out []string
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			out = append(out, l.Mailbox+" (not selectable)")
			continue
		}
		sel, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("examine %s: %v", l.Mailbox, err)
		}
		out = append(out, fmt.Sprintf("%s uidvalidity=%d uidnext=%d messages=%d", l.Mailbox, sel.UIDValidity, sel.UIDNext, sel.NumMessages))
		if sel.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("fetch %s: %v", l.Mailbox, err)
		}
		for _, m := range msgs {
			flags := make([]string, len(m.Flags))
			for i, f := range m.Flags {
				flags[i] = string(f)
			}
			slices.Sort(flags)
			sum := sha256.New()
			for _, b := range m.BodySection {
				sum.Write(b.Bytes)
			}
			out = append(out, fmt.Sprintf("%s uid=%d flags=%v sha256=%s", l.Mailbox, m.UID, flags, hex.EncodeToString(sum.Sum(nil))[:16]))
		}
	}
	slices.Sort(out)
	return out
}

// stateSnapshot is the state as bytes: the bbolt file's hash, or every
// Redis key with its DUMP and whether it expires.
func stateSnapshot(t *testing.T, url string, rdb *redis.Client) map[string]string {
	t.Helper()
	out := make(map[string]string)
	if rdb == nil {
		b, err := os.ReadFile(strings.TrimPrefix(url, "file:"))
		if err != nil {
			t.Fatalf("read state file: %v", err)
		}
		s := sha256.Sum256(b)
		out["file"] = hex.EncodeToString(s[:])
		return out
	}
	ctx := t.Context()
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatalf("list Redis keys: %v", err)
	}
	for _, k := range keys {
		dump, err := rdb.Dump(ctx, k).Result()
		if err != nil {
			t.Fatalf("dump %s: %v", k, err)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatalf("pttl %s: %v", k, err)
		}
		out[k] = fmt.Sprintf("%x expires=%t", sha256.Sum256([]byte(dump)), ttl > 0)
	}
	if len(out) == 0 {
		t.Fatal("the Redis state is empty: the first cycle wrote nothing")
	}
	return out
}
