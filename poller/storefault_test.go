package poller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/redis/go-redis/v9"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/store"
)

// faultForwarder forwards through fw and runs fault once, right after the
// SMTP server accepted the after-th message: the store then fails between
// that 250 and its outcome record.
func faultForwarder(fw Forwarder, after int32, fault func()) Forwarder {
	var sent atomic.Int32
	return &hookForwarder{fw: fw, after: func(r forwarder.Result) {
		if r.Err == nil && sent.Add(1) == after {
			fault()
		}
	}}
}

// storeFaultMessages is the size of a row's mailbox: several batches and
// several recorder groups.
const storeFaultMessages = 60

// storeFault is one row of the store fault matrix (README, Guarantees).
type storeFault struct {
	name string
	n    int // messages in the mailbox; storeFaultMessages when 0
	// stops: the fault fails record writes, so forwarding must stop at the
	// message in hand when the first write fails.
	stops bool
	// open returns the store under test and the fault to run after the
	// 10th SMTP 250; heal ends the fault before the later cycles.
	open func(t *testing.T) (st store.Store, fault, heal func())
	// between runs after the first cycle, which had no fault (FLUSHALL).
	between func(t *testing.T)
}

// The fault matrix of issue 11 against real stores: whatever happens to the
// store during or after a cycle, every message reaches the helpdesk exactly
// once, no message is marked forwarded that was not sent, the cycles after
// the store is back finish the mailbox, and the records are complete again
// (a later UIDVALIDITY reset sends nothing).
func TestStoreFaultsSendOnce(t *testing.T) {
	var flush func()
	rows := []storeFault{
		{
			name:  "redis killed mid-cycle, restarted empty",
			stops: true,
			open: func(t *testing.T) (store.Store, func(), func()) {
				r := testenv.StartRedis(t)
				return openStore(t, r.URL), r.Stop, r.Restart
			},
		},
		{
			name: "redis paused for writes for 4 s (a slow store)",
			open: func(t *testing.T) (store.Store, func(), func()) {
				r := testenv.StartRedis(t)
				rc := redisClient(t, r)
				pause := func() {
					if err := rc.Do(t.Context(), "CLIENT", "PAUSE", "4000", "WRITE").Err(); err != nil {
						t.Errorf("CLIENT PAUSE: %v", err)
					}
				}
				return openStore(t, r.URL), pause, func() {}
			},
		},
		{
			name: "bbolt disk fills mid-cycle",
			// bbolt reuses its free pages before it grows the file: enough
			// mail that it must grow on the full disk.
			n:     240,
			stops: true,
			open: func(t *testing.T) (store.Store, func(), func()) {
				dir := smallTmpfs(t, "2m")
				st := openStore(t, "file:"+filepath.Join(dir, "state.db"))
				filler := filepath.Join(dir, "filler")
				return st, func() { fillDisk(t, filler) }, func() {
					if err := os.Remove(filler); err != nil {
						t.Errorf("free the disk: %v", err)
					}
				}
			},
		},
		{
			name: "redis data lost after a cycle (FLUSHALL)",
			open: func(t *testing.T) (store.Store, func(), func()) {
				r := testenv.StartRedis(t)
				rc := redisClient(t, r)
				flush = func() {
					if err := rc.FlushAll(t.Context()).Err(); err != nil {
						t.Fatalf("FLUSHALL: %v", err)
					}
				}
				return openStore(t, r.URL), nil, func() {}
			},
			between: func(*testing.T) { flush() },
		},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			e := newEnv(t, envOptions{discardBodies: false})
			st, fault, heal := row.open(t)
			watch := &failureWatch{Store: st, sent: e.sink.Count}
			e.st = watch
			n := row.n
			if n == 0 {
				n = storeFaultMessages
			}
			var ids, raws []string
			for i := range n {
				id := fmt.Sprintf("fault-%03d", i)
				ids = append(ids, id+"@example.com")
				raws = append(raws, cleanMessage(id))
				e.appendMsg("INBOX", raws[i])
			}
			var fw Forwarder = e.fw
			if fault != nil {
				fw = faultForwarder(e.fw, 10, fault)
			}
			p := e.poller(fw, func(mb *Mailbox) {
				mb.BatchSize = 20
				// Long enough that the outage does not cost the lease
				// before the marking (keepLease).
				mb.LeaseTTL = 30 * time.Second
			})
			_, err := p.Cycle(t.Context())
			t.Logf("first cycle: %v", err)
			if at := watch.sentAtFailure.Load(); row.stops && (at == 0 || int64(e.sink.Count()) > at+1) {
				t.Errorf("the first cycle sent %d messages, %d when the first record write failed: want at most the message in hand after it",
					e.sink.Count(), at)
			}
			e.checkMarkedWereSent()
			if row.between != nil {
				row.between(t)
			}
			heal()
			waitStore(t, st)
			for i := 0; i == 0 || i < 3 && e.sink.Count() < n; i++ {
				if _, err := p.Cycle(t.Context()); err != nil {
					t.Fatalf("cycle %d after the store came back: %v", i+2, err)
				}
			}
			// Then the folder is rebuilt with the same mail, marks gone and
			// UIDVALIDITY new: only complete records keep it from going out
			// again.
			if err := e.user.Delete("INBOX"); err != nil {
				t.Fatal(err)
			}
			if err := e.user.Create("INBOX", nil); err != nil {
				t.Fatal(err)
			}
			for _, raw := range raws {
				e.appendMsg("INBOX", raw)
			}
			if _, err := p.Cycle(t.Context()); err != nil {
				t.Fatalf("cycle after the UIDVALIDITY reset: %v", err)
			}
			counts := make(map[string]int)
			for _, id := range e.received() {
				counts[id]++
			}
			var twice, missing []string
			for _, id := range ids {
				switch n := counts[id]; {
				case n == 0:
					missing = append(missing, id)
				case n > 1:
					twice = append(twice, fmt.Sprintf("%s ×%d", id, n))
				}
			}
			if len(twice) > 0 || len(missing) > 0 {
				t.Errorf("helpdesk received %d messages for %d: more than once %v, never %v",
					e.sink.Count(), n, twice, missing)
			}
			for _, m := range e.folder("INBOX") {
				if !m.has(KeywordForwarded) {
					t.Errorf("%s not marked forwarded at the end: %v", m.MessageID, m.Flags)
				}
			}
		})
	}
}

// failureWatch notes how many messages the helpdesk had when a record
// write first failed.
type failureWatch struct {
	store.Store
	sent          func() int
	sentAtFailure atomic.Int64
}

func (w *failureWatch) RecordOutcomes(ctx context.Context, mailbox string, outs []store.Outcome) error {
	err := w.Store.RecordOutcomes(ctx, mailbox, outs)
	if err != nil {
		w.sentAtFailure.CompareAndSwap(0, int64(w.sent()))
	}
	return err
}

// checkMarkedWereSent fails the test when a message carries $Forwarded
// without having reached the helpdesk.
func (e *env) checkMarkedWereSent() {
	e.t.Helper()
	got := make(map[string]bool)
	for _, id := range e.received() {
		got[id] = true
	}
	for _, m := range e.folder("INBOX") {
		if m.has(KeywordForwarded) && !got[m.MessageID] {
			e.t.Errorf("%s marked %v but never sent", m.MessageID, m.Flags)
		}
	}
}

// The mailbox's own marks count: mail marked $Forwarded (by an earlier
// cycle whose state is gone, or on a server that kept its keywords through
// a UIDVALIDITY reset) is never sent again, and its record is rebuilt.
func TestMarksCountWithoutRecords(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.appendMsg("INBOX", cleanMessage("old-1"), KeywordForwarded, imap.FlagSeen)
	e.appendMsg("INBOX", cleanMessage("old-2"), KeywordForwarded)
	e.appendMsg("INBOX", cleanMessage("new-1"))
	p := e.poller(nil, nil)
	rep := e.cycle(p)
	if got := e.received(); len(got) != 1 || got[0] != "new-1@example.com" {
		t.Fatalf("helpdesk received %v, want only new-1", got)
	}
	if rep.Counts.Forwarded != 1 || rep.Counts.Skipped != 2 {
		t.Errorf("counts = %+v, want 1 forwarded, 2 done before", rep.Counts)
	}
	if m, _ := find(e.folder("INBOX"), "old-2@example.com"); !m.has(imap.FlagSeen) {
		t.Errorf("old-2 has %v, want its marking completed with \\Seen", m.Flags)
	}
	fps := make([]string, 0, 2)
	for _, en := range rep.Entries {
		if en.Action == EntryDone {
			fps = append(fps, en.Verdict.Fingerprint)
		}
	}
	outs, err := e.st.Outcomes(t.Context(), "support", fps)
	if err != nil || len(outs) != 2 {
		t.Errorf("records rebuilt from the marks: %v, %v; want 2", outs, err)
	}
}

// openStore opens the store at url for the test.
func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), url, store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// waitStore waits until st answers again (go-redis redials a restarted
// server in the background, about once a second).
func waitStore(t *testing.T, st store.Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := st.Ping(t.Context())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store did not answer again: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redisClient is a client of r for the test's own commands.
func redisClient(t *testing.T, r *testenv.Redis) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	return rc
}

// smallTmpfs mounts a tmpfs of size in a temporary directory for the test
// (it needs root) and unmounts it at the end.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount a %s tmpfs on %s (needs root and mount rights): %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Errorf("fill the disk: %v", err)
		return
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("fill the disk: %v", err)
			}
			return
		}
	}
}
