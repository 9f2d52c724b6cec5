// Package analyzer classifies one mail message: whether the helpdesk can
// read it (S/MIME, OpenPGP and proprietary end-to-end encryption), what its
// Received chain says about transport TLS, whether it came through a private
// relay that masks the sender (and which one, and whether its Reply-To is a
// relay token), and which conversation it belongs to.
//
// It reads a model of the message (Message): header fields, the MIME tree
// with types, parameters, dispositions, file names, sizes and transfer
// encodings, and decoded samples of a few parts. Two constructors build the
// same model: FromRaw streams raw RFC 5322 octets (attachment bodies are read
// and discarded), FromIMAP takes IMAP facts (header block, BODYSTRUCTURE and
// the first SampleSize encoded octets of the parts SamplePaths lists).
// Classify turns a model into a Verdict, each finding with a reason naming
// its evidence and MIME part path.
//
// The analyzer never decrypts, never verifies signatures, never decodes relay
// tokens and holds no keys; it does no I/O besides reading the given reader.
// Hostile input becomes encryption "unparseable" with a reason: the limits
// (Limits) bound nesting depth, part count, header octets and line length,
// and memory stays bounded whatever the message size.
//
// Decisions:
//   - message/rfc822 parts are leaves: an encrypted message forwarded as an
//     attachment does not make the carrying message encrypted (a reason says
//     so).
//   - An encrypted file (.p7m, .pgp, .gpg, S/MIME or armored text attached as
//     a file) next to readable text leaves the message readable; the message
//     is encrypted only when it has no readable text besides.
//   - Quoted armor ("> -----BEGIN PGP MESSAGE-----") is a reply quoting
//     encrypted mail: the reply is readable; a reason records it.
//   - Signed and encrypted, in either order, is encrypted; S/MIME
//     compressed-data is flagged like encrypted (no helpdesk reads it).
//     Certs-only and a multipart/signed without its signature part sign
//     nothing.
//   - PGP/MIME that Exchange rewrapped as multipart/mixed is encrypted: the
//     one attachment sampled for it is the octet-stream right after the
//     application/pgp-encrypted version part.
//   - An ARC set means forwarding only when neither the sender's nor the
//     receiver's own system sealed it; a relay address in Sender alone
//     needs the relay's hosts in the Received chain.
//   - The fingerprint covers the body's shape as well as the identifying
//     headers, so a message that copies another's headers is its own.
//   - IMAP facts do not show part headers or a multipart's missing close
//     delimiter: FromRaw reports those as problems, FromIMAP cannot. For a
//     multipart cut short, CloseCheck watches the body the poller streams
//     to forward a message and fails it before the SMTP transaction ends,
//     so the worker flags it as scan does; on the test corpus the verdicts
//     agree once that check is applied.
//
// RFCs followed: RFC 5322 (message format), RFC 2045-2047 and RFC 2231
// (MIME, encoded words, parameter values), RFC 3501 section 6.4.5 (part
// numbering), RFC 8551 and RFC 5652 (S/MIME, CMS), RFC 3156 and RFC 4880
// (OpenPGP/MIME, armor), RFC 5321 section 4.4 and RFC 3848 (Received,
// with-protocol types), RFC 2369 and RFC 2919 (List-*), RFC 8617 (ARC),
// RFC 1847 (security multiparts).
package analyzer

import "strings"

// Analyzer classifies messages against a table of private relays. It does
// not change after New and is safe for concurrent use.
type Analyzer struct {
	relays []relayService
}

// New returns an Analyzer with the built-in relay services plus extra ones
// (the config's relays:); an extra service with a built-in Name extends it.
func New(extra []RelayService) *Analyzer {
	return &Analyzer{relays: compileRelays(extra)}
}

// Classify returns the verdict on m under policy p. A class missing from p
// falls back to DefaultPolicy.
func (a *Analyzer) Classify(m *Message, p Policy) Verdict {
	v := Verdict{}
	h := m.Header

	if ids := messageIDs(h.Get("Message-ID")); len(ids) > 0 {
		v.MessageID = ids[0]
	}
	v.Subject = decodeWords(h.Get("Subject"))
	if from := addresses(h, "From"); len(from) > 0 {
		v.From = from[0].addr
	}
	v.InReplyTo = messageIDs(h.Get("In-Reply-To"))
	v.References = messageIDs(strings.Join(h.Values("References"), " "))
	v.ThreadKey = threadKey(v.MessageID, v.InReplyTo, v.References)
	v.NormalizedSubject = normalizeSubject(v.Subject)
	v.Fingerprint = fingerprint(m, v.MessageID)

	v.Encryption, v.EncryptionScheme = EncryptionNone, ""
	if len(m.Problems) > 0 {
		v.Encryption = EncryptionUnparseable
		v.Reasons = append(v.Reasons, m.Problems...)
	} else {
		findings := append(detectEncryption(m), detectVendors(m)...)
		best := -1
		for i, f := range findings {
			if f.reason != "" {
				v.Reasons = append(v.Reasons, f.reason)
			}
			if rank(f.enc) > rank(v.Encryption) {
				v.Encryption, best = f.enc, i
			}
		}
		if best >= 0 {
			v.EncryptionScheme = findings[best].scheme
		}
	}

	var tlsReasons []string
	v.TransportTLS, tlsReasons = detectTransport(h)
	v.Reasons = append(v.Reasons, tlsReasons...)

	r := a.detectRelay(h)
	v.Relay, v.RelayService, v.ReplyToTokenized, v.RelayAddresses = r.relay, r.service, r.tokenized, r.addrs
	v.Reasons = append(v.Reasons, r.reasons...)

	v.Class = classOf(v)
	v.Action = actionFor(p, v.Class)
	return v
}

// rank orders encryption findings: encrypted beats signed beats none.
func rank(e Encryption) int {
	switch {
	case e.Encrypted():
		return 2
	case e.Signed():
		return 1
	}
	return 0
}

// classOf matches a verdict against the classes in order: Unparseable >
// Encrypted > Signed > PrivateRelay > Clean.
func classOf(v Verdict) Class {
	switch {
	case v.Encryption == EncryptionUnparseable:
		return ClassUnparseable
	case v.Encryption.Encrypted():
		return ClassEncrypted
	case v.Encryption.Signed():
		return ClassSigned
	case v.Relay == RelayPrivate:
		return ClassPrivateRelay
	}
	return ClassClean
}

// actionFor looks the class up in p, then in DefaultPolicy.
func actionFor(p Policy, c Class) Action {
	if act, ok := p[c]; ok && (act == ActionForward || act == ActionFlag) {
		return act
	}
	return DefaultPolicy()[c]
}
