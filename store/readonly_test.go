package store

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
)

// TestBoltReadOnly opens a state file as `run --dry-run` does: it reads
// what is there, refuses every write, and leaves the file byte for byte as
// it was, though the file holds a lease and expired thread entries that a
// read-write open deletes.
func TestBoltReadOnly(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state.db")
	rw, err := Open(ctx, "file:"+path, Options{ThreadTTL: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	want := MailboxState{UIDValidity: 7, HighWater: 42}
	if err := rw.SetMailboxState(ctx, "support", want); err != nil {
		t.Fatal(err)
	}
	if err := rw.NoteThreads(ctx, "support", []ThreadNote{{MessageID: "a@example.com", ThreadKey: "a@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := rw.AcquireLease(ctx, "support", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the thread entries expire
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	ro, err := Open(ctx, "file:"+path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open read-only: %v", err)
	}
	got, err := ro.MailboxState(ctx, "support")
	if err != nil || got != want {
		t.Errorf("MailboxState = %+v, %v; want %+v", got, err, want)
	}
	for _, w := range []struct {
		name string
		err  error
	}{
		{"SetMailboxState", ro.SetMailboxState(ctx, "support", MailboxState{UIDValidity: 8})},
		{"RecordOutcomes", ro.RecordOutcomes(ctx, "support", []Outcome{{Fingerprint: "f", Action: analyzer.ActionForwarded}})},
		{"NoteThreads", ro.NoteThreads(ctx, "support", []ThreadNote{{MessageID: "b@example.com", ThreadKey: "b@example.com"}})},
	} {
		if w.err == nil {
			t.Errorf("%s on a read-only store succeeded", w.name)
		}
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("opening the state file read-only changed it")
	}

	missing := filepath.Join(t.TempDir(), "no", "state.db")
	if _, err := Open(ctx, "file:"+missing, Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only open of a missing file made its directory (stat: %v)", err)
	}
}
