package analyzer

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/emersion/go-imap/v2"
)

func TestCloseCheck(t *testing.T) {
	mixed := &imap.BodyStructureMultiPart{Subtype: "mixed", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b1"}}}
	head := "Subject: x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
	tests := []struct {
		name      string
		bs        imap.BodyStructure
		body      string
		truncated bool
	}{
		{"closed", mixed, head + "--b1--\r\n", false},
		{"closed, epilogue after", mixed, head + "--b1--\r\nepilogue\r\n", false},
		{"closed, LF line ends", mixed, strings.ReplaceAll(head, "\r\n", "\n") + "--b1--\n", false},
		{"cut short", mixed, head + "--b1\r\nContent-Type: application/octet-stream\r\n\r\nAAEC", true},
		{"delimiter only mid-line does not count", mixed, head + "text --b1-- text\r\n", true},
		{"no extension data: not checked", &imap.BodyStructureMultiPart{Subtype: "mixed"}, head, false},
		{"single part: not checked", &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain"}, "Subject: x\r\n\r\nhi", false},
	}
	for _, tc := range tests {
		// One byte per read puts the delimiter across every possible joint.
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(tc.body),
			"one byte": iotest.OneByteReader(strings.NewReader(tc.body)),
		} {
			got, err := io.ReadAll(CloseCheck(r, tc.bs))
			if string(got) != tc.body {
				t.Errorf("%s (%s): body changed", tc.name, name)
			}
			if errors.Is(err, ErrTruncated) != tc.truncated {
				t.Errorf("%s (%s): err = %v, want truncated %v", tc.name, name, err, tc.truncated)
			}
			var te *TruncationError
			if tc.truncated && (!errors.As(err, &te) || te.Error() != "part root: multipart/mixed ends without its close delimiter (truncated)") {
				t.Errorf("%s (%s): err = %v, want the part named as FromRaw names it", tc.name, name, err)
			}
		}
	}
}

// TestCloseCheckMatchesFromRaw: the reason the poller gives a truncated
// message is the one FromRaw gives, so scan and the worker agree.
func TestCloseCheckMatchesFromRaw(t *testing.T) {
	raw := "Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\nAAEC\r\n"
	m, err := FromRaw(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	v := New(nil).Classify(m, DefaultPolicy())
	mixed := &imap.BodyStructureMultiPart{Subtype: "MIXED", Extended: &imap.BodyStructureMultiPartExt{Params: map[string]string{"boundary": "b1"}}}
	_, cerr := io.ReadAll(CloseCheck(strings.NewReader(raw), mixed))
	if cerr == nil {
		t.Fatal("CloseCheck passed a truncated message")
	}
	var clean Verdict
	clean.MarkUnparseable(cerr.Error(), DefaultPolicy())
	if v.Encryption != EncryptionUnparseable || len(v.Reasons) == 0 || v.Reasons[0] != clean.Reasons[0] {
		t.Errorf("FromRaw says %s %q; CloseCheck says %q", v.Encryption, v.Reasons, clean.Reasons)
	}
	if clean.Class != ClassUnparseable || clean.Action != ActionFlag {
		t.Errorf("MarkUnparseable: class %s action %s", clean.Class, clean.Action)
	}
	if p := (Policy{ClassUnparseable: ActionForward}); p.Action(ClassUnparseable) != ActionForward || (Policy{}).Action(ClassUnparseable) != ActionFlag {
		t.Error("Policy.Action does not honour the map or the default")
	}
}
