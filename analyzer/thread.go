package analyzer

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

var msgIDRe = regexp.MustCompile(`<([^<>\s]+)>`)

// messageIDs extracts the message IDs of a Message-ID, In-Reply-To or
// References field (RFC 5322 section 3.6.4), without angle brackets. A bare
// ID without brackets (seen in the wild) is taken when it is the whole value.
func messageIDs(v string) []string {
	var ids []string
	for _, m := range msgIDRe.FindAllStringSubmatch(v, -1) {
		ids = append(ids, m[1])
	}
	if len(ids) == 0 {
		if t := strings.TrimSpace(v); t != "" && !strings.ContainsAny(t, " \t<>") && strings.Contains(t, "@") {
			ids = append(ids, t)
		}
	}
	return ids
}

// replyPrefix matches one reply or forward prefix in the languages mail
// clients use: Re, Fwd, Fw, AW, WG, SV, VS, Antw, Réf., TR, RIF, Odp, Enc,
// 回复, 转发…, with an optional counter (RE[2]:, Re(3):, Re^2:).
var replyPrefix = regexp.MustCompile(`(?i)^\s*(re|fwd?|aw|wg|sv|vs|antw|r[ée]f|tr|rif|odp|enc|res|ynt|vb|atb|sv|回复|回覆|答复|转发|轉寄|转寄)\.?\s*(\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]\s*`)

// normalizeSubject strips repeated reply and forward prefixes and folds
// white space.
func normalizeSubject(s string) string {
	for {
		loc := replyPrefix.FindStringIndex(s)
		if loc == nil {
			break
		}
		s = s[loc[1]:]
	}
	return strings.Join(strings.Fields(s), " ")
}

// threadKey is the root Message-ID as far as the headers tell: the first
// References ID, else In-Reply-To, else the message's own ID.
func threadKey(messageID string, inReplyTo, references []string) string {
	switch {
	case len(references) > 0:
		return references[0]
	case len(inReplyTo) > 0:
		return inReplyTo[0]
	default:
		return messageID
	}
}

// fingerprint identifies a message across UID changes: its Message-ID plus a
// hash of Date, From, To, Cc and Subject and of what its body shows (see
// bodyShape); without a Message-ID, a hash of those and of every header
// field (names and values with white space folded, so that a server
// refolding lines does not change it). Re-reading the same message (after a
// crash, a UIDVALIDITY reset, a restored copy) gives the same fingerprint;
// a different message that copies the identifying headers does not.
func fingerprint(m *Message, messageID string) string {
	h := sha256.New()
	for _, name := range []string{"Date", "From", "To", "Cc", "Subject"} {
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(strings.Join(strings.Fields(m.Header.Get(name)), " ")))
		h.Write([]byte{0})
	}
	h.Write(bodyShape(make([]byte, 0, 512), m))
	if messageID != "" {
		return messageID + "/" + hex.EncodeToString(h.Sum(nil))[:16]
	}
	for _, f := range m.Header {
		h.Write([]byte(strings.ToLower(f.Name)))
		h.Write([]byte{0})
		h.Write([]byte(strings.Join(strings.Fields(f.Value), " ")))
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// bodyShape appends to b what tells two bodies apart and both constructors see
// alike: each part's path, media type, the smime-type and protocol
// parameters, disposition and transfer encoding, and its decoded sample.
// Part sizes and file names are left out: servers count sizes their own way
// and decode names their own way. Of a message that did not parse, the
// problems stand for the body (the tree a server makes of broken MIME need
// not be the raw parser's), except a missing close delimiter, which only
// the raw stream shows: the parts found so far are the same on both sides.
func bodyShape(b []byte, m *Message) []byte {
	if len(m.Problems) > m.unclosed {
		for _, p := range m.Problems {
			b = append(append(b, p...), 0)
		}
		return b
	}
	m.Walk(func(p *Part, _ int) {
		for _, s := range []string{p.Path, p.Type, p.Params["smime-type"], p.Params["protocol"], p.Disposition, p.Encoding} {
			b = append(append(b, s...), 0)
		}
		if p.Sampled {
			sum := sha256.Sum256(p.Sample)
			b = append(b, sum[:]...)
		}
		b = append(b, 1)
	})
	return b
}
