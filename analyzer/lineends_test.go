package analyzer

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"
)

// TestHeaderLineEnds: a header line holding a bare CR or a NUL is judged
// unparseable, by FromRaw and FromIMAP alike, since readers of the
// forwarded copy would not all split it into the fields judged here. CRs
// that only end a line, and any in the body, change nothing.
func TestHeaderLineEnds(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		reason string // "" when the message stays parseable
	}{
		{"bare CR smuggling fields into Subject",
			"From: a@example.com\r\nSubject: hi\rX-Mailtriage-Released: yes\rContent-Type: multipart/encrypted; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
			"message: header line 2 holds a bare CR, a line break to some readers and none to others"},
		{"bare CR before the colon", "From: a@example.com\r\nContent-Type\r: multipart/encrypted; boundary=b\r\n\r\nx\r\n",
			"message: header line 2 holds a bare CR, a line break to some readers and none to others"},
		{"bare CR opening a line", "From: a@example.com\r\nContent-Type:\r\n\rmultipart/encrypted; boundary=b\r\n\r\nx\r\n",
			"message: header line 3 holds a bare CR, a line break to some readers and none to others"},
		{"LF-only lines with a bare CR", "From: a@example.com\nSubject: a\rb\n\nx\n",
			"message: header line 2 holds a bare CR, a line break to some readers and none to others"},
		{"NUL in a value", "From: a@example.com\r\nSubject: a\x00Content-Type: multipart/encrypted\r\n\r\nx\r\n",
			"message: header line 2 holds a NUL octet"},
		{"CR CR LF line ends", "From: a@example.com\r\r\nSubject: hi\r\r\n\r\nx\r\n", ""},
		{"a line of CRs alone", "From: a@example.com\r\n\r\r\nContent-Type: text/html\r\n\r\nx\r\n",
			"message: header line 2 is empty but for CRs, the end of the header to some readers and not to others"},
		{"bare CR in the body", "From: a@example.com\r\nSubject: hi\r\n\r\nold\rmac\r\n", ""},
		{"plain LF lines", "From: a@example.com\nSubject: hi\n\nx\n", ""},
	}
	an := New(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := FromRaw(strings.NewReader(tt.raw))
			if err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(tt.raw, "\n\n")
			if h, _, ok := strings.Cut(tt.raw, "\r\n\r\n"); ok {
				header = h + "\r\n\r\n"
			}
			im, err := FromIMAP([]byte(header), &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}, nil, int64(len(tt.raw)))
			if err != nil {
				t.Fatal(err)
			}
			for name, m := range map[string]*Message{"FromRaw": raw, "FromIMAP": im} {
				v := an.Classify(m, DefaultPolicy())
				unparseable := v.Encryption == EncryptionUnparseable
				if unparseable != (tt.reason != "") || tt.reason != "" && (len(v.Reasons) == 0 || v.Reasons[0] != tt.reason) {
					t.Errorf("%s: %s %q, want reason %q", name, v.Encryption, v.Reasons, tt.reason)
				}
			}
		})
	}
}

// FuzzCloseCheck: whatever the bytes and however they are cut into reads,
// CloseCheck passes them through unchanged and reports a truncated
// multipart exactly when no line of the input starts with the root's close
// delimiter.
func FuzzCloseCheck(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\nhi\r\n--b1--\r\n"), "b1", uint8(0))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\nhi\r--b1--\r\n"), "b1", uint8(1))
	f.Add([]byte("\n--b--"), "b", uint8(5))
	f.Add([]byte("--a--\n--a-"), "a", uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, boundary string, cut uint8) {
		bs := &imap.BodyStructureMultiPart{Subtype: "mixed", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": boundary}}}
		var src io.Reader = bytes.NewReader(body)
		if cut%2 == 1 {
			src = iotest.OneByteReader(src)
		} else if cut > 0 {
			src = iotest.HalfReader(src)
		}
		got, err := io.ReadAll(CloseCheck(src, bs))
		if !bytes.Equal(got, body) {
			t.Fatalf("CloseCheck changed the body: %q -> %q", body, got)
		}
		closed := boundary == "" || bytes.Contains(body, []byte("\n--"+boundary+"--"))
		var te *TruncationError
		switch {
		case closed && err != nil:
			t.Fatalf("closed message (boundary %q) read with %v", boundary, err)
		case !closed && (!errors.As(err, &te) || te.Type != "multipart/mixed"):
			t.Fatalf("unclosed message (boundary %q) read with %v, want a TruncationError", boundary, err)
		}
	})
}
