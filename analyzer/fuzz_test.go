package analyzer

import (
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// checkVerdict asserts what must hold for any input: a known class and an
// action, every reason non-empty.
func checkVerdict(t *testing.T, m *Message) {
	t.Helper()
	v := New(nil).Classify(m, DefaultPolicy())
	switch v.Class {
	case ClassUnparseable, ClassEncrypted, ClassSigned, ClassPrivateRelay, ClassClean:
	default:
		t.Fatalf("unknown class %q", v.Class)
	}
	if v.Action != ActionForward && v.Action != ActionFlag {
		t.Fatalf("unknown action %q", v.Action)
	}
	for _, r := range v.Reasons {
		if r == "" {
			t.Fatal("empty reason")
		}
	}
	m.Walk(func(p *Part, _ int) {
		if len(p.Sample) > 4*SampleSize {
			t.Fatalf("part %s: sample of %d octets", p.Path, len(p.Sample))
		}
	})
}

func FuzzFromRaw(f *testing.F) {
	for _, c := range encryptionCases {
		f.Add([]byte(c.raw))
	}
	for _, c := range agreementCases {
		f.Add([]byte(c.raw))
	}
	f.Add([]byte(msg("Content-Type: multipart/mixed; boundary=a\n", strings.Repeat("--a\nContent-Type: multipart/mixed; boundary=a\n\n", 30))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := FromRaw(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("FromRaw on a bytes.Reader failed: %v", err)
		}
		checkVerdict(t, m)
	})
}

// fuzzStructures are the fixed structures FuzzFromIMAP fills with fuzzed
// header octets and samples.
func fuzzStructures() []imap.BodyStructure {
	text := func(sub, enc string, params map[string]string) *imap.BodyStructureSinglePart {
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: sub, Encoding: enc, Params: params, Size: 100}
	}
	return []imap.BodyStructure{
		text("plain", "quoted-printable", map[string]string{"charset": "utf-8"}),
		&imap.BodyStructureMultiPart{Subtype: "alternative", Children: []imap.BodyStructure{
			text("plain", "base64", map[string]string{"charset": "utf-16"}),
			text("html", "7bit", map[string]string{"charset": "iso-8859-1"}),
		}},
		&imap.BodyStructureMultiPart{Subtype: "mixed", Children: []imap.BodyStructure{
			text("plain", "8bit", nil),
			&imap.BodyStructureSinglePart{Type: "application", Subtype: "pkcs7-mime", Encoding: "base64",
				Params:   map[string]string{"name": "smime.p7m"},
				Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "attachment", Params: map[string]string{"filename*": "utf-8''smime.p7m"}}}},
		}},
		&imap.BodyStructureMultiPart{Subtype: "signed", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"protocol": "application/pkcs7-signature"}},
			Children: []imap.BodyStructure{
				&imap.BodyStructureSinglePart{Type: "application", Subtype: "pkcs7-mime", Encoding: "base64", Params: map[string]string{"smime-type": "signed-data"}},
				&imap.BodyStructureSinglePart{Type: "application", Subtype: "pkcs7-signature", Encoding: "base64"},
			}},
		// PGP/MIME as Exchange rewraps it: the octet-stream's sample decides.
		&imap.BodyStructureMultiPart{Subtype: "mixed", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b"}},
			Children: []imap.BodyStructure{
				text("plain", "7bit", nil),
				&imap.BodyStructureSinglePart{Type: "application", Subtype: "pgp-encrypted", Encoding: "base64"},
				&imap.BodyStructureSinglePart{Type: "application", Subtype: "octet-stream", Encoding: "base64", Params: map[string]string{"name": "encrypted.asc"}},
			}},
	}
}

func FuzzFromIMAP(f *testing.F) {
	f.Add([]byte("From: a@b.example\r\nSubject: hi\r\n\r\n"), []byte("-----BEGIN PGP MESSAGE-----\r\n"), []byte("MIAGCSqGSIb3DQEHA6CAMIACAQAx"), uint8(0))
	f.Add([]byte(tlsHop+"Message-ID: <x@y>\n\n"), []byte("=E2=80=94 hi =\r\n"), []byte("<br>-----BEGIN PGP SIGNED MESSAGE-----<br>"), uint8(1))
	f.Add([]byte("From: x@duck.com\r\nReply-To: a_at_b.example_xyz@duck.com\r\n\r\n"), []byte("//79"), []byte("MIAGCSqGSIb3DQEHAqCAMIACAQEx"), uint8(2))
	f.Add([]byte(" junk\r\n"), []byte{0xff, 0xfe, 0}, []byte{}, uint8(3))
	f.Add([]byte("From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"), []byte("\r\n"), []byte("hQEMA5ZHj1sX7QqWAQf/"), uint8(4))
	structures := fuzzStructures()
	f.Fuzz(func(t *testing.T, header, sample1, sample2 []byte, which uint8) {
		bs := structures[int(which)%len(structures)]
		samples := map[string][]byte{}
		for i, p := range SamplePaths(bs) {
			if i%2 == 0 {
				samples[p] = sample1
			} else {
				samples[p] = sample2
			}
		}
		m, err := FromIMAP(header, bs, samples, int64(len(header)))
		if err != nil {
			t.Fatalf("FromIMAP: %v", err)
		}
		checkVerdict(t, m)
	})
}
