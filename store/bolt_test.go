package store

import (
	"errors"
	"path/filepath"
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
