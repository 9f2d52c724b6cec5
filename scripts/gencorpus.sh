#!/usr/bin/env bash
# gencorpus.sh OUTDIR — generate mailtriage's labelled test corpus.
#
# Writes OUTDIR/*.eml, OUTDIR/labels.tsv (the verdict each message must get
# under the default policy), OUTDIR/mbox/sample.mbox and a small Maildir in
# OUTDIR/maildir/{cur,new,tmp}. Signed and encrypted messages are made by the
# real tools (openssl cms, gpg) with throw-away keys and certificates created
# here in a temporary directory and deleted afterwards; no key leaves it.
# File names, Message-IDs and Date headers are fixed, so two runs give the
# same files with the same labels; only the cryptographic bytes and MIME
# boundaries chosen by openssl differ.
#
# labels.tsv columns (tab separated, header line first):
#   file encryption encryption_scheme transport_tls relay relay_service
#   reply_to_tokenized action thread_key
# An empty thread_key means the message is not part of a thread and the key
# is not checked. See testdata/corpus/README.md for the vocabulary.
#
# Needs: bash, openssl (3.x, for authEnveloped-data), gpg (2.2+), perl, base64.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1

for tool in openssl gpg perl base64; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "gencorpus: $tool is required but not installed" >&2
		exit 1
	fi
done

mkdir -p "$out" "$out/mbox" "$out/maildir/cur" "$out/maildir/new" "$out/maildir/tmp"
rm -f "$out"/*.eml "$out/labels.tsv" "$out/mbox/sample.mbox" "$out"/maildir/{cur,new,tmp}/* "$out/maildir/tmp/.keep"

work=$(mktemp -d)
export GNUPGHOME="$work/gnupg"
cleanup() {
	gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -m 700 "$GNUPGHOME"

# ---------------------------------------------------------------- keys ----

# S/MIME: one certificate for the customer (signer) and one for the helpdesk
# (recipient), both self-signed and valid for the corpus only.
for who in customer helpdesk; do
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-subj "/CN=$who corpus key/emailAddress=$who@corpus.example" \
		-keyout "$work/$who.key" -out "$work/$who.crt" >/dev/null 2>&1
done

# OpenPGP: the same two parties, in a throw-away keyring.
gpgq() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' --trust-model always "$@"; }
gpgq --quick-gen-key 'Alice Customer <alice@customer.example>' future-default default never 2>/dev/null
gpgq --quick-gen-key 'Helpdesk <support@helpdesk.example>' future-default default never 2>/dev/null

pgp_encrypt() { gpgq --armor --encrypt -r support@helpdesk.example; }
pgp_encrypt_binary() { gpgq --encrypt -r support@helpdesk.example; }
pgp_detach_sign() { gpgq --armor --detach-sign --digest-algo SHA256 -u alice@customer.example; }
pgp_clearsign() { gpgq --clearsign -u alice@customer.example; }

smime_encrypt() { openssl cms -encrypt -aes256 -outform SMIME "$@" "$work/helpdesk.crt"; }
smime_encrypt_der() { openssl cms -encrypt -aes256 -outform DER "$work/helpdesk.crt"; }
smime_sign() { openssl cms -sign -md sha256 -signer "$work/customer.crt" -inkey "$work/customer.key" "$@"; }
# drop_mime_version removes the MIME-Version line openssl puts first, since
# the message header printed before it already has one.
drop_mime_version() { sed '1{/^MIME-Version:/d}'; }

# ------------------------------------------------------------- helpers ----

seq=0
labels="$out/labels.tsv"
printf 'file\tencryption\tencryption_scheme\ttransport_tls\trelay\trelay_service\treply_to_tokenized\taction\tthread_key\n' >"$labels"

# begin NAME: starts message NAME; sets $cur (the file) and $date.
begin() {
	name=$1
	seq=$((seq + 1))
	cur="$out/$name.eml"
	date=$(printf 'Mon, 02 Nov 2026 %02d:%02d:%02d +0000' $((8 + seq / 60)) $((seq % 60)) $((seq * 7 % 60)))
	: >"$cur"
}

# label ENCRYPTION SCHEME TLS RELAY SERVICE TOKENIZED [THREAD_KEY]
label() {
	local action=forward
	case $1 in *-encrypted | unparseable) action=flag ;; esac
	printf '%s.eml\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$1" "$2" "$3" "$4" "$5" "$6" "$action" "${7:-}" >>"$labels"
}

# rcv_tls HOST IP: the helpdesk's Postfix MX receiving over TLS from HOST.
rcv_tls() {
	cat <<EOF
Received: from $1 ($1 [$2])
	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
	 key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Lm$(printf '%04X' $((seq * 37)))
	for <support@helpdesk.example>; $date
EOF
}

# hdr FROM SUBJECT [MIME]: Date, From, To, Subject, Message-ID and, unless
# MIME is "nomime", MIME-Version. Received lines are printed before it.
hdr() {
	cat <<EOF
Date: $date
From: $1
To: Helpdesk <support@helpdesk.example>
Subject: $2
Message-ID: <$name@corpus.mailtriage.example>
EOF
	[[ ${3:-} == nomime ]] || echo "MIME-Version: 1.0"
}

# std FROM SUBJECT: the usual top of a message from the outside over TLS.
std() {
	rcv_tls mail.customer.example 198.51.100.23
	hdr "$@"
}

# text BODY...: a text/plain 7bit part header and body.
text() {
	printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n'
	printf '%s\n' "$@"
}

body_hello=(
	"Hello,"
	""
	"my order 4711 arrived damaged, the box was crushed on one side."
	"Could you send a replacement?"
	""
	"Thanks,"
	"Alice"
)

# ------------------------------------------------------ clean messages ----

begin plain-clean
{
	std 'Alice Customer <alice@customer.example>' 'Order 4711 arrived damaged'
	text "${body_hello[@]}"
} >"$cur"
label none "" tls none "" false

begin plain-crlf
{
	std 'Bob Buyer <bob@buyer.example>' 'Invoice question'
	text "Hi," "" "the invoice for October lists two licences, we only have one." "" "Bob"
} | perl -pe 's/\n/\r\n/' >"$cur"
label none "" tls none "" false

begin html-newsletter
{
	rcv_tls mta-07.news.shopmail.example 203.0.113.70
	hdr '"ShopMail News" <news@shopmail.example>' 'November deals: 20% off everything'
	cat <<'EOF'
List-Unsubscribe: <https://shopmail.example/unsubscribe?u=8812>, <mailto:unsubscribe@shopmail.example>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
Content-Type: multipart/alternative; boundary="nl-alt-1"

--nl-alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

November deals are here: 20% off everything until Sunday.
Shop now: https://shopmail.example/deals

--nl-alt-1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<!DOCTYPE html><html><head><meta charset=3D"utf-8"><title>November deals</t=
itle></head><body style=3D"font-family:sans-serif"><table width=3D"600"><tr=
><td><h1>November deals</h1><p>20% off everything until Sunday.</p><p><a hr=
ef=3D"https://shopmail.example/deals">Shop now</a></p></td></tr></table></b=
ody></html>
--nl-alt-1--
EOF
} >"$cur"
label none "" tls none "" false

begin nonascii-names
{
	std '=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen.mueller@kunde.example>' '=?UTF-8?Q?R=C3=BCckfrage_zur_Bestellung_=E2=80=93_Lieferadresse?='
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="na-mixed"

--na-mixed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Guten Tag,

anbei die Lieferadresse für die Bestellung. Grüße aus Köln,
Jürgen Müller

--na-mixed
Content-Type: application/pdf; name*=utf-8''Lieferadresse%20M%C3%BCller.pdf
Content-Disposition: attachment; filename*=utf-8''Lieferadresse%20M%C3%BCller.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWls
ZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==
--na-mixed
Content-Type: text/plain; charset=iso-8859-1; name*0*=iso-8859-1''Notiz%20f%FCr; name*1*=%20den%20Support.txt
Content-Disposition: attachment; filename*0*=iso-8859-1''Notiz%20f%FCr; filename*1*=%20den%20Support.txt
Content-Transfer-Encoding: quoted-printable

Bitte die T=FCr hinten benutzen.
--na-mixed--
EOF
} >"$cur"
label none "" tls none "" false

# ------------------------------------------------------------- S/MIME ----

entity="$work/entity.txt"
text "${body_hello[@]}" >"$entity"

begin smime-enveloped
{
	std 'Alice Customer <alice@customer.example>' 'Contract draft (encrypted)' nomime
	smime_encrypt -in "$entity"
} >"$cur"
label smime-encrypted smime-enveloped-data tls none "" false

begin smime-authenveloped
{
	std 'Alice Customer <alice@customer.example>' 'Contract draft (AES-GCM)' nomime
	openssl cms -encrypt -aes-256-gcm -outform SMIME -in "$entity" "$work/helpdesk.crt"
} >"$cur"
label smime-encrypted smime-authenveloped-data tls none "" false

begin smime-signed-opaque
{
	std 'Alice Customer <alice@customer.example>' 'Signed statement (opaque)' nomime
	smime_sign -nodetach -outform SMIME -in "$entity"
} >"$cur"
label smime-signed smime-signed-data tls none "" false

begin smime-signed-detached
{
	std 'Alice Customer <alice@customer.example>' 'Signed statement' nomime
	smime_sign -outform SMIME -in "$entity"
} >"$cur"
label smime-signed smime-detached-signature tls none "" false

begin smime-signed-detached-x
{
	std 'Alice Customer <alice@customer.example>' 'Signed statement (old MIME types)' nomime
	smime_sign -outform SMIME -in "$entity" | sed 's#application/pkcs7-signature#application/x-pkcs7-signature#g'
} >"$cur"
label smime-signed smime-detached-signature tls none "" false

begin smime-legacy-x-pkcs7-mime
{
	std 'Alice Customer <alice@customer.example>' 'Encrypted with an old client' nomime
	smime_encrypt -in "$entity" | sed 's#application/pkcs7-mime#application/x-pkcs7-mime#'
} >"$cur"
label smime-encrypted smime-enveloped-data tls none "" false

begin smime-p7m-no-type-enveloped
{
	std 'Alice Customer <alice@customer.example>' 'Encrypted, no smime-type'
	printf 'Content-Type: application/pkcs7-mime; name="smime.p7m"\n'
	printf 'Content-Disposition: attachment; filename="smime.p7m"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	smime_encrypt_der <"$entity" | base64 -w 76
} >"$cur"
label smime-encrypted smime-enveloped-data tls none "" false

begin smime-p7m-no-type-signed
{
	std 'Alice Customer <alice@customer.example>' 'Signed, no smime-type'
	printf 'Content-Type: application/octet-stream; name="smime.p7m"\n'
	printf 'Content-Disposition: attachment; filename="smime.p7m"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	smime_sign -nodetach -outform DER -in "$entity" | base64 -w 76
} >"$cur"
label smime-signed smime-signed-data tls none "" false

begin smime-signed-then-encrypted
smime_sign -outform SMIME -in "$entity" >"$work/signed.txt"
{
	std 'Alice Customer <alice@customer.example>' 'Signed, then encrypted' nomime
	smime_encrypt -in "$work/signed.txt"
} >"$cur"
label smime-encrypted smime-enveloped-data tls none "" false

begin smime-encrypted-then-signed
smime_encrypt -in "$entity" | drop_mime_version >"$work/enveloped.txt"
{
	std 'Alice Customer <alice@customer.example>' 'Encrypted, then signed' nomime
	smime_sign -outform SMIME -in "$work/enveloped.txt"
} >"$cur"
label smime-encrypted smime-enveloped-data tls none "" false

# A readable message whose only encrypted piece is an attachment.
begin attachment-p7m
{
	std 'Legal Team <legal@partner.example>' 'Contract for your records'
	printf 'Content-Type: multipart/mixed; boundary="att-p7m"\n\n--att-p7m\n'
	text "Hello," "" "the signed contract is attached, encrypted for your legal department." "" "Regards, Legal"
	printf '\n--att-p7m\n'
	printf 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="contract.pdf.p7m"\n'
	printf 'Content-Disposition: attachment; filename="contract.pdf.p7m"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	smime_encrypt_der <"$entity" | base64 -w 76
	printf '\n--att-p7m--\n'
} >"$cur"
label none "" tls none "" false

# ---------------------------------------------------------------- PGP ----

printf '%s\n' "${body_hello[@]}" >"$work/plain.txt"
pgp_encrypt <"$work/plain.txt" >"$work/armor.asc"
pgp_clearsign <"$work/plain.txt" >"$work/clear.asc"

begin pgp-mime-encrypted
{
	std 'Alice Customer <alice@customer.example>' 'PGP/MIME encrypted'
	cat <<'EOF'
Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="pgp-enc-1"

This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)
--pgp-enc-1
Content-Type: application/pgp-encrypted
Content-Description: PGP/MIME version identification

Version: 1

--pgp-enc-1
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Description: OpenPGP encrypted message
Content-Disposition: inline; filename="encrypted.asc"

EOF
	cat "$work/armor.asc"
	printf '\n--pgp-enc-1--\n'
} >"$cur"
label pgp-encrypted pgp-mime tls none "" false

begin pgp-mime-signed
signed_part=$(printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n%s' "$(cat "$work/plain.txt")")
printf '%s' "$signed_part" | perl -pe 's/\n/\r\n/' | pgp_detach_sign >"$work/sig.asc"
{
	std 'Alice Customer <alice@customer.example>' 'PGP/MIME signed'
	cat <<'EOF'
Content-Type: multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="pgp-sig-1"

This is an OpenPGP/MIME signed message (RFC 4880 and 3156)
--pgp-sig-1
EOF
	printf '%s\n' "$signed_part"
	cat <<'EOF'
--pgp-sig-1
Content-Type: application/pgp-signature; name="signature.asc"
Content-Description: OpenPGP digital signature
Content-Disposition: attachment; filename="signature.asc"

EOF
	cat "$work/sig.asc"
	printf '\n--pgp-sig-1--\n'
} >"$cur"
label pgp-signed pgp-mime tls none "" false

begin pgp-inline-encrypted
{
	std 'Alice Customer <alice@customer.example>' 'Inline encrypted'
	printf 'Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n'
	cat "$work/armor.asc"
} >"$cur"
label pgp-encrypted pgp-inline tls none "" false

begin pgp-inline-encrypted-qp
{
	std 'Alice Customer <alice@customer.example>' 'Inline encrypted, quoted-printable'
	printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n'
	perl -MMIME::QuotedPrint -0777 -ne 'print encode_qp($_)' "$work/armor.asc"
} >"$cur"
label pgp-encrypted pgp-inline tls none "" false

begin pgp-inline-encrypted-base64
{
	std 'Alice Customer <alice@customer.example>' 'Inline encrypted, base64 transfer encoding'
	printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n'
	base64 -w 76 "$work/armor.asc"
} >"$cur"
label pgp-encrypted pgp-inline tls none "" false

begin pgp-inline-clearsigned
{
	std 'Alice Customer <alice@customer.example>' 'Inline clearsigned'
	printf 'Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 7bit\n\n'
	cat "$work/clear.asc"
} >"$cur"
label pgp-signed pgp-inline tls none "" false

begin pgp-inline-clearsigned-qp
{
	std 'Alice Customer <alice@customer.example>' 'Inline clearsigned, quoted-printable'
	printf 'Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n'
	perl -MMIME::QuotedPrint -0777 -ne 'print encode_qp($_)' "$work/clear.asc"
} >"$cur"
label pgp-signed pgp-inline tls none "" false

begin pgp-inline-html-br
{
	std 'Alice Customer <alice@customer.example>' 'Inline encrypted in HTML'
	printf 'Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n'
	printf '<html><body><div>'
	perl -pe 's/\n/<br>\n/' "$work/armor.asc"
	printf '</div></body></html>\n'
} >"$cur"
label pgp-encrypted pgp-inline tls none "" false

begin pgp-inline-html-pre
{
	std 'Alice Customer <alice@customer.example>' 'Inline clearsigned in HTML'
	printf 'Content-Type: multipart/alternative; boundary="pre-alt"\n\n--pre-alt\n'
	printf 'Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 7bit\n\n'
	printf '<html><body><pre>'
	cat "$work/clear.asc"
	printf '</pre></body></html>\n\n--pre-alt--\n'
} >"$cur"
label pgp-signed pgp-inline tls none "" false

begin pgp-prose-mention
{
	std 'Carol Curious <carol@customer.example>' 'How do I send you an encrypted file?'
	text "Hi," "" \
		"your security page says encrypted mail should start with a \"BEGIN PGP MESSAGE\" line," \
		"and I saw -----BEGIN PGP MESSAGE----- in a colleague's mail once, but I have no idea" \
		"how to make one. Can I just send the file as a normal attachment?" "" "Carol"
} >"$cur"
label none "" tls none "" false

begin attachment-gpg
{
	std 'Alice Customer <alice@customer.example>' 'Report attached (encrypted file)'
	printf 'Content-Type: multipart/mixed; boundary="att-gpg"\n\n--att-gpg\n'
	text "Hello," "" "the monthly report is attached; the file is encrypted with your public key." "" "Alice"
	printf '\n--att-gpg\n'
	printf 'Content-Type: application/octet-stream; name="report.pdf.gpg"\n'
	printf 'Content-Disposition: attachment; filename="report.pdf.gpg"\n'
	printf 'Content-Transfer-Encoding: base64\n\n'
	pgp_encrypt_binary <"$work/plain.txt" | base64 -w 76
	printf '\n--att-gpg--\n'
} >"$cur"
label none "" tls none "" false

# ------------------------------------------- proprietary and portals ----

begin purview-rpmsg
{
	std 'Dan Officer <dan@contoso.example>' 'Confidential: Q4 figures'
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="rpmsg-mixed"
Content-Class: rpmsg.message
X-MS-Has-Attach: yes

--rpmsg-mixed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Dan Officer (dan@contoso.example) has sent you a protected message.

Read the message: https://outlook.office365.com/Encryption/retrieve.ashx?recipientemailaddress=support%40helpdesk.example&senderemailaddress=dan%40contoso.example&type=rpmsg

Learn about messages protected by Microsoft Purview Message Encryption.
Privacy Statement
Microsoft Corporation, One Microsoft Way, Redmond, WA 98052

--rpmsg-mixed
Content-Type: application/x-microsoft-rpmsg-message; name="message.rpmsg"
Content-Disposition: attachment; filename="message.rpmsg"
Content-Transfer-Encoding: base64

dgBpAGMAcgBtAHMAZwAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
--rpmsg-mixed--
EOF
} >"$cur"
label proprietary-encrypted microsoft-purview tls none "" false

begin ome-portal-notice
{
	std 'Dan Officer <dan@contoso.example>' 'Encrypted: contract renewal'
	cat <<'EOF'
Content-Type: multipart/alternative; boundary="ome-alt"

--ome-alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Dan Officer (dan@contoso.example) has sent you a protected message.

Read the message
https://outlook.office365.com/Encryption/ao.aspx?itemID=E4E_M_0f3b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b&recipientemailaddress=support%40helpdesk.example

Learn about messages protected by Microsoft Purview Message Encryption.

--ome-alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body><p><b>Dan Officer</b> (dan@contoso.example) has sent you a protected message.</p>
<p><a href="https://outlook.office365.com/Encryption/ao.aspx?itemID=E4E_M_0f3b2a4c-5d6e-4f70-8a9b-0c1d2e3f4a5b&amp;recipientemailaddress=support%40helpdesk.example">Read the message</a></p>
<p>Learn about messages protected by Microsoft Purview Message Encryption.</p></body></html>
--ome-alt--
EOF
} >"$cur"
label proprietary-encrypted microsoft-purview tls none "" false

begin portal-virtru
{
	std 'Erin Finance <erin@bank.example>' 'Your loan documents'
	cat <<'EOF'
Content-Type: multipart/alternative; boundary="virtru-alt"

--virtru-alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Erin Finance (erin@bank.example) has sent you an encrypted message with Virtru.

Unlock Message: https://secure.virtru.com/start?htmlProtocol=1#v3=eyJpZCI6IjNmMmE5YzFlIn0

Secured by Virtru. Learn more at https://www.virtru.com

--virtru-alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body><div id="virtru-message"><p>Erin Finance (erin@bank.example) has sent you an encrypted message with Virtru.</p>
<p><a href="https://secure.virtru.com/start?htmlProtocol=1#v3=eyJpZCI6IjNmMmE5YzFlIn0">Unlock Message</a></p>
<p>Secured by Virtru</p></div></body></html>
--virtru-alt--
EOF
} >"$cur"
label proprietary-encrypted virtru tls none "" false

begin portal-zix
{
	std 'Frank Claims <frank@insurer.example>' 'Secure message: claim 99812'
	cat <<'EOF'
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body><p>You have received a secure message from frank@insurer.example.</p>
<p>Read your secure message by opening the attachment or by clicking the link below:</p>
<p><a href="https://web1.zixmail.net/s/e?m=ABC123&amp;c=DEF456&amp;em=support%40helpdesk%2eexample">https://web1.zixmail.net/s/e?m=ABC123</a></p>
<p>Do not reply to this notification message; this message was auto-generated by the sender's security system. To reply to the sender, click Reply within the secure message.</p>
<p>Secured by Zix</p></body></html>
EOF
} >"$cur"
label proprietary-encrypted zix tls none "" false

begin portal-proofpoint
{
	std 'Grace HR <grace@employer.example>' '[Encrypt] Payroll correction'
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="pp-mixed"

--pp-mixed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

You have received a secure, encrypted message from grace@employer.example.

To read the message, open the SecureMessageAtt.html attachment and click
"Click to read message", or use this link (valid for 7 days):
https://securemail.employer.example/securereader/init.jsf?messageId=pp-20261102-8841

Secured by Proofpoint Encryption, Copyright (c) Proofpoint, Inc. All rights reserved.

--pp-mixed
Content-Type: text/html; charset=utf-8; name="SecureMessageAtt.html"
Content-Disposition: attachment; filename="SecureMessageAtt.html"
Content-Transfer-Encoding: base64

PGh0bWw+PGJvZHk+PGZvcm0gYWN0aW9uPSJodHRwczovL3NlY3VyZW1haWwuZW1wbG95ZXIuZXhh
bXBsZS9zZWN1cmVyZWFkZXIvaW5pdC5qc2YiPjxpbnB1dCB0eXBlPSJoaWRkZW4iIG5hbWU9InBh
eWxvYWQiIHZhbHVlPSJlbmNyeXB0ZWQiPjxidXR0b24+Q2xpY2sgdG8gcmVhZCBtZXNzYWdlPC9i
dXR0b24+PC9mb3JtPjwvYm9keT48L2h0bWw+Cg==
--pp-mixed--
EOF
} >"$cur"
label proprietary-encrypted proofpoint-encryption tls none "" false

begin portal-mimecast
{
	std 'Henry Legal <henry@lawfirm.example>' 'Secure Message: settlement'
	cat <<'EOF'
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body><p>Henry Legal has sent you a secure message using Mimecast Secure Messaging.</p>
<p><a href="https://login-uk.mimecast.com/m/secure-messaging/portal/?tkn=3Ff8dQ2Lw9">View Message</a></p>
<p>This message will expire on 02 December 2026.</p>
<p>Powered by Mimecast</p></body></html>
EOF
} >"$cur"
label proprietary-encrypted mimecast-secure-messaging tls none "" false

begin portal-cisco
{
	std 'Ivy Health <ivy@clinic.example>' '[SECURE] Test results'
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="cres-mixed"

--cres-mixed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

You have received a secure message.

Read your secure message by opening the attachment, securedoc_20261102T091500.html.
You will be prompted to open (view) the file or save (download) it to your computer.
For best results, save the file first, then open it in a Web browser.

If you have concerns about the validity of this message, contact the sender directly.

First time users - will need to register after opening the attachment.
Help - https://res.cisco.com/websafe/help?topic=RegEnvelope
About Cisco Secure Email Encryption Service - https://res.cisco.com/websafe/about

--cres-mixed
Content-Type: text/html; charset=utf-8; name="securedoc_20261102T091500.html"
Content-Disposition: attachment; filename="securedoc_20261102T091500.html"
Content-Transfer-Encoding: base64

PGh0bWw+PGJvZHk+PHNjcmlwdD52YXIgZW52ZWxvcGUgPSAiUkVTLUVOVkVMT1BFIjs8L3Njcmlw
dD48cD5DaXNjbyBSZWdpc3RlcmVkIEVudmVsb3BlPC9wPjwvYm9keT48L2h0bWw+Cg==
--cres-mixed--
EOF
} >"$cur"
label proprietary-encrypted cisco-secure-email-encryption tls none "" false

begin prose-mentions-virtru
{
	std 'Jack Customer <jack@customer.example>' 'Can you use Virtru?'
	text "Hello," "" \
		"our bank sends us documents with Virtru and Zix secure messages." \
		"Could your team send the contract the same way, or via a Proofpoint secure portal?" \
		"Otherwise a normal e-mail is fine." "" "Jack"
} >"$cur"
label none "" tls none "" false

# ------------------------------------------------------ transport TLS ----

begin tls-exim
{
	cat <<EOF
Received: from mail.partner.example ([203.0.113.5])
	by mx1.helpdesk.example with esmtps  (TLS1.3) tls TLS_AES_256_GCM_SHA384
	(Exim 4.96)
	(envelope-from <kim@partner.example>)
	id 1tAbCd-000123-4x
	for support@helpdesk.example; $date
Received: from [10.20.0.15] (helo=workstation.partner.example)
	by mail.partner.example with esmtpsa  (TLS1.3) tls TLS_AES_128_GCM_SHA256
	(Exim 4.96)
	(envelope-from <kim@partner.example>)
	id 1tAbCc-000987-1z
	for support@helpdesk.example; $date
EOF
	hdr 'Kim Partner <kim@partner.example>' 'Delivery schedule'
	text "Hello," "" "deliveries move to Tuesdays from next week." "" "Kim"
} >"$cur"
label none "" tls none "" false

begin tls-sendmail
{
	cat <<EOF
Received: from smtp.univ.example (smtp.univ.example [192.0.2.44])
	by mx1.helpdesk.example (8.17.1.9/8.17.1.9) with ESMTPS id 5A2ABCD1012345
	(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)
	for <support@helpdesk.example>; $date
Received: from localhost (localhost [127.0.0.1])
	by smtp.univ.example (8.17.1.9/8.17.1.9) with ESMTP id 5A2ABCC0998877
	for <support@helpdesk.example>; $date
EOF
	hdr 'Leo Researcher <leo@univ.example>' 'Licence renewal for the lab'
	text "Dear support," "" "please renew the lab licence for another year." "" "Leo"
} >"$cur"
label none "" tls none "" false

begin tls-microsoft
{
	cat <<EOF
Received: from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2101.outbound.protection.outlook.com [40.107.22.101])
	(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Ms0001
	for <support@helpdesk.example>; $date
Received: from DB8PR04CA0012.eurprd04.prod.outlook.com (2603:10a6:10:e4::22)
 by AM0PR01MB5678.eurprd01.prod.exchangelabs.com (2603:10a6:208:ac::12) with
 Microsoft SMTP Server (version=TLS1_2,
 cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7452.28; $date
Received: from AM0PR01MB1234.eurprd01.prod.exchangelabs.com
 ([fe80::5d1c:2a3b:4c5d:6e7f]) by AM0PR01MB1234.eurprd01.prod.exchangelabs.com
 ([fe80::5d1c:2a3b:4c5d:6e7f%4]) with mapi id 15.20.7452.028; $date
EOF
	hdr 'Mia Contoso <mia@contoso.example>' 'Password reset does not arrive'
	cat <<'EOF'
X-MS-Exchange-Organization-AuthAs: Anonymous
X-MS-Has-Attach:
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: quoted-printable

Hi,

the password reset mail never arrives for our users at contoso.

Mia
EOF
} >"$cur"
label none "" tls none "" false

begin tls-gmail
{
	cat <<EOF
Received: from mail-sor-f41.google.com (mail-sor-f41.google.com [209.85.220.41])
	(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)
	 key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Mt0002
	for <support@helpdesk.example>; $date
Received: by 2002:a05:6a10:9e8c:b0:5a1:2b3c:4d5e with SMTP id x12csp123456pxb;
        $date
EOF
	hdr 'Nora Gmail <nora.user@gmail.example>' 'App crashes on start'
	text "Hi," "" "since the update the app crashes right after the splash screen." "" "Nora"
} >"$cur"
label none "" tls none "" false

begin tls-qmail
{
	cat <<EOF
Received: from mail.oldisp.example (mail.oldisp.example [198.51.100.61])
	(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Mu0003
	for <support@helpdesk.example>; $date
Received: (qmail 28412 invoked by uid 89); 2 Nov 2026 08:40:01 -0000
Received: from unknown (HELO webmail.oldisp.example) (10.0.0.12)
  by mail.oldisp.example with ESMTPA; 2 Nov 2026 08:40:01 -0000
EOF
	hdr 'Otto Oldisp <otto@oldisp.example>' 'Question about my account'
	text "Hello," "" "how do I change the billing address on my account?" "" "Otto"
} >"$cur"
label none "" tls none "" false

begin plain-external-postfix
{
	cat <<EOF
Received: from mail.nostls.example (mail.nostls.example [203.0.113.88])
	by mx1.helpdesk.example (Postfix) with ESMTP id 4Xk2Mv0004
	for <support@helpdesk.example>; $date
Received: from [10.1.1.7] (unknown [10.1.1.7])
	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))
	(No client certificate requested)
	by mail.nostls.example (Postfix) with ESMTPSA id 11AA22BB33
	for <support@helpdesk.example>; $date
EOF
	hdr 'Pat Plain <pat@nostls.example>' 'Warranty claim'
	text "Hi," "" "I would like to file a warranty claim for my kettle." "" "Pat"
} >"$cur"
label none "" plain none "" false

begin plain-external-exim
{
	cat <<EOF
Received: from relay.smallbiz.example ([192.0.2.150] helo=relay.smallbiz.example)
	by mx1.helpdesk.example with esmtp (Exim 4.96)
	(envelope-from <quinn@smallbiz.example>)
	id 1tAbDe-000456-7y
	for support@helpdesk.example; $date
EOF
	hdr 'Quinn Smallbiz <quinn@smallbiz.example>' 'Bulk order'
	text "Hello," "" "we want to order 40 units; is there a volume discount?" "" "Quinn"
} >"$cur"
label none "" plain none "" false

begin plain-external-qmail
{
	cat <<EOF
Received: (qmail 4411 invoked from network); 2 Nov 2026 09:01:12 -0000
Received: from unknown (HELO mail.retro.example) (198.51.100.99)
  by mx1.helpdesk.example with SMTP; 2 Nov 2026 09:01:12 -0000
EOF
	hdr 'Rita Retro <rita@retro.example>' 'Manual for model X100'
	text "Hello," "" "where can I download the manual for the X100?" "" "Rita"
} >"$cur"
label none "" plain none "" false

# Delivery inside the helpdesk's own site over LMTP from a private address
# is not judged; the external hop used TLS.
begin tls-lmtp-internal-top
{
	cat <<EOF
Received: from mx1.helpdesk.example ([10.0.0.5])
	by imap1.helpdesk.example with LMTP
	id 8Cq0L3EbJ2f1NAAA0J78UA
	(envelope-from <una@customer.example>)
	for <support@helpdesk.example>; $date
EOF
	rcv_tls mail.customer.example 198.51.100.23
	hdr 'Una Customer <una@customer.example>' 'Change of address'
	text "Hello," "" "please update my delivery address to the one in my profile." "" "Una"
} >"$cur"
label none "" tls none "" false

# Our MX received over TLS, but an earlier external hop between the sender's
# provider and its outbound relay did not use it.
begin plain-earlier-hop
{
	rcv_tls out.relayhost.example 203.0.113.121
	cat <<EOF
Received: from smtp.smallhost.example (smtp.smallhost.example [192.0.2.17])
	by out.relayhost.example (Postfix) with ESMTP id 9F8E7D6C5B
	for <support@helpdesk.example>; $date
EOF
	hdr 'Vera Smallhost <vera@smallhost.example>' 'Question about returns'
	text "Hi," "" "can I return an item after 30 days?" "" "Vera"
} >"$cur"
label none "" plain none "" false

begin internal-only
{
	cat <<EOF
Received: from localhost (localhost [127.0.0.1])
	by mail.helpdesk.example (Postfix) with ESMTP id 7C1D2E3F40
	for <support@helpdesk.example>; $date
Received: (qmail 1201 invoked by uid 33); 2 Nov 2026 09:02:00 -0000
EOF
	hdr 'Web Form <noreply@helpdesk.example>' 'Contact form: printer jam'
	text "Name: Sam Form" "Email: sam@customer.example" "" "Message: the printer jams on every second page."
} >"$cur"
label none "" unknown none "" false

begin no-received
{
	hdr 'Tess Local <tess@helpdesk.example>' 'Note to self: follow up with ACME'
	text "Follow up with ACME about the delayed shipment on Friday."
} >"$cur"
label none "" unknown none "" false

# ---------------------------------------------------- private relays ----

begin relay-apple-hme
{
	rcv_tls qs51p00im-qukt01071501.me.com 17.57.155.16
	hdr '<a1b2c3d4e5@privaterelay.appleid.com>' 'Refund for order 5521'
	text "Hello," "" "I would like a refund for order 5521, it never arrived." "" "Thanks"
} >"$cur"
label none "" tls private apple-hide-my-email false

begin relay-firefox-mask
{
	rcv_tls mail-relay.mozmail.com 52.88.26.180
	hdr '<x7k2q9vh3@mozmail.com>' 'Cannot log in'
	text "Hi," "" "I can't log in since yesterday, the reset link says expired." "" "Thanks"
} >"$cur"
label none "" tls private firefox-relay false

begin relay-firefox-via-relay
{
	rcv_tls mail-relay.mozmail.com 52.88.26.180
	hdr '"orders@webshop.example [via Relay]" <k3m9q2w7@mozmail.com>' 'Your order has shipped'
	cat <<'EOF'
Reply-To: replies@relay.firefox.com
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Your order 8812 has shipped and will arrive on Thursday.
EOF
} >"$cur"
label none "" tls private firefox-relay true

begin relay-firefox-subdomain
{
	rcv_tls mail-relay.mozmail.com 52.88.26.180
	hdr '<shop@jdoe.mozmail.com>' 'Discount code did not apply'
	text "Hello," "" "the discount code from your newsletter did not apply at checkout." "" "Thanks"
} >"$cur"
label none "" tls private firefox-relay false

begin relay-duckduckgo
{
	rcv_tls mx-out-01.duck.com 20.12.24.3
	hdr '<w11tzqdr@duck.com>' 'Where is my parcel?'
	text "Hello," "" "tracking has shown 'in transit' for ten days now." "" "Regards"
} >"$cur"
label none "" tls private duckduckgo false

begin relay-duckduckgo-reply-token
{
	rcv_tls mx-out-01.duck.com 20.12.24.3
	hdr '"Uma Customer" <w11tzqdr@duck.com>' 'Re: Your ticket 3341'
	cat <<'EOF'
Reply-To: "Uma Customer" <support_at_helpdesk.example_7hq2kd9xz4@duck.com>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Thanks, the replacement works.
EOF
} >"$cur"
label none "" tls private duckduckgo true

begin relay-simplelogin-alias
{
	rcv_tls mx1.simplelogin.co 94.237.125.28
	hdr '<shopping.brisk817@simplelogin.com>' 'Subscription cancel'
	cat <<'EOF'
X-SimpleLogin-Type: Reply
X-SimpleLogin-EmailLog-ID: 48213377
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Please cancel my subscription at the end of the month.
EOF
} >"$cur"
label none "" tls private simplelogin false

begin relay-simplelogin-reverse-alias
{
	rcv_tls mx2.simplelogin.co 94.237.125.28
	hdr '"Victor Vendor - victor at vendor.example" <ra+qw3rty8uiop2@simplelogin.co>' 'Price list 2027'
	cat <<'EOF'
Reply-To: "Victor Vendor - victor at vendor.example" <ra+qw3rty8uiop2@simplelogin.co>
X-SimpleLogin-Type: Forward
X-SimpleLogin-EmailLog-ID: 48213401
X-SimpleLogin-Envelope-From: victor@vendor.example
X-SimpleLogin-Envelope-To: purchasing.calm204@aleeas.com
X-SimpleLogin-Original-From: Victor Vendor <victor@vendor.example>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Attached you find our price list for 2027.
EOF
} >"$cur"
label none "" tls private simplelogin true

begin relay-simplelogin-aleeas
{
	rcv_tls mx1.simplelogin.co 94.237.125.28
	hdr '<quiet.news551@aleeas.com>' 'Unsubscribe me please'
	text "Please remove this address from your newsletter."
} >"$cur"
label none "" tls private simplelogin false

# A SimpleLogin user replying from an alias on their own domain: only the
# service headers tell (SimpleLogin's reply phase sets X-SimpleLogin-Type:
# Reply and X-SimpleLogin-EmailLog-ID).
begin relay-simplelogin-custom-domain
{
	rcv_tls mx2.simplelogin.co 94.237.125.28
	hdr 'Willa Custom <hello@willa-custom.example>' 'Re: Your quote 2211'
	cat <<'EOF'
X-SimpleLogin-Type: Reply
X-SimpleLogin-EmailLog-ID: 48213522
X-SimpleLogin-Want-Signing: yes
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

The quote looks good, please go ahead.
EOF
} >"$cur"
label none "" tls private simplelogin false

begin relay-proton-pass
{
	rcv_tls mail-4322.protonmail.ch 185.70.43.22
	hdr '<brisk.otter7421@passmail.net>' 'Account deletion request'
	text "Hello," "" "please delete my account and all data you hold about me." "" "Thanks"
} >"$cur"
label none "" tls private proton-pass false

begin relay-addy-alias
{
	rcv_tls mail.anonaddy.me 178.62.75.18
	hdr '<orders@wren.anonaddy.me>' 'Missing item in delivery'
	text "Hi," "" "the delivery was missing the charger." "" "Regards"
} >"$cur"
label none "" tls private addy false

begin relay-addy-reply-form
{
	rcv_tls mail.addy.io 178.62.75.18
	hdr '"support@helpdesk.example" <orders+support=helpdesk.example@wren.anonaddy.com>' 'Re: Missing item in delivery'
	cat <<'EOF'
Reply-To: orders+support=helpdesk.example@wren.anonaddy.com
X-AnonAddy-Original-Sender: support@helpdesk.example
X-AnonAddy-Original-Envelope-From: bounces@helpdesk.example
X-AnonAddy-Original-From-Header: Helpdesk <support@helpdesk.example>
X-AnonAddy-Authentication-Results: dkim=pass spf=pass dmarc=pass
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Thanks, the charger arrived today.
EOF
} >"$cur"
label none "" tls private addy true

begin relay-fastmail-masked
{
	rcv_tls mail-out1.messagingengine.com 103.168.172.151
	hdr '<plum.tiger4821@fastmail.com>' 'Beta programme sign-up'
	cat <<'EOF'
X-ME-Sender: <xms:AbCdEfGhIjKlMnOpQrStUvWxYz>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

I'd like to join the beta programme.
EOF
} >"$cur"
label none "" tls private fastmail-masked false

begin relay-generic-tokenized
{
	rcv_tls out.maskmail.example 198.51.100.140
	hdr '"Wendy" <wendy@customer.example>' 'Question about delivery times'
	cat <<'EOF'
Reply-To: r-7f3a9c2e4b1d8f60a5e3c2b1@maskmail.example
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

How long does delivery to Norway usually take?
EOF
} >"$cur"
# The sender is not masked (From is the person's own address): tokenized
# Reply-To only.
label none "" tls none "" true

# A relay the table does not know: From is an opaque token that shows the
# real sender in its display name.
begin relay-unknown-rewritten
{
	rcv_tls out.maskmail.example 198.51.100.140
	hdr '"wendy@customer.example" <q8v3k9x2m7p4t6w1z5r0@maskmail.example>' 'Delivery to Norway'
	text "How long does delivery to Norway usually take?"
} >"$cur"
label none "" tls private unknown false

# ----------------------------------------- lists, forwarding, marketing ----

begin list-mail
{
	rcv_tls lists.opensource.example 192.0.2.80
	hdr 'Xavier Dev <xavier@dev.example>' '[users] Crash when importing CSV' nomime
	cat <<'EOF'
Sender: "users" <users-bounces@lists.opensource.example>
Reply-To: users@lists.opensource.example
List-Id: Project users discussion <users.lists.opensource.example>
List-Post: <mailto:users@lists.opensource.example>
List-Unsubscribe: <https://lists.opensource.example/mailman/options/users>, <mailto:users-request@lists.opensource.example?subject=unsubscribe>
Precedence: list
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Importing a CSV with a BOM crashes version 2.3; anyone else seeing this?
EOF
} >"$cur"
label none "" tls list "" false

begin forwarded-srs
{
	printf 'Return-Path: <SRS0=x3Kd=SE=customer.example=yara@forwarder.example>\n'
	rcv_tls mail.forwarder.example 203.0.113.30
	hdr 'Yara Customer <yara@customer.example>' 'Broken zipper on jacket'
	cat <<'EOF'
X-Forwarded-To: support@helpdesk.example
X-Forwarded-For: yara@forwarder.example support@helpdesk.example
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

The zipper broke after two weeks.
EOF
} >"$cur"
label none "" tls forwarded "" false

begin forwarded-arc
{
	rcv_tls mail.university-alumni.example 192.0.2.200
	cat <<'EOF'
ARC-Seal: i=1; a=rsa-sha256; d=university-alumni.example; s=arc-2026; t=1793610000; cv=none;
	b=Fq3k9Lx2VbN8pQ7rT1sW4yZ6aC0dE5gH3jK8mN2pR7tV1xZ4bD6fH9kM3nQ8sU2wY5
ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=university-alumni.example; s=arc-2026;
	h=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	b=Qw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb4Nm6Qw8Er0Ty2Ui4Op6As8Df0Gh2Jk4
ARC-Authentication-Results: i=1; mx.university-alumni.example; dkim=pass header.d=customer.example; spf=pass smtp.mailfrom=customer.example
EOF
	hdr 'Zoe Alumna <zoe@customer.example>' 'Transcript request'
	text "Hello," "" "I need an official transcript sent to my new employer." "" "Zoe"
} >"$cur"
label none "" tls forwarded "" false

begin forwarded-resent
{
	rcv_tls mail.customer.example 198.51.100.23
	cat <<EOF
Resent-From: Abel Assistant <abel@customer.example>
Resent-To: support@helpdesk.example
Resent-Date: $date
Resent-Message-ID: <resent.$seq@customer.example>
EOF
	hdr 'Beth Boss <beth@customer.example>' 'Contract renewal terms'
	text "Abel, please check the renewal terms with their support." "" "Beth"
} >"$cur"
label none "" tls forwarded "" false

begin marketing-tokenized-replyto
{
	rcv_tls o1.email.vendor.com 149.72.10.20
	hdr '"Vendor Support" <support@vendor.com>' '[Ticket #88213] Your request has been updated'
	cat <<'EOF'
Reply-To: reply+8f2k4m6p9q1s3u5w7y@tickets.vendor.com
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

##- Please type your reply above this line -##

Your request #88213 has been updated. Reply to this email to add a comment.
EOF
} >"$cur"
label none "" tls none "" true

# -------------------------------------------------------------- threads ----

root_id="thread-root.1@customer.example"
begin thread-root
{
	std 'Cora Thread <cora@customer.example>' 'Printer offline after update'
	text "Hello," "" "after last night's update the printer shows as offline." "" "Cora"
} | sed "s/^Message-ID: .*/Message-ID: <$root_id>/" >"$cur"
label none "" tls none "" false "$root_id"

begin thread-reply-re
{
	std 'Cora Thread <cora@customer.example>' 'Re: Printer offline after update'
	printf 'In-Reply-To: <ticket-5512.a@helpdesk.example>\nReferences: <%s> <ticket-5512.a@helpdesk.example>\n' "$root_id"
	text "Restarting did not help, it is still offline." "" "> Please restart the printer." "" "Cora"
} >"$cur"
label none "" tls none "" false "$root_id"

begin thread-reply-aw
{
	std 'Cora Thread <cora@customer.example>' 'AW: Re: Printer offline after update'
	printf 'In-Reply-To: <ticket-5512.b@helpdesk.example>\nReferences: <%s>\n <ticket-5512.a@helpdesk.example>\n <ticket-5512.b@helpdesk.example>\n' "$root_id"
	text "Danke, jetzt geht es wieder." "" "Cora"
} >"$cur"
label none "" tls none "" false "$root_id"

begin thread-reply-sv
{
	std 'Cora Thread <cora@customer.example>' 'SV: Printer offline after update'
	printf 'In-Reply-To: <ticket-5512.c@helpdesk.example>\nReferences: <%s> <ticket-5512.c@helpdesk.example>\n' "$root_id"
	text "Tack, it works now." "" "Cora"
} >"$cur"
label none "" tls none "" false "$root_id"

begin thread-reply-re2
{
	std 'Cora Thread <cora@customer.example>' 'RE[2]: Printer offline after update'
	printf 'In-Reply-To: <ticket-5512.d@helpdesk.example>\n'
	text "One more question: can I get the new driver as a download?" "" "Cora"
} >"$cur"
label none "" tls none "" false "ticket-5512.d@helpdesk.example"

begin thread-relay-reply
{
	rcv_tls mx-out-01.duck.com 20.12.24.3
	hdr '<w11tzqdr@duck.com>' 'Re: [Ticket 3341] Replacement shipped'
	printf 'In-Reply-To: <ticket-3341.b@helpdesk.example>\nReferences: <ticket-3341.root@helpdesk.example> <ticket-3341.b@helpdesk.example>\n'
	text "Got it, thanks." "" "> Your replacement has shipped."
} >"$cur"
label none "" tls private duckduckgo false "ticket-3341.root@helpdesk.example"

# -------------------------------------------------------------- broken ----

begin broken-unterminated-boundary
{
	std 'Broken Sender <broken@customer.example>' 'Unterminated multipart'
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain; charset=utf-8

This part starts fine.

--never-closed
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64

AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
EOF
} >"$cur"
label unparseable "" tls none "" false

begin broken-deep-nesting
{
	std 'Broken Sender <broken@customer.example>' '300 nested multiparts'
	for ((i = 0; i < 300; i++)); do
		printf 'Content-Type: multipart/mixed; boundary="n%d"\n\n--n%d\n' "$i" "$i"
	done
	printf 'Content-Type: text/plain\n\ndeep\n'
	for ((i = 299; i >= 0; i--)); do
		printf '\n--n%d--\n' "$i"
	done
} >"$cur"
label unparseable "" tls none "" false

begin broken-huge-header
{
	hdr 'Broken Sender <broken@customer.example>' 'A header line of 1 MB'
	printf 'X-Junk: '
	head -c 1048576 /dev/zero | tr '\0' 'a'
	printf '\n'
	text "The header above is one line of a mebibyte."
} >"$cur"
label unparseable "" unknown none "" false

begin broken-binary-junk
# Deterministic pseudo-random bytes: AES-CTR over zeros with a fixed key.
openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f -iv 0f0e0d0c0b0a09080706050403020100 \
	-in <(head -c 8192 /dev/zero) -out "$cur"
label unparseable "" unknown none "" false

# ------------------------------------------- shapes of real mail (#15) ----
# Written from the facts of real mail (see testdata/corpus/README.md, "Shapes
# of real mail"), not copied from it.

begin pgp-mime-exchange-mangled
{
	std 'Alice Customer <alice@customer.example>' 'PGP/MIME through Exchange'
	cat <<'EOF'
Content-Type: multipart/mixed; boundary="_003_exch_mangled_"

--_003_exch_mangled_
Content-Type: text/plain; charset="us-ascii"


--_003_exch_mangled_
Content-Type: application/pgp-encrypted; name="PGPMIME Versions Identification"
Content-Description: PGP/MIME Versions Identification
Content-Disposition: attachment; filename="PGPMIME Versions Identification"
Content-Transfer-Encoding: base64

EOF
	printf 'Version: 1\r\n' | base64
	cat <<'EOF'

--_003_exch_mangled_
Content-Type: application/octet-stream; name="encrypted.asc"
Content-Description: OpenPGP encrypted message.asc
Content-Disposition: attachment; filename="encrypted.asc"
Content-Transfer-Encoding: base64

EOF
	base64 -w 76 <"$work/armor.asc"
	printf '\n--_003_exch_mangled_--\n'
} >"$cur"
label pgp-encrypted pgp-mime tls none "" false

begin smime-certs-only
{
	std 'Alice Customer <alice@customer.example>' 'My certificate'
	cat <<'EOF'
Content-Type: application/pkcs7-mime; name="smime.p7c"; smime-type="certs-only"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="smime.p7c"

EOF
	openssl crl2pkcs7 -nocrl -certfile "$work/customer.crt" -outform DER | base64 -w 76
} >"$cur"
label none "" tls none "" false

begin smime-signed-no-signature-part
{
	rcv_tls mail.parcel-notice.example 203.0.113.140
	hdr '"Parcel Service" <notice@parcel-notice.example>' 'Your parcel is waiting'
	cat <<'EOF'
Content-Type: multipart/signed; protocol="application/pkcs7-signature";
	micalg=sha-256; boundary="sig-missing-1"

--sig-missing-1
Content-Type: multipart/alternative; boundary="sig-missing-alt"

--sig-missing-alt
Content-Type: text/plain; charset=utf-8

Your parcel is waiting at the depot. Confirm the delivery date online.

--sig-missing-alt
Content-Type: text/html; charset=utf-8

<p>Your parcel is waiting at the depot. Confirm the delivery date online.</p>

--sig-missing-alt--

--sig-missing-1--
EOF
} >"$cur"
label none "" tls none "" false

begin arc-microsoft-own-sender
{
	cat <<EOF
Received: from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2121.outbound.protection.outlook.com [40.107.22.121])
	(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Ms$(printf '%04X' $((seq * 37)))
	for <support@helpdesk.example>; $date
ARC-Seal: i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none;
	b=Zk3pQ8mN2vX7rT1sW4yZ6aC0dE5gH3jK8mN2pR7tV1xZ4bD6fH9kM3nQ8sU2wY5
ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com;
	s=arcselector9901; h=From:Date:Subject:Message-ID:Content-Type:MIME-Version;
	bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
	b=Qw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb4Nm6Qw8Er0Ty2Ui4Op6As8Df0Gh2Jk4
ARC-Authentication-Results: i=1; mx.microsoft.com 1; spf=pass
	smtp.mailfrom=customer.example; dmarc=pass action=none
	header.from=customer.example; dkim=pass header.d=customer.example; arc=none
Received: from DB9PR08MB6588.eurprd08.prod.outlook.com
	([fe80::9d5c:21b0:4a3e:7c11]) by DB9PR08MB6588.eurprd08.prod.outlook.com
	([fe80::9d5c:21b0:4a3e:7c11%6]) with mapi id 15.20.7544.041; $date
EOF
	hdr 'Olga Office <olga@customer.example>' 'Licence renewal for 25 seats'
	text "Hello," "" "please renew our licence for 25 seats from January." "" "Olga"
} >"$cur"
label none "" tls none "" false

begin arc-gmail-receiver
{
	cat <<EOF
Received: by 2002:a05:7300:1e0d:b0:1a2:3b4c:5d6e with SMTP id q13csp2841734dyq;
        $date
ARC-Seal: i=1; a=rsa-sha256; t=1793610000; cv=none;
        d=google.com; s=arc-20160816;
        b=Fq3k9Lx2VbN8pQ7rT1sW4yZ6aC0dE5gH3jK8mN2pR7tV1xZ4bD6fH9kM3nQ8sU2wY5
ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; s=arc-20160816;
        h=subject:message-id:date:from:to:mime-version;
        bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
        b=Qw2Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz0Xc2Vb4Nm6Qw8Er0Ty2Ui4Op6As8Df0Gh2Jk4
ARC-Authentication-Results: i=1; mx.google.com;
       spf=pass (google.com: domain of pat@partner.example designates 198.51.100.88 as permitted sender) smtp.mailfrom=pat@partner.example
Received: from mail.partner.example (mail.partner.example. [198.51.100.88])
        by mx.google.com with ESMTPS id a9-20020a170902b58900b001c9cc44eb4fsi3324935pls.10.2026.11.02
        for <support@helpdesk.example>
        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);
        $date
EOF
	hdr 'Pat Partner <pat@partner.example>' 'Shipping labels for December'
	text "Hi," "" "attached are the shipping labels for December, as discussed." "" "Pat"
} >"$cur"
label none "" tls none "" false

begin simplelogin-abuse-report
{
	cat <<EOF
X-SimpleLogin-Client-IP: 40.92.66.13
Received: from EUR01-VE1-obe.outbound.protection.outlook.com (mail-oln040092066013.outbound.protection.outlook.com [40.92.66.13])
	(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Mt$(printf '%04X' $((seq * 37)))
	for <support@helpdesk.example>; $date
EOF
	hdr '<staff@hotmail.com>' 'complaint about message from 40.92.66.13'
	text "This is an email abuse report for an email message received from IP 40.92.66.13." "A user marked the message as junk."
} >"$cur"
label none "" tls none "" false

begin relay-apple-forged-sender
{
	cat <<EOF
Received: from bulk.survey-rewards.example (bulk.survey-rewards.example [203.0.113.189])
	by mx1.helpdesk.example (Postfix) with ESMTP id 4Xk2Mv$(printf '%04X' $((seq * 37)))
	for <support@helpdesk.example>; $date
Sender: contact@privaterelay.appleid.com
EOF
	hdr '"Rewards Team" <rewards@survey-rewards.example>' 'You have been selected'
	text "Congratulations, you have been selected for a reward." "Confirm your details to claim it."
} >"$cur"
label none "" plain none "" false

begin relay-apple-icloud-hme
{
	rcv_tls st43p00im-ztfb10061701.me.com 17.58.63.177
	hdr '<quiet_maple_0k@icloud.com>' 'Warranty for my headphones'
	text "Hello," "" "my headphones stopped charging after two months. Is this covered by the warranty?" "" "Thanks"
} >"$cur"
label none "" tls private apple-hide-my-email false

begin replyto-name-with-digits
{
	rcv_tls mail.tradehouse.example 198.51.100.141
	hdr '"Martin Trade" <info@tradehouse.example>' 'Partnership proposal'
	printf 'Reply-To: <martinkofitrader09@gmail.com>\n'
	text "Dear Sir," "" "we would like to propose a partnership. Reply to my private address." "" "Martin"
} >"$cur"
label none "" tls none "" false

begin plain-qmail-helo-private
{
	cat <<EOF
Received: from mailout.webhost.example (mailout.webhost.example [198.51.100.152])
	(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))
	(No client certificate requested)
	by mx1.helpdesk.example (Postfix) with ESMTPS id 4Xk2Mw$(printf '%04X' $((seq * 37)))
	for <support@helpdesk.example>; $date
Received: from mail-int.webhost.example (unknown [10.50.252.5])
	by mailout.webhost.example (Postfix) with ESMTP id 2B1C4
	for <support@helpdesk.example>; $date
Received: (qmail 4441 invoked from network); 2 Nov 2026 08:42:45 -0000
Received: from unknown (HELO ?192.168.0.110?) (quinn@webhost.example@102.69.220.202)
  by mail-int with SMTP; 2 Nov 2026 08:42:41 -0000
EOF
	hdr 'Quinn Customer <quinn@webhost.example>' 'Where is my order?'
	text "Hello," "" "order 8812 has not arrived yet." "" "Quinn"
} >"$cur"
label none "" plain none "" false

# ---------------------------------------------------- mbox and Maildir ----

# mboxrd (From_ lines, ">From " quoting of body lines that start with it).
mbox_add() { # FROM_LINE FILE
	printf '%s\n' "$1"
	perl -pe 's/^(>*From )/>$1/' "$2"
	printf '\n'
}
{
	mbox_add 'From alice@customer.example Mon Nov  2 08:01:00 2026' "$out/plain-clean.eml"
	name=mbox-from-lines seq=$((seq + 1))
	mbox_add 'From MAILER-DAEMON Mon Nov  2 08:02:00 2026' <(
		hdr 'Fred From <fred@customer.example>' 'A body with From lines'
		text "Hello," "From now on, please use my new address." ">From the archive: a line that was already quoted." "Fred"
	)
	mbox_add 'From alice@customer.example Mon Nov  2 08:03:00 2026' "$out/smime-enveloped.eml"
	mbox_add 'From orders@webshop.example Mon Nov  2 08:04:00 2026' "$out/relay-firefox-via-relay.eml"
	mbox_add 'From alice@customer.example Mon Nov  2 08:05:00 2026' "$out/pgp-inline-encrypted.eml"
} >"$out/mbox/sample.mbox"

: >"$out/maildir/tmp/.keep" # keeps tmp/ in version control
cp "$out/plain-clean.eml" "$out/maildir/cur/1793606400.M1P100.corpus,S=1000:2,S"
cp "$out/pgp-mime-encrypted.eml" "$out/maildir/new/1793606460.M2P100.corpus"
cp "$out/list-mail.eml" "$out/maildir/new/1793606520.M3P100.corpus"

count=$(($(wc -l <"$labels") - 1))
echo "gencorpus: wrote $count messages, labels.tsv, mbox/sample.mbox and maildir/ to $out" >&2
