package analyzer

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// tlsHop is a Received line of an external hop that used TLS, so rows that
// test something else get transport "tls".
const tlsHop = "Received: from mail.customer.example (mail.customer.example [198.51.100.23])\n" +
	"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\n" +
	"\tby mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Lm09AF\n" +
	"\tfor <support@helpdesk.example>; Mon, 02 Nov 2026 09:07:49 +0000\n"

// msg builds a message: the Received hop, the given header lines, and body.
func msg(header, body string) string {
	return tlsHop + "From: Ann Customer <ann@customer.example>\nTo: support@helpdesk.example\n" +
		"Subject: Hello\nMessage-ID: <m1@customer.example>\nDate: Mon, 02 Nov 2026 09:07:49 +0000\n" +
		"MIME-Version: 1.0\n" + header + "\n" + body
}

// b64 wraps base64 at 76 columns.
func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s + "\n")
	return out.String()
}

// der is the head of a DER ContentInfo with the given content type OID.
func der(oid []byte) []byte {
	return append(append([]byte{0x30, 0x82, 0x01, 0x00}, oid...), bytes.Repeat([]byte{0xa0}, 64)...)
}

var (
	oidEnveloped = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03}
	oidSigned    = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02}
	oidAuthEnv   = []byte{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17}
)

const pgpArmor = "-----BEGIN PGP MESSAGE-----\n\nhQEMA8mEUs5nqZ7AAQf/Y2J0ZXN0\n=AbCd\n-----END PGP MESSAGE-----\n"

const clearsigned = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nHello helpdesk.\n" +
	"-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n=XyZw\n-----END PGP SIGNATURE-----\n"

// encryptionCases is one row per detection rule, with why.
var encryptionCases = []struct {
	name   string
	raw    string
	enc    Encryption
	scheme string
	reason string // a substring one of the reasons must contain
}{
	{"plain text is readable", msg("Content-Type: text/plain; charset=utf-8\n", "Hi, my order is late.\n"),
		EncryptionNone, "", ""},
	{"S/MIME enveloped-data", msg("Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=smime.p7m\n", b64(der(oidEnveloped))),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "part 1: application/pkcs7-mime; smime-type=enveloped-data"},
	{"S/MIME authEnveloped-data", msg("Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(der(oidAuthEnv))),
		EncryptionSMIMEEncrypted, "smime-authenveloped-data", "smime-type=authenveloped-data"},
	{"legacy x-pkcs7-mime enveloped", msg("Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(der(oidEnveloped))),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "application/x-pkcs7-mime"},
	{"opaque signed-data is signed", msg("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(append(der(oidSigned), []byte("Content-Type: text/plain\r\n\r\nhello")...))),
		EncryptionSMIMESigned, "smime-signed-data", "smime-type=signed-data"},
	{"opaque signed-data over enveloped is encrypted", msg("Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(append(der(oidSigned), []byte("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n")...))),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "wrapping an enveloped entity"},
	{"smime.p7m without smime-type: enveloped OID", msg("Content-Type: application/pkcs7-mime; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(der(oidEnveloped))),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "1.2.840.113549.1.7.3"},
	{"smime.p7m without smime-type: signed OID", msg("Content-Type: application/octet-stream; name=smime.p7m\nContent-Transfer-Encoding: base64\n", b64(der(oidSigned))),
		EncryptionSMIMESigned, "smime-signed-data", "1.2.840.113549.1.7.2"},
	{"detached S/MIME signature", msg("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nHello\n--b1\nContent-Type: application/pkcs7-signature; name=smime.p7s\nContent-Transfer-Encoding: base64\n\n"+b64(der(oidSigned))+"--b1--\n"),
		EncryptionSMIMESigned, "smime-detached-signature", "part root: multipart/signed; protocol=application/pkcs7-signature"},
	{"detached legacy x-pkcs7-signature", msg("Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nHello\n--b1\nContent-Type: application/x-pkcs7-signature; name=smime.p7s\n\nAAAA\n--b1--\n"),
		EncryptionSMIMESigned, "smime-detached-signature", "x-pkcs7-signature"},
	{"signed then encrypted: multipart/signed over enveloped", msg("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b1\n",
		"--b1\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Transfer-Encoding: base64\n\n"+b64(der(oidEnveloped))+"--b1\nContent-Type: application/pkcs7-signature\n\nAAAA\n--b1--\n"),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "part 1: application/pkcs7-mime; smime-type=enveloped-data"},
	{"PGP/MIME encrypted", msg("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b1\n",
		"--b1\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b1\nContent-Type: application/octet-stream; name=encrypted.asc\n\n"+pgpArmor+"--b1--\n"),
		EncryptionPGPEncrypted, "pgp-mime", "multipart/encrypted; protocol=application/pgp-encrypted"},
	{"PGP/MIME signed", msg("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nHello\n--b1\nContent-Type: application/pgp-signature; name=signature.asc\n\n-----BEGIN PGP SIGNATURE-----\nx\n-----END PGP SIGNATURE-----\n--b1--\n"),
		EncryptionPGPSigned, "pgp-mime", "application/pgp-signature (RFC 3156)"},
	{"PGP/MIME rewrapped by Exchange as multipart/mixed", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain; charset=us-ascii\n\n\n--b1\nContent-Type: application/pgp-encrypted; name=\"PGPMIME Versions Identification\"\nContent-Disposition: attachment; filename=\"PGPMIME Versions Identification\"\nContent-Transfer-Encoding: base64\n\nVmVyc2lvbjogMQ0K\n--b1\nContent-Type: application/octet-stream; name=encrypted.asc\nContent-Disposition: attachment; filename=encrypted.asc\nContent-Transfer-Encoding: base64\n\n"+b64([]byte(pgpArmor))+"--b1--\n"),
		EncryptionPGPEncrypted, "pgp-mime", "part 3 \"encrypted.asc\" with OpenPGP data in its first octets: PGP/MIME rewrapped by Microsoft Exchange"},
	{"Exchange-rewrapped PGP/MIME with binary OpenPGP data", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\n\n--b1\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b1\nContent-Type: application/octet-stream; name=encrypted.gpg\nContent-Transfer-Encoding: base64\n\n"+b64([]byte{0x85, 0x01, 0x0c, 0x03, 0xc9, 0x84, 0x52, 0xce})+"--b1--\n"),
		EncryptionPGPEncrypted, "pgp-mime", "rewrapped by Microsoft Exchange"},
	{"a version part beside a file that is not OpenPGP is not Exchange's shape", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nThe report is attached.\n--b1\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--b1\nContent-Type: application/octet-stream; name=report.pdf\nContent-Transfer-Encoding: base64\n\n"+b64([]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"))+"--b1--\n"),
		EncryptionNone, "", ""},
	{"multipart/signed without a signature part signs nothing", msg("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=b1\n",
		"--b1\nContent-Type: multipart/alternative; boundary=b2\n\n--b2\nContent-Type: text/plain\n\nYour parcel is waiting.\n--b2\nContent-Type: text/html\n\n<p>Your parcel is waiting.</p>\n--b2--\n--b1--\n"),
		EncryptionNone, "", "without a signature part of that type (RFC 1847 section 2.1): not signed"},
	{"PGP multipart/signed whose second part is not a signature", msg("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nHello\n--b1\nContent-Type: text/plain\n\nfooter\n--b1--\n"),
		EncryptionNone, "", "not signed"},
	{"S/MIME certs-only signs and encrypts nothing", msg("Content-Type: application/pkcs7-mime; name=smime.p7c; smime-type=certs-only\nContent-Disposition: attachment; filename=smime.p7c\nContent-Transfer-Encoding: base64\n", b64(der(oidSigned))),
		EncryptionNone, "", "smime-type=certs-only: certificates only"},
	{"inline PGP message", msg("Content-Type: text/plain\n", pgpArmor),
		EncryptionPGPEncrypted, "pgp-inline", "part 1: text/plain: inline OpenPGP armor"},
	{"inline PGP clearsigned", msg("Content-Type: text/plain\n", clearsigned),
		EncryptionPGPSigned, "pgp-inline", "BEGIN PGP SIGNED MESSAGE"},
	{"inline PGP in quoted-printable", msg("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n",
		"-----BEGIN PGP MESSAGE=\n-----\n\nhQEMA8mEUs5nqZ7AAQf=3D\n-----END PGP MESSAGE-----\n"),
		EncryptionPGPEncrypted, "pgp-inline", "inline OpenPGP armor"},
	{"inline PGP in base64 HTML with <br> and &nbsp;", msg("Content-Type: text/html\nContent-Transfer-Encoding: base64\n",
		b64([]byte("<div>&nbsp;-----BEGIN PGP MESSAGE-----<br>\n<br>hQEMA8mEUs5nqZ7AAQf<br>-----END PGP MESSAGE-----</div>"))),
		EncryptionPGPEncrypted, "pgp-inline", "part 1: text/html"},
	{"prose mentioning the armor is readable", msg("Content-Type: text/plain\n", "My client shows -----BEGIN PGP MESSAGE----- when I open your mail, why?\n"),
		EncryptionNone, "", ""},
	{"quoted armor in a reply is readable", msg("Content-Type: text/plain\n", "I could not read this:\n\n> -----BEGIN PGP MESSAGE-----\n> hQEMA8mEUs5n\n> -----END PGP MESSAGE-----\n"),
		EncryptionNone, "", "quoted OpenPGP armor"},
	{"encrypted .p7m attachment next to text", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nPlease find the contract attached.\n--b1\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=contract.p7m\nContent-Disposition: attachment; filename=contract.p7m\nContent-Transfer-Encoding: base64\n\n"+b64(der(oidEnveloped))+"--b1--\n"),
		EncryptionNone, "", "next to readable text: the message itself is not encrypted"},
	{"encrypted .gpg attachment next to text", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nSee attached.\n--b1\nContent-Type: application/octet-stream; name=report.pdf.gpg\nContent-Disposition: attachment; filename=report.pdf.gpg\nContent-Transfer-Encoding: base64\n\nhQEMA8mE\n--b1--\n"),
		EncryptionNone, "", "part 2: attachment \"report.pdf.gpg\" is an encrypted file next to readable text"},
	{"armored .asc text attachment next to text", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nSee attached.\n--b1\nContent-Type: text/plain; name=msg.asc\nContent-Disposition: attachment; filename=msg.asc\n\n"+pgpArmor+"--b1--\n"),
		EncryptionNone, "", "attachment \"msg.asc\" carries inline OpenPGP armor"},
	{"forwarded encrypted message is not looked into", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nForwarding this.\n--b1\nContent-Type: message/rfc822\n\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\n\nAAAA\n--b1--\n"),
		EncryptionNone, "", "part 2: message/rfc822 attached message not inspected"},
	{"Purview rpmsg", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nThis message is protected.\n--b1\nContent-Type: application/x-microsoft-rpmsg-message; name=message.rpmsg\nContent-Transfer-Encoding: base64\n\nAAAA\n--b1--\n"),
		EncryptionProprietaryEncrypted, "microsoft-purview", "part 2: application/x-microsoft-rpmsg-message"},
	{"OME notice: message.html and its phrase", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/html\n\n<p>You've received an encrypted message. <a href=\"https://outlook.office365.com/Encryption/retrieve.ashx\">Read the message</a></p>\n--b1\nContent-Type: text/html; name=message.html\nContent-Disposition: attachment; filename=message.html\n\n<html>portal</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "microsoft-purview", "attachment \"message.html\""},
	{"OME header alone is strong", msg("X-MS-Exchange-OMEMessageEncrypted: true\nContent-Type: text/plain\n", "Open the attachment.\n"),
		EncryptionProprietaryEncrypted, "microsoft-purview", "header X-MS-Exchange-OMEMessageEncrypted"},
	{"Cisco Registered Envelope", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nYou have received a secure message. Open the attachment securedoc_20261102T090749.html.\n--b1\nContent-Type: text/html; name=securedoc_20261102T090749.html\nContent-Disposition: attachment; filename=securedoc_20261102T090749.html\n\n<html>envelope</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "cisco-secure-email-encryption", "securedoc_20261102T090749.html"},
	{"Virtru: link and button", msg("Content-Type: text/html\n", "<p>Ann has sent you a secure email.</p><a href=\"https://secure.virtru.com/start/?c=x\">Unlock Message</a>\n"),
		EncryptionProprietaryEncrypted, "virtru", "link \"secure.virtru.com\""},
	{"a customer who mentions Virtru is not flagged", msg("Content-Type: text/plain\n", "We use Virtru at work; can you send the invoice unencrypted?\n"),
		EncryptionNone, "", ""},
	{"Zix: link and name", msg("Content-Type: text/html\n", "<p>Read your secure message: <a href=\"https://web1.zixmail.net/s/e?m=1\">open</a></p><p>Secured by Zix</p>\n"),
		EncryptionProprietaryEncrypted, "zix", "zixmail.net"},
	{"Proofpoint: SecureMessageAtt.html and name", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nThis is a Proofpoint Encryption secure message.\n--b1\nContent-Type: text/html; name=SecureMessageAtt.html\nContent-Disposition: attachment; filename=SecureMessageAtt.html\n\n<html>x</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "proofpoint-encryption", "SecureMessageAtt.html"},
	{"Proofpoint: SecureMessageAtt.html holds the encrypted body, enough alone", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nYou have received a secure message.\n--b1\nContent-Type: text/html; name=SecureMessageAtt.html\nContent-Disposition: attachment; filename=SecureMessageAtt.html\n\n<html>x</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "proofpoint-encryption", "attachment \"SecureMessageAtt.html\""},
	{"Zix delivered over TLS is readable (\"secured by Zixcorp\" footer)", msg("Content-Type: text/plain\n", "Here are the claim forms you asked for.\n\nThis message was secured by Zixcorp(R). Zix email encryption: https://www.zixcorp.com\n"),
		EncryptionNone, "", ""},
	{"Virtru: a .tdf.html file and Unlock Message", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/html\n\n<p>Erin sent you a secure email. <a href=\"https://example.invalid/x\">Unlock Message</a></p>\n--b1\nContent-Type: text/html; name=loan.pdf.tdf.html\nContent-Disposition: attachment; filename=loan.pdf.tdf.html\n\n<html>tdf</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "virtru", "attachment \"loan.pdf.tdf.html\""},
	{"Purview message_v2.rpmsg as a plain attachment", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nYou have received a protected message.\n--b1\nContent-Type: application/octet-stream; name=message_v2.rpmsg\nContent-Disposition: attachment; filename=message_v2.rpmsg\nContent-Transfer-Encoding: base64\n\nAAAA\n--b1--\n"),
		EncryptionProprietaryEncrypted, "microsoft-purview", "attachment \"message_v2.rpmsg\""},
	{"Mimecast Secure Messaging", msg("Content-Type: text/html\n", "<p>You have a new secure message.</p><a href=\"https://login-us.mimecast.com/secure-messaging/view?id=1\">Mimecast Secure Messaging</a>\n"),
		EncryptionProprietaryEncrypted, "mimecast-secure-messaging", "link \"secure-messaging\""},
	{"Barracuda Message Center", msg("Content-Type: text/plain\n", "You have received an encrypted message. View it at https://encrypt.barracudanetworks.com/login?nid=abc\n"),
		EncryptionProprietaryEncrypted, "barracuda-message-center", "encrypt.barracudanetworks.com"},
	{"Trend Micro Email Encryption", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nTrend Micro Email Encryption: open the attachment.\n--b1\nContent-Type: text/html; name=Encrypted_Message.htm\nContent-Disposition: attachment; filename=Encrypted_Message.htm\n\n<html>x</html>\n--b1--\n"),
		EncryptionProprietaryEncrypted, "trend-micro-email-encryption", "Encrypted_Message.htm"},
	{"Echoworx", msg("Content-Type: text/plain\n", "A secure message is waiting: https://portal.echoworx.com/s/abc\n"),
		EncryptionProprietaryEncrypted, "echoworx", "echoworx.com"},
	{"Paubox", msg("Content-Type: text/plain\n", "Paubox: view your secure message at https://app.paubox.com/m/abc\n"),
		EncryptionProprietaryEncrypted, "paubox", "paubox.com"},
	{"a message that is nothing but a .pgp file", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: application/octet-stream; name=message.pgp\nContent-Disposition: attachment; filename=message.pgp\n\nhQEMA8mE\n--b1--\n"),
		EncryptionPGPEncrypted, "pgp-file", "and the message has no readable text besides"},
	{"S/MIME enveloped nested alone in multipart/mixed", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\nContent-Disposition: attachment; filename=smime.p7m\nContent-Transfer-Encoding: base64\n\n"+b64(der(oidEnveloped))+"--b1--\n"),
		EncryptionSMIMEEncrypted, "smime-enveloped-data", "and the message has no readable text besides"},
	{"broken multipart without boundary", msg("Content-Type: multipart/mixed\n", "hello\n"),
		EncryptionUnparseable, "", "part root: multipart/mixed without boundary parameter"},
	{"truncated multipart", msg("Content-Type: multipart/mixed; boundary=b1\n", "--b1\nContent-Type: text/plain\n\nhello\n"),
		EncryptionUnparseable, "", "ends without its close delimiter"},
	{"binary junk", "\x00\xff\xfe junk\nmore: junk\n\nbody", EncryptionUnparseable, "", "no header fields"},
}

func TestEncryption(t *testing.T) {
	an := New(nil)
	for _, c := range encryptionCases {
		t.Run(c.name, func(t *testing.T) {
			m, err := FromRaw(strings.NewReader(c.raw))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			v := an.Classify(m, DefaultPolicy())
			if v.Encryption != c.enc || v.EncryptionScheme != c.scheme {
				t.Errorf("encryption %s/%s, want %s/%s; reasons:\n  %s", v.Encryption, v.EncryptionScheme, c.enc, c.scheme, strings.Join(v.Reasons, "\n  "))
			}
			if c.reason != "" && !hasReason(v.Reasons, c.reason) {
				t.Errorf("no reason contains %q; reasons:\n  %s", c.reason, strings.Join(v.Reasons, "\n  "))
			}
		})
	}
}

func hasReason(reasons []string, sub string) bool {
	for _, r := range reasons {
		if strings.Contains(r, sub) {
			return true
		}
	}
	return false
}

func TestLimits(t *testing.T) {
	nested := func(depth int) string {
		var b strings.Builder
		for i := 0; i < depth; i++ {
			b.WriteString("--b" + strings.Repeat("x", i) + "\nContent-Type: multipart/mixed; boundary=b" + strings.Repeat("x", i+1) + "\n\n")
		}
		b.WriteString("--b" + strings.Repeat("x", depth) + "\nContent-Type: text/plain\n\nhi\n")
		for i := depth; i >= 0; i-- {
			b.WriteString("--b" + strings.Repeat("x", i) + "--\n")
		}
		return msg("Content-Type: multipart/mixed; boundary=b\n", b.String())
	}
	many := func(n int) string {
		return msg("Content-Type: multipart/mixed; boundary=b\n", strings.Repeat("--b\nContent-Type: text/plain\n\nx\n", n)+"--b--\n")
	}
	small := Limits{MaxDepth: 4, MaxParts: 10, MaxHeaderBytes: 2048, MaxLineBytes: 200, MaxSamples: 3}
	cases := []struct {
		name    string
		raw     string
		problem string // "" when the message is within the limits
	}{
		{"nesting within the limit", nested(3), ""},
		{"nesting too deep", nested(5), "multipart nesting deeper than 4"},
		{"parts within the limit", many(9), ""},
		{"too many parts", many(10), "more than 10 MIME parts"},
		{"header line too long", msg("X-Long: "+strings.Repeat("a", 300)+"\nContent-Type: text/plain\n", "hi\n"), "message: header line longer than 200 octets"},
		{"header block too big", msg(strings.Repeat("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 40), "hi\n"), "message: header block exceeds 2048 octets"},
		{"part header line too long", msg("Content-Type: multipart/mixed; boundary=b\n", "--b\nContent-Type: text/plain; x=\""+strings.Repeat("a", 300)+"\"\n\nhi\n--b--\n"), "part 1: header line longer than 200 octets"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := small.FromRaw(strings.NewReader(c.raw))
			if err != nil {
				t.Fatal(err)
			}
			v := New(nil).Classify(m, DefaultPolicy())
			switch {
			case c.problem == "" && v.Encryption == EncryptionUnparseable:
				t.Errorf("unparseable within the limits: %q", v.Reasons)
			case c.problem != "" && (v.Encryption != EncryptionUnparseable || !hasReason(v.Reasons, c.problem)):
				t.Errorf("encryption %s, reasons %q; want unparseable with %q", v.Encryption, v.Reasons, c.problem)
			}
			n := 0
			m.Walk(func(p *Part, _ int) {
				if p.Sampled {
					n++
				}
			})
			if n > small.MaxSamples {
				t.Errorf("%d parts sampled, limit %d", n, small.MaxSamples)
			}
		})
	}
}
