package analyzer

import (
	"bytes"
	"fmt"
	"html"
	"path"
	"strings"
)

// encFinding is one piece of end-to-end protection evidence.
type encFinding struct {
	enc    Encryption
	scheme string
	reason string
}

// cmsTypes maps the smime-type parameter (RFC 8551 section 3.2.2) to what
// it means for the helpdesk.
var cmsTypes = map[string]struct {
	enc    Encryption
	scheme string
}{
	"enveloped-data":     {EncryptionSMIMEEncrypted, "smime-enveloped-data"},
	"authenveloped-data": {EncryptionSMIMEEncrypted, "smime-authenveloped-data"},
	"signed-data":        {EncryptionSMIMESigned, "smime-signed-data"},
	// Compressed-data (RFC 3274) is not encryption, but no mail client of a
	// helpdesk opens it either: it is flagged like encrypted mail.
	"compressed-data": {EncryptionSMIMEEncrypted, "smime-compressed-data"},
	// Certs-only (RFC 8551 section 3.2.2 and 3.6) is a degenerate
	// signed-data that carries certificates and no signer: it neither signs
	// nor hides anything.
	"certs-only": {EncryptionNone, ""},
}

// cmsOIDs are the DER encodings of the CMS content type OIDs (RFC 5652
// section 4, RFC 5083, RFC 3274) that open a ContentInfo, with the
// smime-type they stand for.
var cmsOIDs = []struct {
	der   []byte
	oid   string
	smime string
}{
	{[]byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}, "1.2.840.113549.1.7.3", "enveloped-data"},
	{[]byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17}, "1.2.840.113549.1.9.16.1.23", "authenveloped-data"},
	{[]byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}, "1.2.840.113549.1.7.2", "signed-data"},
	{[]byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x09}, "1.2.840.113549.1.9.16.1.9", "compressed-data"},
}

// cmsContentType reads the content type OID of a DER ContentInfo from its
// first octets: SEQUENCE, then the OID. It looks only at the head, so a
// signed-data that wraps an enveloped-data answers signed-data.
func cmsContentType(der []byte) (smimeType, oid string) {
	if len(der) < 2 || der[0] != 0x30 {
		return "", ""
	}
	// Skip the SEQUENCE length (short or long form).
	i := 2
	if der[1]&0x80 != 0 {
		i += int(der[1] & 0x7f)
	}
	if i >= len(der) {
		return "", ""
	}
	for _, c := range cmsOIDs {
		if bytes.HasPrefix(der[i:], c.der) {
			return c.smime, c.oid
		}
	}
	return "", ""
}

// innerEnveloped reports whether the first octets of an opaque signed-data
// carry an enveloped MIME entity: encrypt-then-sign, whose content a
// helpdesk cannot read. The signed content is the inner MIME entity in the
// clear (RFC 8551 section 3.5), so its Content-Type shows in the sample.
func innerEnveloped(sample []byte) bool {
	s := bytes.ToLower(sample)
	return bytes.Contains(s, []byte("enveloped-data")) || bytes.Contains(s, []byte("multipart/encrypted"))
}

// encryptedFileNames are attachment names that hold encrypted content
// (OpenPGP files, CMS files) but, next to readable text, do not make the
// message unreadable.
var encryptedFileNames = []struct {
	pattern string
	enc     Encryption
	scheme  string
}{
	{"*.pgp", EncryptionPGPEncrypted, "pgp-file"},
	{"*.gpg", EncryptionPGPEncrypted, "pgp-file"},
	{"*.p7m", EncryptionSMIMEEncrypted, "smime-file"},
	{"*.p7e", EncryptionSMIMEEncrypted, "smime-file"},
}

// armorLines are the OpenPGP armor header lines (RFC 4880 section 6.2) that
// inline PGP starts with.
var armorLines = []struct {
	line   string
	enc    Encryption
	reason string
}{
	{"-----BEGIN PGP MESSAGE-----", EncryptionPGPEncrypted, "inline OpenPGP armor \"BEGIN PGP MESSAGE\""},
	{"-----BEGIN PGP SIGNED MESSAGE-----", EncryptionPGPSigned, "inline OpenPGP cleartext signature \"BEGIN PGP SIGNED MESSAGE\""},
}

// htmlBreaks are the tags that end a line of visible text.
var htmlBreaks = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "li": true, "pre": true, "table": true, "hr": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "blockquote": true,
}

// stripHTML removes tags from HTML, turning line-breaking ones into line
// ends, in one pass.
func stripHTML(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return b.String() // a tag cut at the end of the sample
		}
		tag := strings.TrimLeft(s[i+1:i+j], "/ \t\r\n")
		if k := strings.IndexAny(tag, " \t\r\n/"); k >= 0 {
			tag = tag[:k]
		}
		if htmlBreaks[strings.ToLower(tag)] {
			b.WriteByte('\n')
		}
		s = s[i+j+1:]
	}
}

// plainText turns a text sample into lines of visible text: HTML loses its
// tags (line-breaking ones become line ends) and entities.
func plainText(p *Part) string {
	s := string(p.Sample)
	if p.Type == "text/html" {
		s = html.UnescapeString(stripHTML(s))
	}
	return strings.ReplaceAll(s, "\u00a0", " ")
}

// armor finds OpenPGP armor at the start of a line. Quoted armor ("> -----BEGIN
// PGP MESSAGE-----") is a reply quoting encrypted mail: the reply itself is
// readable, so it is reported but does not count.
func armor(text string) (found, quoted int) {
	found, quoted = -1, -1
	for line := range strings.SplitSeq(text, "\n") {
		t := strings.TrimSpace(line)
		q := false
		for strings.HasPrefix(t, ">") {
			t, q = strings.TrimSpace(t[1:]), true
		}
		for i, a := range armorLines {
			if t != a.line {
				continue
			}
			if q {
				if quoted < 0 {
					quoted = i
				}
			} else if found < 0 {
				found = i
			}
		}
	}
	return found, quoted
}

// detectEncryption walks the MIME tree for end-to-end protection.
func detectEncryption(m *Message) []encFinding {
	var out []encFinding
	var attachments []encFinding // encrypted files that do not make the message encrypted
	bodyText := false            // a readable, non-attachment text part outside any protected structure
	var notes []string

	// The children of a multipart/encrypted are its container's business;
	// the first child of a multipart/signed is the signed content.
	var visit func(p *Part, signedContent bool)
	visit = func(p *Part, signedContent bool) {
		where := "part " + displayPath(p.Path)
		switch {
		case p.Type == "multipart/encrypted":
			proto := strings.ToLower(p.Params["protocol"])
			if proto == "application/pgp-encrypted" {
				out = append(out, encFinding{EncryptionPGPEncrypted, "pgp-mime", fmt.Sprintf("%s: multipart/encrypted; protocol=application/pgp-encrypted (RFC 3156)", where)})
			} else {
				out = append(out, encFinding{EncryptionProprietaryEncrypted, "multipart-encrypted", fmt.Sprintf("%s: multipart/encrypted; protocol=%q", where, proto)})
			}
			return
		case p.Type == "multipart/signed":
			proto := strings.ToLower(p.Params["protocol"])
			if !hasSignaturePart(p, proto) {
				// RFC 1847 section 2.1: the second body part holds the
				// signature, of the protocol's type. Without it the
				// container signs nothing.
				notes = append(notes, fmt.Sprintf("%s: multipart/signed; protocol=%q without a signature part of that type (RFC 1847 section 2.1): not signed", where, proto))
			} else {
				switch proto {
				case "application/pgp-signature":
					out = append(out, encFinding{EncryptionPGPSigned, "pgp-mime", fmt.Sprintf("%s: multipart/signed; protocol=application/pgp-signature (RFC 3156)", where)})
				case "application/pkcs7-signature", "application/x-pkcs7-signature":
					out = append(out, encFinding{EncryptionSMIMESigned, "smime-detached-signature", fmt.Sprintf("%s: multipart/signed; protocol=%s (RFC 8551 section 3.5.3)", where, proto)})
				}
			}
			for i, c := range p.Children {
				visit(c, i == 0)
			}
			return
		case p.isMultipart():
			if data := exchangePGP(p); data != nil {
				evidence := "OpenPGP data in its first octets"
				if !data.Sampled {
					evidence = "no sample (sample limit reached): taken as OpenPGP data"
				}
				out = append(out, encFinding{EncryptionPGPEncrypted, "pgp-mime", fmt.Sprintf("%s: %s holding an application/pgp-encrypted part and, after it, application/octet-stream part %s %q with %s: PGP/MIME rewrapped by Microsoft Exchange (RFC 3156 section 4; Thunderbird fixExchangeMsg)", where, p.Type, data.Path, data.Filename, evidence)})
				return
			}
			for _, c := range p.Children {
				visit(c, false)
			}
			return
		}
		// A leaf.
		switch p.Type {
		case "application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature", "application/pgp-encrypted":
			if p.Type == "application/pkcs7-signature" || p.Type == "application/x-pkcs7-signature" {
				out = append(out, encFinding{EncryptionSMIMESigned, "smime-detached-signature", fmt.Sprintf("%s: %s detached signature", where, p.Type)})
			}
			return
		case "application/x-microsoft-rpmsg-message":
			out = append(out, encFinding{EncryptionProprietaryEncrypted, "microsoft-purview", fmt.Sprintf("%s: application/x-microsoft-rpmsg-message (Microsoft Purview rights-protected message)", where)})
			return
		case "message/rfc822", "message/global":
			notes = append(notes, fmt.Sprintf("%s: %s attached message not inspected: what it carries does not make this message encrypted", where, p.Type))
			return
		case "text/plain", "text/html":
			text := plainText(p)
			found, quoted := armor(text)
			if quoted >= 0 && found < 0 {
				notes = append(notes, fmt.Sprintf("%s: quoted OpenPGP armor (\"> %s\") in a reply: the reply itself is readable", where, armorLines[quoted].line))
			}
			if found >= 0 {
				f := encFinding{armorLines[found].enc, "pgp-inline", fmt.Sprintf("%s: %s: %s at the start of a line", where, p.Type, armorLines[found].reason)}
				if p.isAttachment() && m.Root != p {
					f.reason = fmt.Sprintf("%s: attachment %q carries %s", where, p.Filename, armorLines[found].reason)
					attachments = append(attachments, f)
				} else {
					out = append(out, f)
				}
				return
			}
			if !p.isAttachment() && strings.TrimSpace(text) != "" {
				bodyText = true
			}
			return
		}
		if f, ok := smimeLeaf(p, where); ok {
			// The message body itself (root, or the content of a
			// multipart/signed) is what the helpdesk reads.
			if f.enc == EncryptionNone || p == m.Root || signedContent || !p.isAttachment() {
				out = append(out, f)
			} else {
				f.reason = fmt.Sprintf("%s: attachment %q: %s", where, p.Filename, f.reason[len(where)+2:])
				attachments = append(attachments, f)
			}
			return
		}
		for _, e := range encryptedFileNames {
			if matchName(p.Filename, e.pattern) {
				attachments = append(attachments, encFinding{e.enc, e.scheme, fmt.Sprintf("%s: attachment %q is an encrypted file", where, p.Filename)})
				break
			}
		}
	}
	visit(m.Root, false)

	// Encrypted files next to readable text leave the message readable; a
	// message that is nothing but such a file is not.
	for _, a := range attachments {
		if bodyText {
			out = append(out, encFinding{EncryptionNone, "", a.reason + " next to readable text: the message itself is not encrypted"})
			continue
		}
		a.reason += ", and the message has no readable text besides"
		out = append(out, a)
	}
	for _, n := range notes {
		out = append(out, encFinding{EncryptionNone, "", n})
	}
	return out
}

// smimeLeaf classifies a CMS part: by smime-type, else by the OID in its
// sample, else by its name.
func smimeLeaf(p *Part, where string) (encFinding, bool) {
	isCMSType := p.Type == "application/pkcs7-mime" || p.Type == "application/x-pkcs7-mime"
	named := strings.EqualFold(p.Filename, "smime.p7m") || strings.HasSuffix(strings.ToLower(p.Filename), ".p7m")
	if !isCMSType && !named {
		return encFinding{}, false
	}
	if !isCMSType && p.Type != "application/octet-stream" && !strings.EqualFold(p.Filename, "smime.p7m") {
		return encFinding{}, false
	}
	st := strings.ToLower(p.Params["smime-type"])
	if t, ok := cmsTypes[st]; ok && isCMSType {
		f := encFinding{t.enc, t.scheme, fmt.Sprintf("%s: %s; smime-type=%s", where, p.Type, st)}
		if t.enc == EncryptionNone {
			f.reason += ": certificates only, no signer and nothing encrypted (RFC 8551 section 3.6)"
		}
		if st == "signed-data" && innerEnveloped(p.Sample) {
			f = encFinding{EncryptionSMIMEEncrypted, "smime-enveloped-data", fmt.Sprintf("%s: %s; smime-type=signed-data wrapping an enveloped entity (encrypted, then signed)", where, p.Type)}
		}
		return f, true
	}
	if smimeType, oid := cmsContentType(p.Sample); smimeType != "" {
		t := cmsTypes[smimeType]
		f := encFinding{t.enc, t.scheme, fmt.Sprintf("%s: %s %q without smime-type: CMS content type %s (%s) in its first octets", where, p.Type, p.Filename, oid, smimeType)}
		if smimeType == "signed-data" && innerEnveloped(p.Sample) {
			f.enc, f.scheme = EncryptionSMIMEEncrypted, "smime-enveloped-data"
			f.reason += " wrapping an enveloped entity (encrypted, then signed)"
		}
		return f, true
	}
	if strings.EqualFold(p.Filename, "smime.p7m") || isCMSType {
		// RFC 8551 section 3.2.1: smime.p7m names enveloped, signed or
		// compressed data; enveloped is by far the most common and the safe
		// assumption.
		return encFinding{EncryptionSMIMEEncrypted, "smime-enveloped-data", fmt.Sprintf("%s: %s %q without smime-type and no readable CMS header: taken as enveloped-data", where, p.Type, p.Filename)}, true
	}
	return encFinding{}, false
}

// hasSignaturePart reports whether a multipart/signed carries its
// signature: a second body part of the protocol's type (RFC 1847 section
// 2.1; RFC 3156 section 5; RFC 8551 section 3.5.3).
func hasSignaturePart(p *Part, proto string) bool {
	if len(p.Children) < 2 {
		return false
	}
	sig := p.Children[1].Type
	if proto == "" {
		return signatureTypes[sig]
	}
	return sig == proto || signatureTypes[sig] && signatureTypes[proto]
}

// signatureTypes are the media types of a detached signature part.
var signatureTypes = map[string]bool{
	"application/pgp-signature":     true, // RFC 3156 section 5
	"application/pkcs7-signature":   true, // RFC 8551 section 3.5.3
	"application/x-pkcs7-signature": true, // RFC 8551 section 3.5.3.2, legacy
}

// exchangePGP finds PGP/MIME that Microsoft Exchange rewrapped: it turns
// multipart/encrypted into multipart/mixed of an empty text part, the
// application/pgp-encrypted version part ("Version: 1") and the data as an
// application/octet-stream attachment (encrypted.asc). Thunderbird repairs
// this shape on purpose (comm-central
// mail/extensions/openpgp/content/modules/fixExchangeMsg: "broken by
// Exchange": text/plain, application/pgp-encrypted, application/octet-stream).
// It returns the data part when a version part is followed by an
// octet-stream whose first octets are OpenPGP (or were not sampled), nil
// otherwise.
func exchangePGP(p *Part) *Part {
	if p.Type != "multipart/mixed" {
		return nil
	}
	for i := 1; i < len(p.Children); i++ {
		prev, c := p.Children[i-1], p.Children[i]
		if prev.Type == "application/pgp-encrypted" && c.Type == "application/octet-stream" && (!c.Sampled || openPGPData(c.Sample)) {
			return c
		}
	}
	return nil
}

// openPGPData reports whether octets start an OpenPGP message: the armor
// header line (RFC 4880 section 6.2) or, in binary, the packet tag of a
// public-key or symmetric-key encrypted session key (RFC 4880 sections 4.2,
// 5.1, 5.3), old or new format.
func openPGPData(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	if bytes.HasPrefix(b, []byte("-----BEGIN PGP MESSAGE-----")) {
		return true
	}
	if len(b) == 0 || b[0]&0x80 == 0 {
		return false
	}
	tag := b[0] & 0x3f // new format
	if b[0]&0x40 == 0 {
		tag = (b[0] >> 2) & 0x0f // old format
	}
	return tag == 1 || tag == 3
}

// matchName reports whether a file name matches a lower-case pattern
// (path.Match syntax), ignoring case.
func matchName(name, pattern string) bool {
	if name == "" {
		return false
	}
	ok, _ := path.Match(pattern, strings.ToLower(name))
	return ok
}
