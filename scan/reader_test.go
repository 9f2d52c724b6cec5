package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
)

// readMbox returns every message of the mbox in data.
func readMbox(data string) ([]string, error) {
	mr := NewMboxReader(strings.NewReader(data))
	var msgs []string
	for {
		r, err := mr.Next()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, string(b))
	}
}

func TestMboxReader(t *testing.T) {
	long := strings.Repeat("x", 3*mboxBufferSize)
	for _, tc := range []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "empty stream has no message", in: "", want: nil},
		{name: "one message", in: "From a@b Mon Nov  2 08:00:00 2026\nSubject: x\n\nbody\n",
			want: []string{"Subject: x\n\nbody\n"}},
		{name: "empty line before a From_ line belongs to the separator",
			in:   "From a@b Mon Nov  2 08:00:00 2026\nSubject: 1\n\none\n\nFrom c@d Mon Nov  2 08:01:00 2026\nSubject: 2\n\ntwo\n\n",
			want: []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n"}},
		{name: "mboxrd quoting loses one level",
			in:   "From a@b Mon Nov  2 08:00:00 2026\nSubject: q\n\n>From here on\n>>From the archive\n> From is not quoting\n",
			want: []string{"Subject: q\n\nFrom here on\n>From the archive\n> From is not quoting\n"}},
		{name: "From inside a paragraph does not separate",
			in:   "From a@b Mon Nov  2 08:00:00 2026\nSubject: p\n\nline\nFrom me to you\n",
			want: []string{"Subject: p\n\nline\nFrom me to you\n"}},
		{name: "CRLF mbox keeps CRLF and splits",
			in:   "From a@b Mon Nov  2 08:00:00 2026\r\nSubject: 1\r\n\r\none\r\n\r\nFrom c@d Mon Nov  2 08:01:00 2026\r\nSubject: 2\r\n\r\n>From two\r\n",
			want: []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\nFrom two\r\n"}},
		{name: "several empty lines: only the last one is the separator's",
			in:   "From a@b Mon Nov  2 08:00:00 2026\nS: 1\n\nx\n\n\n\nFrom c@d Mon Nov  2 08:01:00 2026\nS: 2\n",
			want: []string{"S: 1\n\nx\n\n\n", "S: 2\n"}},
		{name: "no final newline", in: "From a@b Mon Nov  2 08:00:00 2026\nS: 1\n\nend",
			want: []string{"S: 1\n\nend"}},
		{name: "lines longer than the buffer pass through",
			in:   "From a@b Mon Nov  2 08:00:00 2026\nX-Long: " + long + "\n\n>From " + long + "\n",
			want: []string{"X-Long: " + long + "\n\nFrom " + long + "\n"}},
		{name: "a long From_ line is skipped whole",
			in:   "From " + long + "\nS: 1\n",
			want: []string{"S: 1\n"}},
		{name: "not an mbox", in: "Subject: plain message\n\nbody\n", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readMbox(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("messages\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestMboxReaderSkipsUnread reads only the first bytes of each message.
func TestMboxReaderSkipsUnread(t *testing.T) {
	in := "From a@b Mon Nov  2 08:00:00 2026\nS: 1\n\none\n\nFrom c@d Mon Nov  2 08:01:00 2026\nS: 2\n\ntwo\n"
	mr := NewMboxReader(strings.NewReader(in))
	var firsts []string
	for {
		r, err := mr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(r, b); err != nil {
			t.Fatal(err)
		}
		firsts = append(firsts, string(b))
	}
	if want := []string{"S: 1", "S: 2"}; !slices.Equal(firsts, want) {
		t.Errorf("got %q, want %q", firsts, want)
	}
}

// writeFiles creates files under dir; a name ending in "/" makes a folder.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRunInputs(t *testing.T) {
	msg := func(id string) string {
		return "From: a@customer.example\nSubject: " + id + "\nMessage-ID: <" + id + "@test>\n\nbody " + id + "\n"
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"tree/a.eml":           msg("a"),
		"tree/sub/b.eml":       strings.ReplaceAll(msg("b"), "\n", "\r\n"),
		"tree/notes.txt":       "not a message",
		"tree/box.mbox":        "From x Mon Nov  2 08:00:00 2026\n" + msg("m1") + "\nFrom y Mon Nov  2 08:01:00 2026\n" + msg("m2"),
		"tree/empty.mbox":      "",
		"tree/junk.mbox":       "Subject: not an mbox\n\nbody\n",
		"tree/md/cur/1.host:2": msg("c1"),
		"tree/md/new/2.host":   msg("n1"),
		"tree/md/new/.hidden":  msg("hidden"),
		"tree/md/tmp/3.host":   msg("t1"),
		"single.eml":           msg("s"),
		"maildir/cur/":         "",
		"maildir/new/9.host":   msg("n9"),
		"maildir/tmp/":         "",
	})
	paths := []string{
		filepath.Join(dir, "tree"),
		filepath.Join(dir, "missing.eml"),
		filepath.Join(dir, "single.eml"),
		filepath.Join(dir, "maildir"),
	}
	var out bytes.Buffer
	sum, err := Run(context.Background(), analyzer.New(nil), analyzer.DefaultPolicy(), paths, true, &out)
	for _, name := range []string{"missing.eml", "junk.mbox"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v, want one naming %s", err, name)
		}
	}
	if sum.Failed != 2 {
		t.Errorf("Failed = %d, want 2", sum.Failed)
	}

	var got []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		rel, _ := filepath.Rel(dir, r.File)
		got = append(got, filepath.ToSlash(rel)+" "+r.MessageID)
	}
	want := []string{
		"tree/a.eml a@test",
		"tree/box.mbox#1 m1@test",
		"tree/box.mbox#2 m2@test",
		"tree/md/cur/1.host:2 c1@test",
		"tree/md/new/2.host n1@test",
		"tree/sub/b.eml b@test",
		"single.eml s@test",
		"maildir/new/9.host n9@test",
	}
	if !slices.Equal(got, want) {
		t.Errorf("messages\n got %q\nwant %q", got, want)
	}
	if sum.Messages != len(want) {
		t.Errorf("Messages = %d, want %d", sum.Messages, len(want))
	}
}

// TestRunCancelled stops at once when the context is done.
func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	_, err := Run(ctx, analyzer.New(nil), analyzer.DefaultPolicy(), []string{corpusDir}, true, &out)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes after cancellation", out.Len())
	}
}

func TestCell(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 10, "-"},
		{"short", 10, "short"},
		{"tab\there\r\nnewline", 0, "tab here  newline"},
		{"Rückfrage zur Bestellung", 10, "Rückfrage…"},
	} {
		if got := cell(tc.in, tc.max); got != tc.want {
			t.Errorf("cell(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func FuzzMboxReader(f *testing.F) {
	f.Add([]byte("From a@b Mon Nov  2 08:00:00 2026\nS: 1\n\n>From x\n\nFrom c\nS: 2\n"))
	f.Add([]byte("From \r\n\r\nFrom \r\n>>From \r\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		mr := NewMboxReader(bytes.NewReader(data))
		total := 0
		for i := 0; ; i++ {
			r, err := mr.Next()
			if err != nil {
				break
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read message %d: %v", i, err)
			}
			total += len(b)
			if i > len(data) {
				t.Fatalf("more messages than input bytes")
			}
		}
		if total > len(data) {
			t.Fatalf("read %d bytes from %d input bytes", total, len(data))
		}
	})
}

// BenchmarkMboxReader reads a 16 MiB mbox of 1 MiB messages.
func BenchmarkMboxReader(b *testing.B) {
	body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\n", (1<<20)/73)
	var mbox bytes.Buffer
	for i := 0; i < 16; i++ {
		mbox.WriteString("From a@b Mon Nov  2 08:00:00 2026\nSubject: big\n\n" + body + "\n")
	}
	data := mbox.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		mr := NewMboxReader(bytes.NewReader(data))
		for {
			r, err := mr.Next()
			if err != nil {
				break
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
