package analyzer

import (
	"strings"
	"testing"
)

// wordsReference is words as first written, rune by rune: the fast path
// must give the same.
func wordsReference(text string) string {
	var b strings.Builder
	b.WriteByte(' ')
	space := true
	for _, r := range strings.ToLower(text) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 0x7f && r != '\u00a0' && r != '\ufffd' {
			b.WriteRune(r)
			space = false
		} else if !space {
			b.WriteByte(' ')
			space = true
		}
	}
	if !space {
		b.WriteByte(' ')
	}
	return b.String()
}

func TestWords(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", " "},
		{"Read the Message!", " read the message "},
		{"  Grüße,\u00a0KÄSE\tñ ", " grüße käse ñ "},
		{"Office 365: message-encryption", " office 365 message encryption "},
		{"bad \xff utf8", " bad utf8 "},
		{"\u212a elvin", " k elvin "}, // KELVIN SIGN lower-cases to ASCII k
	}
	for _, tt := range tests {
		if got := words(tt.in); got != tt.want {
			t.Errorf("words(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzWords(f *testing.F) {
	for _, s := range []string{"Read the Message!", "Grüße\u00a0KÄSE", "\xff\xfe\u212a", "a\ufffdb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if got, want := words(text), wordsReference(text); got != want {
			t.Fatalf("words(%q) = %q, the rune-by-rune reference %q", text, got, want)
		}
	})
}

// TestPhraseIndex: a phrase is found only whole, in order and adjacent;
// the vocabulary filter never hides one that is there.
func TestPhraseIndex(t *testing.T) {
	x := vendorPhrases
	if len(x.vocab) > 64 {
		t.Logf("the vendor phrases have %d words; those past 64 are not filtered on", len(x.vocab))
	}
	tests := []struct {
		text, phrase string
		want         bool
	}{
		{"Please read the message in the portal", "read the message", true},
		{"the message: read it", "read the message", false},
		{"You have a Secure-Message waiting", "secure message", true},
		{"insecure message", "secure message", false},
		{"Secured by Zix.", "secured by zix", true},
		{"zixencrypt", "zix", false},
	}
	for _, tt := range tests {
		w := words(tt.text)
		got := x.in(vendorText{words: w, vocab: x.present(w)}, tt.phrase)
		if got != tt.want {
			t.Errorf("%q in %q = %v, want %v", tt.phrase, tt.text, got, tt.want)
		}
		if plain := strings.Contains(w, " "+tt.phrase+" "); plain != got {
			t.Errorf("%q in %q: the index says %v, a plain search %v", tt.phrase, tt.text, got, plain)
		}
	}
}
