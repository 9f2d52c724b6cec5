package store

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailtriage/mailtriage/analyzer"
)

// FuzzOutcomeRecord: any outcome survives encoding, and any stored bytes
// decode to an outcome or an error, never a panic.
func FuzzOutcomeRecord(f *testing.F) {
	f.Add("<a@b>/00ff", "<a@b>", string(analyzer.ActionForwarded), "INBOX", "<root@b>", uint32(1), uint32(2), int64(0), []byte(`{"a":"flagged","t":"2026-01-01T00:00:00Z"}`))
	f.Add("fp{}\x00\xff", "", string(analyzer.ActionForwardFailed), "Triage/Review", "", uint32(0), uint32(4294967295), int64(-1), []byte(`{"t":1}`))
	f.Fuzz(func(t *testing.T, fp, msgID, action, folder, thread string, uv, uid uint32, at int64, stored []byte) {
		o := Outcome{Fingerprint: fp, MessageID: msgID, Action: analyzer.Action(action), Folder: folder, ThreadKey: thread,
			UIDValidity: uv, UID: uid, At: time.Unix(0, at).UTC()}
		_, _ = decodeOutcome(fp, stored)
		b, err := encodeOutcome(o)
		if fp == "" {
			if err == nil {
				t.Fatalf("encodeOutcome without a fingerprint succeeded")
			}
			return
		}
		if err != nil {
			t.Fatalf("encodeOutcome(%+v): %v", o, err)
		}
		got, err := decodeOutcome(fp, b)
		if err != nil {
			t.Fatalf("decodeOutcome(%s): %v", b, err)
		}
		if utf8.ValidString(msgID) && utf8.ValidString(action) && utf8.ValidString(folder) && utf8.ValidString(thread) && !sameOutcome(got, o) {
			t.Fatalf("round trip of %+v through %s gave %+v", o, b, got)
		}
		// Invalid UTF-8 becomes U+FFFD once; after that the record is stable.
		again, err := encodeOutcome(got)
		if err != nil {
			t.Fatalf("encodeOutcome(%+v): %v", got, err)
		}
		if got2, err := decodeOutcome(fp, again); err != nil || !sameOutcome(got2, got) {
			t.Fatalf("second round trip of %+v gave %+v, %v", got, got2, err)
		}
	})
}
