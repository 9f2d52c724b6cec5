package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

const testLimit = 64 << 10

// pattern returns n octets that differ along the way, so that a chunk out
// of place shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// entries lists dir, for the temporary files left in it.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func readAll(t *testing.T, b *Buffer) []byte {
	t.Helper()
	got, err := io.ReadAll(b.Reader())
	if err != nil {
		t.Fatalf("read buffer: %v", err)
	}
	return got
}

func TestFillRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		size  int
		spill bool // the body goes to a file
	}{
		{"empty body", 0, false},
		{"one octet", 1, false},
		{"one under the limit", testLimit - 1, false},
		{"exactly the limit stays in memory", testLimit, false},
		{"one over the limit spills", testLimit + 1, true},
		{"a 25 MB attachment spills", 25 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := pattern(tc.size)
			b, err := New(testLimit, dir).Fill(iotest.HalfReader(bytes.NewReader(want)))
			if err != nil {
				t.Fatalf("Fill: %v", err)
			}
			defer b.Close()
			if b.Size() != int64(tc.size) {
				t.Errorf("Size = %d, want %d", b.Size(), tc.size)
			}
			if spilled := b.file != nil; spilled != tc.spill {
				t.Errorf("spilled = %v, want %v", spilled, tc.spill)
			}
			for i := range 2 { // each Reader starts from the first octet
				if got := readAll(t, b); !bytes.Equal(got, want) {
					t.Fatalf("read %d: %d octets differ from the %d written", i, len(got), len(want))
				}
			}
			if names := entries(t, dir); len(names) != 0 {
				t.Errorf("temporary file still linked while in use: %v", names)
			}
		})
	}
}

// A body over the limit lands in a file only its owner can read.
func TestSpillFileMode(t *testing.T) {
	b, err := New(0, t.TempDir()).Fill(strings.NewReader("x"))
	if err != nil {
		t.Fatalf("Fill: %v", err)
	}
	defer b.Close()
	fi, err := b.file.Stat()
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("temporary file mode %v, want 0600", perm)
	}
}

// failingReader gives n octets, then fails.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	n := min(len(p), r.n)
	clear(p[:n])
	r.n -= n
	return n, nil
}

// A source that fails returns its error, wrapped as a read error, and
// leaves neither a buffer nor a file.
func TestFillSourceFails(t *testing.T) {
	cut := errors.New("connection reset mid-literal")
	for _, n := range []int{0, testLimit / 2, testLimit, 3 * testLimit} {
		dir := t.TempDir()
		b, err := New(testLimit, dir).Fill(&failingReader{n: n, err: cut})
		if !errors.Is(err, cut) || !strings.HasPrefix(err.Error(), "spool: read source: ") {
			t.Errorf("after %d octets: err = %v, want the source's, as a read error", n, err)
		}
		if b != nil {
			t.Errorf("after %d octets: a buffer came back with the error", n)
		}
		if names := entries(t, dir); len(names) != 0 {
			t.Errorf("after %d octets: temporary files left: %v", n, names)
		}
	}
}

// Trouble with the temporary file is not the source's.
func TestFillFileFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	_, err := New(testLimit, missing).Fill(bytes.NewReader(pattern(testLimit + 1)))
	if err == nil || strings.Contains(err.Error(), "read source") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want a temporary file error", err)
	}
}

// Close removes the file (also where it could not be unlinked at once),
// may be called twice, and the pool's memory is reused.
func TestCloseRemovesFile(t *testing.T) {
	dir := t.TempDir()
	b, err := New(testLimit, dir).Fill(bytes.NewReader(pattern(testLimit + 1)))
	if err != nil {
		t.Fatalf("Fill: %v", err)
	}
	f := b.file
	b.name = f.Name() // as if the system had refused the early unlink
	if err := os.WriteFile(b.name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("files left after Close: %v", names)
	}
	if _, err := f.Stat(); err == nil {
		t.Error("the file is still open after Close")
	}
}

// Filling and closing 25 MB bodies over and over allocates little: the
// memory part is reused and the rest is on disk.
func TestMemoryFlat(t *testing.T) {
	p := New(DefaultMemLimit, t.TempDir())
	src := pattern(25 << 20)
	fill := func() {
		b, err := p.Fill(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("Fill: %v", err)
		}
		if _, err := io.Copy(io.Discard, b.Reader()); err != nil {
			t.Fatalf("read: %v", err)
		}
		b.Close()
	}
	fill() // the pool's chunks exist from here on
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const rounds = 4
	for range rounds {
		fill()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / rounds; per > 1<<20 {
		t.Errorf("%d octets allocated per 25 MB body, want well under the body (1 MiB at most)", per)
	}
}

// Whatever the octets and the limit, what comes out is what went in.
func FuzzSpool(f *testing.F) {
	f.Add([]byte(""), uint16(0))
	f.Add([]byte("From: a\r\n\r\nbody\r\n"), uint16(4))
	f.Add(pattern(3*chunkSize+5), uint16(chunkSize+1))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		dir := t.TempDir()
		b, err := New(int64(limit), dir).Fill(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("Fill: %v", err)
		}
		if b.Size() != int64(len(data)) {
			t.Fatalf("Size = %d, want %d", b.Size(), len(data))
		}
		if got := readAll(t, b); !bytes.Equal(got, data) {
			t.Fatalf("round trip changed the body (limit %d, %d octets)", limit, len(data))
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if names := entries(t, dir); len(names) != 0 {
			t.Fatalf("files left: %v", names)
		}
	})
}
