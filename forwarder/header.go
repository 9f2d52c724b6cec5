package forwarder

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailtriage/mailtriage/analyzer"
)

// Header field names of the annotation, as DESIGN.md §3 spells them.
const (
	HeaderEncryption   = "X-Mailtriage-Encryption"
	HeaderTransportTLS = "X-Mailtriage-Transport-TLS"
	HeaderRelay        = "X-Mailtriage-Relay"
	HeaderThread       = "X-Mailtriage-Thread"
	HeaderReleased     = "X-Mailtriage-Released"
)

const (
	foldAt       = 78  // RFC 5322 §2.1.1: lines SHOULD be no more than 78 characters
	maxValueSize = 900 // octets of one sanitized value, well below the 998 limit
)

// sanitize makes message data safe as a header value or log text: control
// characters (CR and LF included), invalid UTF-8 and unprintable runes
// become spaces, runs of white space collapse to one, and the result is cut
// to maxValueSize octets.
func sanitize(s string) string {
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

// field formats one header field, folding the value at white space so that
// lines stay within 78 characters where the words allow (RFC 5322 §2.2.3).
// value must be sanitized.
func field(name, value string) string {
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte(':')
	n := b.Len()
	for i, w := range strings.Fields(value) {
		if i > 0 && n+1+len(w) > foldAt {
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

// relayValue is the X-Mailtriage-Relay value: the relay class, then for a
// relay service its name and, for private relays, whether Reply-To carries a
// reply token.
func relayValue(v analyzer.Verdict) string {
	if v.Relay == "" || v.Relay == analyzer.RelayNone {
		return string(analyzer.RelayNone)
	}
	s := string(v.Relay)
	if v.RelayService != "" {
		s += "; service=" + v.RelayService
	}
	if v.Relay == analyzer.RelayPrivate {
		if v.ReplyToTokenized {
			s += "; reply-to-tokenized=yes"
		} else {
			s += "; reply-to-tokenized=no"
		}
	}
	return s
}

// encryptionValue is the X-Mailtriage-Encryption value: the class and, when
// known, the scheme.
func encryptionValue(v analyzer.Verdict) string {
	s := string(v.Encryption)
	if s == "" {
		s = string(analyzer.EncryptionNone)
	}
	if v.EncryptionScheme != "" {
		s += "; scheme=" + v.EncryptionScheme
	}
	return s
}

// orDefault returns s, or def when s is empty.
func orDefault[T ~string](s T, def T) T {
	if s == "" {
		return def
	}
	return s
}

// Annotation returns the X-Mailtriage-* fields for v, sanitized and folded:
// what every route puts above the original (DESIGN.md §3).
func Annotation(v analyzer.Verdict, released bool) string {
	var b strings.Builder
	b.WriteString(field(HeaderEncryption, sanitize(encryptionValue(v))))
	b.WriteString(field(HeaderTransportTLS, sanitize(string(orDefault(v.TransportTLS, analyzer.TransportTLSUnknown)))))
	b.WriteString(field(HeaderRelay, sanitize(relayValue(v))))
	if key := strings.Map(msgIDRune, sanitize(v.ThreadKey)); key != "" {
		b.WriteString(field(HeaderThread, "<"+key+">"))
	}
	if released {
		b.WriteString(field(HeaderReleased, "yes"))
	}
	return b.String()
}

// msgIDRune drops the runes that cannot be inside a msg-id's angle
// brackets (RFC 5322 §3.6.4).
func msgIDRune(r rune) rune {
	if r == '<' || r == '>' || r == ' ' {
		return -1
	}
	return r
}

// messageID returns a fresh Message-ID: <32 hex digits@host> (RFC 5322 §3.6.4).
func messageID(host string) string {
	var r [16]byte
	rand.Read(r[:])
	return "<" + hex.EncodeToString(r[:]) + "@" + host + ">"
}

// date formats t as an RFC 5322 §3.3 date-time.
func date(t time.Time) string { return t.Format("Mon, 02 Jan 2006 15:04:05 -0700") }

// resent returns the Resent-* block of redirect mode (RFC 5322 §3.6.6).
func resent(from string, to []string, host string, now time.Time) string {
	return field("Resent-From", from) +
		field("Resent-To", strings.Join(to, ", ")) +
		field("Resent-Date", date(now)) +
		field("Resent-Message-ID", messageID(host))
}

// encodeSubject sanitizes a decoded subject and encodes it as RFC 2047
// encoded words when it is not ASCII.
func encodeSubject(s string) string {
	s = sanitize(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// summary is the text part of attach mode: the verdict in a few lines.
func summary(v analyzer.Verdict, released bool) string {
	var b strings.Builder
	line := func(label, value string) {
		if value = sanitize(value); value != "" {
			fmt.Fprintf(&b, "%-15s %s\r\n", label+":", value)
		}
	}
	b.WriteString("mailtriage forwards the attached message unchanged.\r\n\r\n")
	line("Message-ID", v.MessageID)
	line("From", v.From)
	line("Subject", v.Subject)
	line("Encryption", encryptionValue(v))
	line("Transport TLS", string(orDefault(v.TransportTLS, analyzer.TransportTLSUnknown)))
	line("Relay", relayValue(v))
	line("Thread", v.ThreadKey)
	line("Class", string(v.Class))
	if released {
		line("Released", "yes, by a reviewer")
	}
	if len(v.Reasons) > 0 {
		b.WriteString("Reasons:\r\n")
		for _, r := range v.Reasons {
			fmt.Fprintf(&b, "  - %s\r\n", sanitize(r))
		}
	}
	return b.String()
}
