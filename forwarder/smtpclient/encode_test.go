package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/textproto"
	"testing"
)

// wireData is what the wire carries for in: the dataWriter's output, cut
// into writes of step octets, and the "\r\n.\r\n" DataCommand.Close sends.
func wireData(t *testing.T, in []byte, step int) []byte {
	t.Helper()
	var out bytes.Buffer
	d := newDataWriter(16) // a small buffer: many flushes
	d.reset(&out, true)
	for i := 0; i < len(in); i += step {
		p := in[i:min(i+step, len(in))]
		if n, err := d.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if err := d.finish(); err != nil {
		t.Fatal(err)
	}
	if d.n != int64(out.Len()) {
		t.Fatalf("counted %d octets, wrote %d", d.n, out.Len())
	}
	return append(out.Bytes(), "\r\n.\r\n"...)
}

// wireBDAT is what BDAT chunks carry for in, all chunks joined: the
// dataWriter's output, cut into writes of step octets, then its tail.
func wireBDAT(t *testing.T, in []byte, step int) []byte {
	t.Helper()
	var out bytes.Buffer
	d := newDataWriter(16)
	d.reset(&out, false)
	for i := 0; i < len(in); i += step {
		if _, err := d.Write(in[i:min(i+step, len(in))]); err != nil {
			t.Fatal(err)
		}
	}
	tail, err := d.tail()
	if err != nil {
		t.Fatal(err)
	}
	return append(out.Bytes(), tail...)
}

// bdatData is the reference for BDAT: the cleaned lines, the last one
// ending in CRLF.
func bdatData(in []byte) []byte {
	c := cleanData(in)
	if !bytes.HasSuffix(c, []byte("\r\n")) {
		c = append(c, '\r', '\n')
	}
	return c
}

// dotWriterData is the reference for DATA: cleanData, then net/textproto's
// DotWriter, which is what go-smtp's DataCommand writes through.
func dotWriterData(in []byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := textproto.NewWriter(bw).DotWriter()
	w.Write(cleanData(in))
	w.Close()
	return out.Bytes()
}

// cleanData is in with a bare LF made CRLF, a run of CRs before LF (or at
// the very end, left to end the line) dropped, any other CR made "?".
func cleanData(in []byte) []byte {
	var clean []byte
	for i := 0; i < len(in); i++ {
		switch b := in[i]; b {
		case '\r':
			k := i
			for k < len(in) && in[k] == '\r' {
				k++
			}
			switch {
			case k == len(in):
			case in[k] == '\n':
				clean = append(clean, '\r', '\n')
				k++
			default:
				clean = append(clean, bytes.Repeat([]byte("?"), k-i)...)
			}
			i = k - 1
		case '\n':
			clean = append(clean, '\r', '\n')
		default:
			clean = append(clean, b)
		}
	}
	return clean
}

func TestDataWriter(t *testing.T) {
	tests := []struct {
		name, in, want string // want: the wire, end of data included
	}{
		{"CRLF unchanged", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"no final line break", "a\r\nb", "a\r\nb\r\n.\r\n"},
		{"empty", "", "\r\n.\r\n"},
		{"bare LF", "a\nb\n", "a\r\nb\r\n.\r\n"},
		{"bare CR is no line break", "a\rb\r", "a?b\r\n.\r\n"},
		{"CRs ending a line are dropped", "a\r\r\nb\r\r\r\n", "a\r\nb\r\n.\r\n"},
		{"a run of bare CRs", "a\r\r\rb\r\n", "a???b\r\n.\r\n"},
		{"bare CR smuggling a field", "Subject: x\rX-Mailtriage-Released: yes\r\n", "Subject: x?X-Mailtriage-Released: yes\r\n.\r\n"},
		{"bare CR before the colon is no white space", "Content-Type\r: multipart/encrypted\r\n", "Content-Type?: multipart/encrypted\r\n.\r\n"},
		{"bare CR opening a line is no continuation", "A: 1\r\n\rContent-Type: x\r\n", "A: 1\r\n?Content-Type: x\r\n.\r\n"},
		{"bare CR before a dot", "a\r.b\r\n", "a?.b\r\n.\r\n"},
		{"CR line then a dot line", "\r\r\n.x\n", "\r\n..x\r\n.\r\n"},
		{"dot first", ".a\r\n", "..a\r\n.\r\n"},
		{"dot lines", "a\r\n.\r\n..b\n.", "a\r\n..\r\n...b\r\n..\r\n.\r\n"},
		{"dot inside a line", "a.b\r\n", "a.b\r\n.\r\n"},
		{"empty lines, a CR at the end", "\r\n\n\r", "\r\n\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for step := 1; step <= len(tt.in)+1; step++ {
				if got := wireData(t, []byte(tt.in), step); string(got) != tt.want {
					t.Fatalf("writes of %d: got %q, want %q", step, got, tt.want)
				}
			}
			if ref := dotWriterData([]byte(tt.in)); string(ref) != tt.want {
				t.Fatalf("the DotWriter reference gives %q, the table %q", ref, tt.want)
			}
			for step := 1; step <= len(tt.in)+1; step++ {
				if got, want := wireBDAT(t, []byte(tt.in), step), bdatData([]byte(tt.in)); !bytes.Equal(got, want) {
					t.Fatalf("BDAT, writes of %d: got %q, want %q", step, got, want)
				}
			}
		})
	}
}

// TestDataWriterReadFrom checks the io.Copy path and that a failing
// connection stops the copy with its error.
func TestDataWriterReadFrom(t *testing.T) {
	in := bytes.Repeat([]byte("line\n.dot\r\n"), 10000)
	var out bytes.Buffer
	d := newDataWriter(64 << 10)
	d.reset(&out, true)
	n, err := io.Copy(d, io.MultiReader(bytes.NewReader(in))) // hides WriterTo: ReadFrom is used
	if err != nil || n != int64(len(in)) {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	if err := d.finish(); err != nil {
		t.Fatal(err)
	}
	if got, want := append(out.Bytes(), "\r\n.\r\n"...), dotWriterData(in); !bytes.Equal(got, want) {
		t.Fatalf("ReadFrom output differs from the DotWriter reference (%d vs %d octets)", len(got), len(want))
	}

	broken := errors.New("connection reset")
	d.reset(failingWriter{broken}, true)
	if _, err := io.Copy(d, io.MultiReader(bytes.NewReader(in))); !errors.Is(err, broken) {
		t.Fatalf("copy to a failing connection: %v, want %v", err, broken)
	}
	if err := d.finish(); !errors.Is(err, broken) {
		t.Fatalf("finish after a failed write: %v", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// FuzzDataWriter checks the encoder against net/textproto's DotWriter,
// however the input is cut into writes.
func FuzzDataWriter(f *testing.F) {
	f.Add([]byte("a\r\nb\nc\rd"), uint8(3))
	f.Add([]byte("\r\r\n\n\r"), uint8(1))
	f.Add([]byte("a\r\r\rb\r\r\n\r.c\r"), uint8(2))
	f.Add([]byte(".\r\n..\n.\r.x\r\n"), uint8(2))
	f.Add([]byte("line one\r\nline two\r\n\r\n.dot\n"), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		step := int(cut%16) + 1
		if got, want := wireData(t, in, step), dotWriterData(in); !bytes.Equal(got, want) {
			t.Fatalf("DATA of %q (writes of %d): got %q, want %q", in, step, got, want)
		}
		if got, want := wireBDAT(t, in, step), bdatData(in); !bytes.Equal(got, want) {
			t.Fatalf("BDAT of %q (writes of %d): got %q, want %q", in, step, got, want)
		}
	})
}
