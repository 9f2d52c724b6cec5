package imaproute

import (
	"strings"
	"testing"
)

// FuzzParseMark: the HEADER.FIELDS block a server returns is data; a mark
// comes back only in its one shape, and a field the route wrote reads back
// as its mark.
func FuzzParseMark(f *testing.F) {
	for _, seed := range []string{
		HeaderFingerprint + ": " + fingerprintMark("a@example.com/0123456789abcdef") + "\r\n\r\n",
		"x-mailtriage-fingerprint:" + fingerprintMark("x") + "\r\n" + HeaderFingerprint + ": " + fingerprintMark("y") + "\r\n\r\n",
		HeaderFingerprint + ": " + strings.ToUpper(fingerprintMark("x")) + "\r\n",
		HeaderFingerprint + ":\r\n " + fingerprintMark("folded") + "\r\n",
		"\r\n",
		"",
	} {
		f.Add([]byte(seed), "fp")
	}
	f.Fuzz(func(t *testing.T, block []byte, fp string) {
		if mark, ok := parseMark(block); ok {
			if len(mark) != markLength || strings.Trim(mark, "0123456789abcdef") != "" {
				t.Fatalf("parseMark(%q) = %q, not 32 lower-case hex digits", block, mark)
			}
		}
		want := fingerprintMark(fp)
		written := HeaderFingerprint + ": " + want + "\r\n"
		if got, ok := parseMark([]byte(written + string(block))); !ok || got != want {
			t.Fatalf("the route's own field %q reads back as %q, %v", written, got, ok)
		}
	})
}
