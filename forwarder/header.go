package forwarder

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// Header field names of the annotation, as DESIGN.md §3 spells them.
const (
	HeaderEncryption   = "X-Mailtriage-Encryption"
	HeaderTransportTLS = "X-Mailtriage-Transport-TLS"
	HeaderRelay        = "X-Mailtriage-Relay"
	HeaderThread       = "X-Mailtriage-Thread"
	HeaderReleased     = "X-Mailtriage-Released"
)

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
	b.WriteString(mailheader.Field(HeaderEncryption, mailheader.Sanitize(encryptionValue(v))))
	b.WriteString(mailheader.Field(HeaderTransportTLS, mailheader.Sanitize(string(orDefault(v.TransportTLS, analyzer.TransportTLSUnknown)))))
	b.WriteString(mailheader.Field(HeaderRelay, mailheader.Sanitize(relayValue(v))))
	if key := strings.Map(mailheader.MsgIDRune, mailheader.Sanitize(v.ThreadKey)); key != "" {
		b.WriteString(mailheader.Field(HeaderThread, "<"+key+">"))
	}
	if released {
		b.WriteString(mailheader.Field(HeaderReleased, "yes"))
	}
	return b.String()
}

// resent returns the Resent-* block of redirect mode (RFC 5322 §3.6.6).
func resent(from string, to []string, host string, now time.Time) string {
	return mailheader.Field("Resent-From", from) +
		mailheader.Field("Resent-To", strings.Join(to, ", ")) +
		mailheader.Field("Resent-Date", mailheader.Date(now)) +
		mailheader.Field("Resent-Message-ID", mailheader.MessageID(host))
}

// summary is the text part of attach mode: the verdict in a few lines.
func summary(v analyzer.Verdict, released bool) string {
	var b strings.Builder
	line := func(label, value string) {
		if value = mailheader.Sanitize(value); value != "" {
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
			fmt.Fprintf(&b, "  - %s\r\n", mailheader.Sanitize(r))
		}
	}
	return b.String()
}
