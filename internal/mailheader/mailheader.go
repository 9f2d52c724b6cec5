// Package mailheader writes RFC 5322 header fields from untrusted data:
// values sanitized (no CR, LF or control characters from message data),
// folded at white space, subjects as RFC 2047 encoded words, dates and
// Message-IDs. The forwarder's annotation and the sender notices use it.
//
// It never lets message data end a header line or start a new field.
package mailheader

import (
	"crypto/rand"
	"encoding/hex"
	"mime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Line lengths of RFC 5322.
const (
	FoldAt       = 78  // RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters
	maxValueSize = 900 // octets of one sanitized value, well below the 998 limit
)

// Sanitize makes message data safe as a header value or log text: control
// characters (CR and LF included), invalid UTF-8 and unprintable runes
// become spaces, runs of white space collapse to one, and the result is cut
// to maxValueSize octets.
func Sanitize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > maxValueSize {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Field formats one header field, folding the value at white space so that
// lines stay within 78 characters where the words allow (RFC 5322 §2.2.3).
// value must be sanitized.
func Field(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	n := b.Len()
	for i, w := range strings.Fields(value) {
		if i > 0 && n+1+len(w) > FoldAt {
			b.WriteString("\r\n")
			n = 0
		}
		b.WriteByte(' ')
		b.WriteString(w)
		n += 1 + len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// EncodeText sanitizes a decoded subject and encodes it as RFC 2047
// encoded words when it is not ASCII.
func EncodeText(s string) string {
	s = Sanitize(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// Date formats t as an RFC 5322 §3.3 date-time.
func Date(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") }

// MessageID returns a fresh Message-ID: <32 hex digits@host> (RFC 5322 §3.6.4).
func MessageID(host string) string {
	var r [16]byte
	rand.Read(r[:])
	return "<" + hex.EncodeToString(r[:]) + "@" + host + ">"
}

// MsgIDRune drops the runes that cannot be inside a msg-id's angle
// brackets (RFC 5322 §3.6.4).
func MsgIDRune(r rune) rune {
	if r == '<' || r == '>' || r == ' ' {
		return -1
	}
	return r
}
