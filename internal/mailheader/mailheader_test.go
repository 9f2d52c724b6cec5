package mailheader

import (
	"strings"
	"testing"
)

func TestField(t *testing.T) {
	long := strings.Repeat("word ", 40)
	tests := []struct {
		name, field, value, want string
	}{
		{"short", "X-A", "b", "X-A: b\r\n"},
		{"folded at white space", "X-A", strings.TrimSpace(long),
			"X-A:" + strings.Repeat(" word", 14) + "\r\n" + strings.Repeat(" word", 15) + "\r\n" + strings.Repeat(" word", 11) + "\r\n"},
		{"one long word stays whole", "X-A", strings.Repeat("x", 100), "X-A: " + strings.Repeat("x", 100) + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Field(tt.field, tt.value); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a\r\nBcc: x", "a Bcc: x"},
		{"\x00\x07tab\there\x7f", "tab here"},
		{"  spaced   out  ", "spaced out"},
		{"bad \xff utf8", "bad utf8"},
		{"Grüße\u0085\u202e", "Grüße"},
		{strings.Repeat("é", 600), strings.Repeat("é", 450)},
	}
	for _, tt := range tests {
		if got := Sanitize(tt.in); got != tt.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzField checks that no value, however hostile, yields a header field
// with a bare CR or LF, a line break not followed by white space, or a line
// over 998 octets.
func FuzzField(f *testing.F) {
	for _, s := range []string{"", "a\r\nBcc: x", strings.Repeat("ab ", 400), "\xff\xfe\r\r\n\n", "é\u2028x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		out := Field("X-Mailtriage-Thread", Sanitize(value))
		if !strings.HasSuffix(out, "\r\n") {
			t.Fatalf("no final CRLF: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
		for i, l := range lines {
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("bare CR or LF in %q", out)
			}
			if i > 0 && !strings.HasPrefix(l, " ") {
				t.Fatalf("continuation line without white space in %q", out)
			}
			if len(l) > 998 {
				t.Fatalf("line of %d octets", len(l))
			}
		}
	})
}
