package analyzer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// evidenceKind is the kind of a piece of vendor evidence. A vendor rule
// matches on one strong piece or on two pieces of different kinds, so that a
// customer who merely mentions a vendor is not flagged.
type evidenceKind string

const (
	byHeader     evidenceKind = "header"     // a header field name, optionally with a value
	byAttachment evidenceKind = "attachment" // a file name pattern (path.Match, lower-case)
	byType       evidenceKind = "type"       // a media type
	byPhrase     evidenceKind = "phrase"     // words in a text sample (case-insensitive)
	byLink       evidenceKind = "link"       // a URL fragment in a text sample
)

// evidence is one thing to look for.
type evidence struct {
	kind   evidenceKind
	value  string // header "Name" or "Name: value substring"; pattern; phrase
	strong bool   // enough on its own
}

// vendorRule recognizes the notice mails of one secure-mail portal: the
// message itself only points at the real, encrypted content.
type vendorRule struct {
	scheme   string
	evidence []evidence
}

// vendorRules is the table of proprietary encryption. Sources:
//   - Microsoft Purview / OME: rights-protected mail carries message.rpmsg
//     or message_v2.rpmsg as application/x-microsoft-rpmsg-message (a real
//     Purview message from an onmicrosoft.com tenant, received at
//     Outlook.com, carries message_v2.rpmsg beside a notice linking to
//     outlook.office365.com/Encryption and "Read the message"); OME
//     notices carry message.html and "Read the message" (Microsoft Learn
//     "Send, view, and reply to encrypted messages"); Exchange stamps
//     X-MS-Exchange-OMEMessageEncrypted: true (Exchange transport E4E agent).
//   - Cisco Secure Email Encryption / Registered Envelope: attachment
//     securedoc_<date>T<time>.html, "the attached file named Securedoc.html
//     contains the encrypted message" (Cisco Registered Envelope FAQ on
//     res.cisco.com/websafe and its customer portals).
//   - Proofpoint Encryption: the SecureMessageAtt.html attachment holds the
//     encrypted body and attachments, and the portal button reads "Click to
//     read message" (University of Rochester "Open SecureMail messages";
//     nj.gov security FAQ "Receiving Encrypted Email"). The attachment is
//     enough on its own.
//   - Zix: notices link to the ZixMessage Center at zixmessagecenter.com or
//     a zixmail.net portal (zixhelp.com ZixDirect guide; Zix user awareness
//     pages). Mail Zix delivered over TLS is readable and only says "This
//     message was secured by Zixcorp" (PMHCC "Recipient Experience"), so a
//     zixcorp.com footer link is no evidence.
//   - Virtru: "Unlock Message" or "View Files" links to secure.virtru.com
//     (Virtru support, "Accessing the Secure Content"); protected files are
//     TDF3 HTML wrappers named <file>.tdf.html (Virtru SDK and OpenTDF
//     client output names).
//   - Mimecast Secure Messaging, Barracuda Message Center, Trend Micro Email
//     Encryption, Echoworx, Paubox: portal links and product names
//     (vendors' recipient guides; secure messaging overviews of IT help
//     desks).
var vendorRules = []vendorRule{
	{"microsoft-purview", []evidence{
		{byType, "application/x-microsoft-rpmsg-message", true},
		{byAttachment, "message.rpmsg", true},
		{byAttachment, "message_v2.rpmsg", true},
		{byAttachment, "*.rpmsg", true},
		{byHeader, "X-MS-Exchange-OMEMessageEncrypted: true", true},
		{byHeader, "X-MS-Exchange-Organization-E4eMessageEncrypted: true", true},
		{byAttachment, "message.html", false},
		{byPhrase, "read the message", false},
		{byPhrase, "microsoft purview message encryption", false},
		{byPhrase, "office 365 message encryption", false},
		{byPhrase, "message encryption by microsoft", false},
		{byPhrase, "has sent you a protected message", false},
		{byLink, "outlook.office365.com/encryption", false},
		{byLink, "office365.com/encryption", false},
	}},
	{"cisco-secure-email-encryption", []evidence{
		{byAttachment, "securedoc*.html", false},
		{byPhrase, "registered envelope", false},
		{byPhrase, "cisco secure email encryption", false},
		{byPhrase, "secure message", false},
		{byLink, "res.cisco.com", false},
		{byHeader, "X-CRES-Encrypted", true},
	}},
	{"zix", []evidence{
		{byPhrase, "zix", false},
		{byPhrase, "zixencrypt", false},
		{byPhrase, "zixmessage center", false},
		{byLink, "zixmessagecenter.com", false},
		{byLink, "zixmail.net", false},
		{byPhrase, "secured by zix", false},
	}},
	{"proofpoint-encryption", []evidence{
		{byAttachment, "securemessageatt.html", true},
		{byAttachment, "secure message.html", false},
		{byPhrase, "proofpoint encryption", false},
		{byPhrase, "proofpoint encrypted message", false},
		{byPhrase, "click to read message", false},
		{byLink, "/formpostdir/securereader", false},
	}},
	{"virtru", []evidence{
		{byLink, "secure.virtru.com", false},
		{byAttachment, "*.tdf.html", false},
		{byPhrase, "unlock message", false},
		{byPhrase, "view files", false},
		{byPhrase, "virtru", false},
	}},
	{"mimecast-secure-messaging", []evidence{
		{byPhrase, "mimecast secure messaging", false},
		{byPhrase, "secure message", false},
		{byLink, "mimecast.com/s/", false},
		{byLink, "secure-messaging", false},
	}},
	{"barracuda-message-center", []evidence{
		{byLink, "encrypt.barracudanetworks.com", false},
		{byPhrase, "barracuda message center", false},
		{byPhrase, "encrypted message", false},
	}},
	{"trend-micro-email-encryption", []evidence{
		{byAttachment, "encrypted_message.htm", false},
		{byAttachment, "encrypted_message.html", false},
		{byPhrase, "trend micro email encryption", false},
		{byPhrase, "encrypted message", false},
	}},
	{"echoworx", []evidence{
		{byPhrase, "echoworx", false},
		{byLink, "echoworx.com", false},
		{byPhrase, "secure message", false},
	}},
	{"paubox", []evidence{
		{byPhrase, "paubox", false},
		{byLink, "paubox.com", false},
		{byPhrase, "secure message", false},
	}},
}

// detectVendors applies the vendor table. A rule matches on one strong
// piece of evidence or on pieces of two different kinds.
func detectVendors(m *Message) []encFinding {
	var texts []vendorText
	var raws []string // raw decoded samples, lower-cased (for links in HTML attributes)
	var paths []string
	m.Walk(func(p *Part, _ int) {
		if p.Sampled && (p.Type == "text/plain" || p.Type == "text/html") {
			w := words(plainText(p))
			texts = append(texts, vendorText{words: w, vocab: vendorPhrases.present(w)})
			raws = append(raws, strings.ToLower(string(p.Sample)))
			paths = append(paths, p.Path)
		}
	})
	var out []encFinding
	for _, rule := range vendorRules {
		var seen []string
		kinds := map[evidenceKind]bool{}
		strong := false
		for _, e := range rule.evidence {
			what, ok := matchEvidence(m, e, texts, raws, paths)
			if !ok || kinds[e.kind] && !e.strong {
				continue
			}
			kinds[e.kind] = true
			strong = strong || e.strong
			seen = append(seen, what)
		}
		if strong || len(kinds) >= 2 {
			out = append(out, encFinding{EncryptionProprietaryEncrypted, rule.scheme,
				fmt.Sprintf("%s secure-mail notice: %s", rule.scheme, strings.Join(seen, "; "))})
		}
	}
	return out
}

// matchEvidence looks for one piece of evidence and describes where it was.
func matchEvidence(m *Message, e evidence, texts []vendorText, raws, paths []string) (string, bool) {
	switch e.kind {
	case byHeader:
		name, value, hasValue := strings.Cut(e.value, ":")
		value = strings.ToLower(strings.TrimSpace(value))
		for _, v := range m.Header.Values(name) {
			if !hasValue || strings.Contains(strings.ToLower(v), value) {
				return fmt.Sprintf("header %s: %s", name, clip(v)), true
			}
		}
	case byAttachment, byType:
		var what string
		m.Walk(func(p *Part, _ int) {
			if what != "" {
				return
			}
			if e.kind == byType && p.Type == e.value {
				what = fmt.Sprintf("part %s: %s", displayPath(p.Path), p.Type)
			}
			if e.kind == byAttachment && matchName(p.Filename, e.value) {
				what = fmt.Sprintf("part %s: attachment %q", displayPath(p.Path), p.Filename)
			}
		})
		return what, what != ""
	case byPhrase:
		for i, t := range texts {
			if vendorPhrases.in(t, e.value) {
				return fmt.Sprintf("part %s: text %q", paths[i], e.value), true
			}
		}
	case byLink:
		for i, t := range raws {
			if strings.Contains(t, e.value) {
				return fmt.Sprintf("part %s: link %q", paths[i], e.value), true
			}
		}
	}
	return "", false
}

// vendorText is the text of one sampled part as words (see words), with
// the vendor phrases' words it holds.
type vendorText struct {
	words string
	vocab uint64 // bits of phraseIndex.vocab
}

// phraseIndex spares a search per phrase and text: a text's words are
// looked up once in the vocabulary of the phrases, and only a phrase whose
// words all occur in the text is searched for, in order and adjacent.
type phraseIndex struct {
	vocab  map[string]uint64 // word → its bit; the first 64 words have one
	needs  map[string]uint64 // phrase → the bits of its words
	padded map[string]string // phrase → " phrase ", as words writes it
}

var vendorPhrases = newPhraseIndex(vendorRules)

func newPhraseIndex(rules []vendorRule) *phraseIndex {
	x := &phraseIndex{vocab: map[string]uint64{}, needs: map[string]uint64{}, padded: map[string]string{}}
	for _, r := range rules {
		for _, e := range r.evidence {
			if e.kind != byPhrase {
				continue
			}
			var need uint64
			for _, w := range strings.Fields(e.value) {
				bit, ok := x.vocab[w]
				if !ok && len(x.vocab) < 64 {
					bit = 1 << len(x.vocab)
					x.vocab[w] = bit
				}
				need |= bit // a word past the 64th has no bit and filters nothing
			}
			x.needs[e.value] = need
			x.padded[e.value] = " " + e.value + " "
		}
	}
	return x
}

// present is the set of vocabulary words in w, the output of words.
func (x *phraseIndex) present(w string) uint64 {
	var bits uint64
	for len(w) > 1 {
		w = w[1:] // the space before the word
		end := strings.IndexByte(w, ' ')
		if end < 0 {
			break
		}
		bits |= x.vocab[w[:end]]
		w = w[end:]
	}
	return bits
}

// in reports whether text t holds phrase, a phrase of the rules.
func (x *phraseIndex) in(t vendorText, phrase string) bool {
	need, ok := x.needs[phrase]
	if ok && t.vocab&need != need {
		return false
	}
	padded, ok := x.padded[phrase]
	if !ok {
		padded = " " + phrase + " "
	}
	return strings.Contains(t.words, padded)
}

// words lower-cases text and reduces it to its words (letters and digits)
// each followed and preceded by one space, so that a phrase matches on word
// boundaries with any white space or punctuation between its words.
func words(text string) string {
	b := make([]byte, 1, len(text)+2)
	b[0] = ' '
	space := true
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf { // ASCII: most text, a byte at a time
			i++
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
				b = append(b, c)
				space = false
			} else if !space {
				b = append(b, ' ')
				space = true
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		if r = unicode.ToLower(r); r != '\u00a0' && r != utf8.RuneError {
			b = utf8.AppendRune(b, r)
			space = false
		} else if !space {
			b = append(b, ' ')
			space = true
		}
	}
	if !space {
		b = append(b, ' ')
	}
	return string(b)
}

// clip shortens evidence quoted in a reason.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
