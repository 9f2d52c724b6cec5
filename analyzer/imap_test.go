package analyzer

import (
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// agreementCases add to the rule tables what the agreement between the
// constructors hinges on: encodings, charsets, RFC 2231/2047 names, nesting
// and samples cut at SampleSize.
var agreementCases = []struct{ name, raw string }{
	{"RFC 2231 file name", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nGr=FC=DFe aus M=FCnchen\n--b1\nContent-Type: application/pdf\nContent-Disposition: attachment;\n filename*0*=UTF-8''Rechnung%20f%C3%BCr%20;\n filename*1*=M%C3%BCller.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--b1--\n")},
	{"RFC 2047 file name", msg("Content-Type: multipart/mixed; boundary=b1\n",
		"--b1\nContent-Type: text/plain\n\nHi\n--b1\nContent-Type: application/octet-stream; name=\"=?UTF-8?B?w6TDtsO8LnA3bQ==?=\"\nContent-Disposition: attachment; filename=\"=?UTF-8?B?w6TDtsO8LnA3bQ==?=\"\nContent-Transfer-Encoding: base64\n\n"+b64(der(oidEnveloped))+"--b1--\n")},
	{"nested alternative and related", msg("Content-Type: multipart/mixed; boundary=outer\n",
		"preamble\n--outer\nContent-Type: multipart/alternative; boundary=alt\n\n--alt\nContent-Type: text/plain; charset=utf-8\n\nplain\n--alt\nContent-Type: multipart/related; boundary=rel\n\n--rel\nContent-Type: text/html\n\n<p>html</p>\n--rel\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--rel--\n--alt--\n--outer\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--outer--\nepilogue\n")},
	{"long base64 text cut at the sample size", msg("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n",
		b64([]byte(strings.Repeat("Lorem ipsum dolor sit amet, ä ö ü. ", 400))))},
	{"long quoted-printable HTML", msg("Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n",
		strings.Repeat("<p>Gr=C3=BC=C3=9Fe =E2=80=94 a long line that goes on and on and on and o=\nn.</p>\n", 120))},
	{"UTF-16 text", msg("Content-Type: text/plain; charset=utf-16\nContent-Transfer-Encoding: base64\n", b64([]byte("\xff\xfeH\x00i\x00\n\x00")))},
	{"encoded subject and names", "From: =?ISO-8859-1?Q?J=F6rg?= <j@customer.example>\nSubject: =?UTF-8?B?UmU6IMOEcmdlcg==?=\nMessage-ID: <x@y>\n\nbody\n"},
	{"no MIME at all", "From: a@b.example\nSubject: old\n\njust text\n"},
}

// TestDecodedNames checks that file names and subjects come out decoded.
func TestDecodedNames(t *testing.T) {
	m, err := FromRaw(strings.NewReader(agreementCases[0].raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Root.Children[1].Filename; got != "Rechnung für Müller.pdf" {
		t.Errorf("RFC 2231 file name %q", got)
	}
	if got := string(m.Root.Children[0].Sample); got != "Grüße aus München\r\n" && got != "Grüße aus München" {
		t.Errorf("latin-1 quoted-printable sample %q", got)
	}
	m, err = FromRaw(strings.NewReader(agreementCases[1].raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Root.Children[1].Filename; got != "äöü.p7m" {
		t.Errorf("RFC 2047 file name %q", got)
	}
}

// TestTruncatedMultipart documents the one disagreement by design: the raw
// stream shows a missing close delimiter, IMAP facts do not.
func TestTruncatedMultipart(t *testing.T) {
	raw := msg("Content-Type: multipart/mixed; boundary=b1\n", "--b1\nContent-Type: text/plain\n\nhello\n")
	m, err := FromRaw(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 1 || !strings.Contains(m.Problems[0], "close delimiter") {
		t.Errorf("problems %q, want the missing close delimiter", m.Problems)
	}
}

// TestPartHeaderMeetsBoundary: a part whose header runs into the next
// boundary has an empty body; the parser goes on with the next part.
func TestPartHeaderMeetsBoundary(t *testing.T) {
	raw := msg("Content-Type: multipart/mixed; boundary=b1\n", "--b1\nContent-Type: text/plain\n--b1\nContent-Type: text/html\n\n<p>hello</p>\n--b1--\n")
	m, err := FromRaw(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) != 0 || len(m.Root.Children) != 2 || m.Root.Children[1].Type != "text/html" || string(m.Root.Children[1].Sample) != "<p>hello</p>" {
		t.Errorf("problems %q, parts %d, second part %+v", m.Problems, len(m.Root.Children), m.Root.Children[len(m.Root.Children)-1])
	}
}

// TestSamplePathsOpenPGPData checks that an application/octet-stream part
// is sampled only right after an application/pgp-encrypted part (the shape
// Exchange leaves of PGP/MIME), so the poller fetches no other attachment.
func TestSamplePathsOpenPGPData(t *testing.T) {
	leaf := func(typ, subtype string) imap.BodyStructure {
		return &imap.BodyStructureSinglePart{Type: typ, Subtype: subtype, Encoding: "base64", Size: 900}
	}
	mixed := func(children ...imap.BodyStructure) imap.BodyStructure {
		return &imap.BodyStructureMultiPart{Subtype: "mixed", Children: children,
			Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b1"}}}
	}
	cases := []struct {
		name string
		bs   imap.BodyStructure
		want []string
	}{
		{"Exchange's rewrapped PGP/MIME", mixed(leaf("text", "plain"), leaf("application", "pgp-encrypted"), leaf("application", "octet-stream")), []string{"1", "3"}},
		{"an octet-stream after text is not sampled", mixed(leaf("text", "plain"), leaf("application", "octet-stream")), []string{"1"}},
		{"an octet-stream before the version part is not sampled", mixed(leaf("application", "octet-stream"), leaf("application", "pgp-encrypted")), nil},
		{"only the part right after the version part", mixed(leaf("application", "pgp-encrypted"), leaf("application", "octet-stream"), leaf("application", "octet-stream")), []string{"2"}},
		{"siblings in another multipart do not count", mixed(mixed(leaf("application", "pgp-encrypted")), leaf("application", "octet-stream")), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := SamplePaths(c.bs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("SamplePaths = %q, want %q", got, c.want)
			}
		})
	}
}
