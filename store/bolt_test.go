package store

import (
	"errors"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestBolt(t *testing.T, opt Options) Store {
	t.Helper()
	s, err := Open(t.Context(), "file:"+filepath.Join(t.TempDir(), "state.db"), opt)
	if err != nil {
		t.Fatalf("Open bolt: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBoltContract(t *testing.T) {
	testContract(t, openTestBolt)
}

func TestOpenURLs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		url     string
		wantErr string // "" for success
		reason  string
	}{
		{"file:" + filepath.Join(dir, "a.db"), "", "file: with an absolute path"},
		{"file://" + filepath.Join(dir, "b.db"), "", "file:// with an absolute path"},
		{"file:" + filepath.Join(dir, "sub", "dir", "c.db"), "", "missing directories are created"},
		{"file:", "without a path", "no path"},
		{"memcached://localhost", "unsupported scheme", "unknown engine"},
		{"/var/lib/state.db", "unsupported scheme", "a bare path is not a URL"},
		{"redis://:pw@[::1", "malformed state URL", "unparseable URL"},
	}
	for _, tt := range tests {
		s, err := Open(t.Context(), tt.url, Options{})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: Open(%q) = %v", tt.reason, tt.url, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: Open(%q) = %v; want an error containing %q", tt.reason, tt.url, err, tt.wantErr)
		}
		if err == nil {
			s.Close()
		}
	}
	for _, opt := range []Options{{Prefix: "a{b"}, {ThreadTTL: time.Microsecond}} {
		if s, err := Open(t.Context(), "file:"+filepath.Join(dir, "d.db"), opt); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded; want an error", opt)
		}
	}
}

// TestBoltLocked: a second opener of the same file (another process, or
// here another handle, since bbolt's flock is per open file) fails clearly.
func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(t.Context(), "file:"+path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	start := time.Now()
	_, err = Open(t.Context(), "file:"+path, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open = %v; want ErrLocked naming %s", err, path)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open waited %v; want about %v", waited, lockWait)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = Open(t.Context(), "file:"+path, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s.Close()
}

// TestBoltReopen: state survives a restart; expired thread entries and
// leases of the dead process are deleted from the file when it is opened.
func TestBoltReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	opt := Options{ThreadTTL: 100 * time.Millisecond}
	s, err := Open(ctx, "file:"+path, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	st := MailboxState{UIDValidity: 3, HighWater: 99}
	if err := s.SetMailboxState(ctx, "support", st); err != nil {
		t.Fatalf("SetMailboxState: %v", err)
	}
	if err := s.RecordOutcomes(ctx, "support", []Outcome{testOutcome(1)}); err != nil {
		t.Fatalf("RecordOutcomes: %v", err)
	}
	notes := []ThreadNote{{MessageID: "<a@x>", ThreadKey: "<a@x>"}, {MessageID: "<b@x>", ThreadKey: "<b@x>"}}
	if err := s.NoteThreads(ctx, "support", notes); err != nil {
		t.Fatalf("NoteThreads: %v", err)
	}
	if _, err := s.AcquireLease(ctx, "support", time.Hour); err != nil {
		t.Fatalf("AcquireLease: %v", err)
	}
	// Closed without Release, as a crash would leave it.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	time.Sleep(200 * time.Millisecond)

	s, err = Open(ctx, "file:"+path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got, err := s.MailboxState(ctx, "support"); err != nil || got != st {
		t.Errorf("MailboxState after reopen = %+v, %v; want %+v", got, err, st)
	}
	want := testOutcome(1)
	if got, err := s.Outcomes(ctx, "support", []string{want.Fingerprint}); err != nil || !sameOutcome(got[want.Fingerprint], want) {
		t.Errorf("Outcomes after reopen = %+v, %v", got, err)
	}
	l, err := s.AcquireLease(ctx, "support", time.Minute)
	if err != nil {
		t.Errorf("AcquireLease after reopen = %v; want the dead process's lease gone", err)
	} else {
		l.Release(ctx)
	}
	err = s.(*boltStore).db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket([]byte("support"))
		for _, name := range [][]byte{bucketMsgIDs, bucketThreads} {
			if n := mb.Bucket(name).Stats().KeyN; n != 0 {
				t.Errorf("bucket %s holds %d expired entries after reopen; want 0", name, n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBoltExpiryIndex: opening the file drops expired thread entries through
// the expiry index, keeps refreshed ones, and indexes a file written before
// the index existed.
func TestBoltExpiryIndex(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	const ttl = 300 * time.Millisecond
	open := func() *boltStore {
		t.Helper()
		s, err := Open(ctx, "file:"+path, Options{ThreadTTL: ttl})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s.(*boltStore)
	}
	note := func(s *boltStore, notes ...ThreadNote) {
		t.Helper()
		if err := s.NoteThreads(ctx, "support", notes); err != nil {
			t.Fatalf("NoteThreads: %v", err)
		}
	}
	s := open()
	note(s, ThreadNote{MessageID: "<a@x>", ThreadKey: "<A@x>"}, ThreadNote{MessageID: "<old@x>", ThreadKey: "<OLD@x>"})
	time.Sleep(ttl / 2)
	// A reply refreshes thread A; <a@x> itself is not seen again.
	note(s, ThreadNote{MessageID: "<c@x>", ThreadKey: "<A@x>"})
	checkExpiryIndex(t, s)
	s.Close()
	time.Sleep(ttl/2 + 50*time.Millisecond)

	s = open()
	want := map[string][]string{
		string(bucketMsgIDs):  {"<c@x>"},
		string(bucketThreads): {"<A@x>"},
	}
	if got := boltKeys(t, s); !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen: %v, want %v", got, want)
	}
	checkExpiryIndex(t, s)

	// A file from before the index: the index is built at open.
	note(s, ThreadNote{MessageID: "<d@x>", ThreadKey: "<D@x>"})
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("support")).DeleteBucket(bucketExpiry) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open()
	defer s.Close()
	checkExpiryIndex(t, s)
	if got := boltKeys(t, s); len(got[string(bucketMsgIDs)]) != 2 {
		t.Errorf("after indexing an old file: %v, want <c@x> and <d@x>", got)
	}
}

// boltKeys lists the keys of the named buckets of support (the msgids and
// threads buckets when none are named).
func boltKeys(t *testing.T, s *boltStore, names ...[]byte) map[string][]string {
	t.Helper()
	if len(names) == 0 {
		names = [][]byte{bucketMsgIDs, bucketThreads}
	}
	out := map[string][]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket([]byte("support"))
		for _, name := range names {
			mb.Bucket(name).ForEach(func(k, _ []byte) error {
				out[string(name)] = append(out[string(name)], string(k))
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkExpiryIndex requires one index entry per msgids and threads record,
// at its expiry, and no other entry.
func checkExpiryIndex(t *testing.T, s *boltStore) {
	t.Helper()
	checkIndex(t, s, bucketExpiry, func(mb *bolt.Bucket, want map[string]bool) {
		for kind, name := range map[byte][]byte{kindMsgID: bucketMsgIDs, kindThread: bucketThreads} {
			mb.Bucket(name).ForEach(func(k, v []byte) error {
				x, err := recordExpiry(kind, v)
				if err != nil {
					t.Errorf("%s %s: %v", name, k, err)
				}
				want[string(expiryKey(x, kind, k))] = true
				return nil
			})
		}
	})
}

// checkIndex requires the index bucket of support to hold exactly the
// keys that records adds to want.
func checkIndex(t *testing.T, s *boltStore, index []byte, records func(mb *bolt.Bucket, want map[string]bool)) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		mb := tx.Bucket([]byte("support"))
		want := map[string]bool{}
		records(mb, want)
		got := map[string]bool{}
		mb.Bucket(index).ForEach(func(k, _ []byte) error {
			got[string(k)] = true
			return nil
		})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("index %s has %d entries, the records want %d: %q vs %q", index, len(got), len(want), slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBoltRetention: outcomes older than the retention are deleted from the
// file when it is opened and by later writes, through the done index, which
// follows replaced records; a changed retention applies to every record at
// once; a file written before that index is indexed when opened. The
// records' times are set in the past, so nothing waits.
func TestBoltRetention(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	open := func(retention time.Duration) *boltStore {
		t.Helper()
		s, err := Open(ctx, "file:"+path, Options{Retention: retention})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s.(*boltStore)
	}
	ago := func(o Outcome, d time.Duration) Outcome {
		o.At = time.Now().Add(-d)
		return o
	}
	record := func(s *boltStore, outs ...Outcome) {
		t.Helper()
		if err := s.RecordOutcomes(ctx, "support", outs); err != nil {
			t.Fatalf("RecordOutcomes: %v", err)
		}
	}
	a, b, c, d := testOutcome(1), testOutcome(2), testOutcome(3), testOutcome(4)
	s := open(time.Hour)
	record(s, ago(a, 50*time.Minute), ago(b, 40*time.Minute), ago(c, 10*time.Minute))
	record(s, ago(b, 20*time.Minute)) // replaced: its done entry moves
	checkDoneIndex(t, s)
	s.Close()

	s = open(30 * time.Minute) // a (50 min) has outlived it; b (20), c (10) have not
	if got, want := outcomeKeys(t, s), []string{b.Fingerprint, c.Fingerprint}; !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen with a shorter retention: outcomes %q, want %q", got, want)
	}
	checkDoneIndex(t, s)
	s.retention = 15 * time.Minute
	record(s, ago(d, time.Minute)) // this write drops b (20 min)
	if got, want := outcomeKeys(t, s), []string{c.Fingerprint, d.Fingerprint}; !reflect.DeepEqual(got, want) {
		t.Errorf("after a write: outcomes %q, want %q", got, want)
	}
	checkDoneIndex(t, s)

	// A file from before the index, with a record too old to keep: the
	// index is built at open and that record dropped.
	e := ago(testOutcome(5), 2*time.Hour)
	err := s.db.Update(func(tx *bolt.Tx) error {
		mb := tx.Bucket([]byte("support"))
		v, err := encodeOutcome(e)
		if err != nil {
			return err
		}
		if err := mb.Bucket(bucketOutcomes).Put([]byte(e.Fingerprint), v); err != nil {
			return err
		}
		return mb.DeleteBucket(bucketDone)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(time.Hour)
	defer s.Close()
	if got, want := outcomeKeys(t, s), []string{c.Fingerprint, d.Fingerprint}; !reflect.DeepEqual(got, want) {
		t.Errorf("after indexing an old file: outcomes %q, want %q", got, want)
	}
	checkDoneIndex(t, s)
}

// outcomeKeys lists the fingerprints in the outcomes bucket of support.
func outcomeKeys(t *testing.T, s *boltStore) []string {
	t.Helper()
	return boltKeys(t, s, bucketOutcomes)[string(bucketOutcomes)]
}

// checkDoneIndex requires one done index entry per outcome, at its At, and
// no other entry.
func checkDoneIndex(t *testing.T, s *boltStore) {
	t.Helper()
	checkIndex(t, s, bucketDone, func(mb *bolt.Bucket, want map[string]bool) {
		mb.Bucket(bucketOutcomes).ForEach(func(k, v []byte) error {
			o, err := decodeOutcome(string(k), v)
			if err != nil {
				t.Errorf("outcome %s: %v", k, err)
			}
			want[string(doneKey(o.At, k))] = true
			return nil
		})
	})
}
