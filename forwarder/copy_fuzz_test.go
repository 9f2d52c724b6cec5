package forwarder

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	gotextproto "github.com/emersion/go-message/textproto"

	"github.com/emersion/go-message"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// forwardedCopy is what the helpdesk's server stores for raw forwarded by
// fw: the copy the sink received, and the number of header fields we put
// on top of the original.
func forwardedCopy(t *testing.T, fw *Forwarder, sink *smtpsink.Sink, v analyzer.Verdict, raw []byte) (added int, stored []byte) {
	t.Helper()
	before := len(sink.Messages())
	if err := forwardBody(t.Context(), fw, v, false, bytesBody(raw)); err != nil {
		t.Fatalf("forward: %v", err)
	}
	msgs := sink.Messages()
	if len(msgs) != before+1 {
		t.Fatalf("the sink holds %d messages, want %d", len(msgs), before+1)
	}
	stored = msgs[len(msgs)-1].Data
	m := fw.wrap(v, false, true, "mailtriage.test")
	h, err := gotextproto.ReadHeader(bufio.NewReader(strings.NewReader(m.header + "\r\n")))
	if err != nil {
		t.Fatalf("parse our own header: %v", err)
	}
	return h.Len(), stored
}

// FuzzForwardedCopyMatchesVerdict holds that what the helpdesk can parse is
// what we classified: wherever go-message reads the forwarded copy of a
// message the analyzer judged parseable, it finds below our fields the same
// header field names as the analyzer saw, in order (the sender's
// X-Mailtriage-* renamed), and the same top-level media type. A bare CR
// made a line break, say, gives it fields the analyzer never judged.
func FuzzForwardedCopyMatchesVerdict(f *testing.F) {
	f.Add([]byte("Subject: hi\rX-Mailtriage-Released: yes\rContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\nFrom: a@example.com\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n"))
	f.Add([]byte("From: a@example.com\r\nX-Mailtriage-Relay: none\r\nContent-Type: text/plain\r\n\r\nbody\r\n"))
	f.Add([]byte("From: a@example.com\nSubject: lf only\n folded\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\nhi\n--x--\n"))
	f.Add([]byte("Content-Type: text/html\r\nSubject: a\x00b\r\n\rContent-Type: multipart/encrypted\r\n\r\n"))
	f.Add([]byte("Subject: x\r\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\n"))
	f.Add([]byte("From: a@example.com\r\n\r\r\nContent-Type: text/html\r\nX-Other: 1\r\n\r\nbody\r\n"))
	classify := analyzer.New(nil)
	sink := startSink(f, smtpsink.Options{})
	fw := newForwarder(f, sink, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := analyzer.FromRaw(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("FromRaw on a bytes.Reader: %v", err)
		}
		v := classify.Classify(m, analyzer.DefaultPolicy())
		if v.Encryption == analyzer.EncryptionUnparseable {
			return // judged unparseable: flagged, not forwarded
		}
		added, stored := forwardedCopy(t, fw, sink, v, raw)
		e, err := message.Read(bytes.NewReader(stored))
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return // the helpdesk cannot read this header either
		}
		var got []string
		for i, fl := 0, e.Header.Fields(); fl.Next(); i++ {
			if i >= added {
				got = append(got, strings.ToLower(fl.Key()))
			}
		}
		var want []string
		for _, fl := range m.Header {
			name := strings.ToLower(fl.Name)
			if rest, ok := strings.CutPrefix(name, strings.ToLower(ownPrefix)); ok {
				name = strings.ToLower(renamedPrefix) + rest
			}
			want = append(want, name)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("field names of the copy %q\nthe analyzer saw    %q\nraw %q", got, want, raw)
		}
		// A value that is no type/subtype means text/plain to the analyzer
		// (RFC 2045 §5.2); mime.ParseMediaType takes a lone token.
		if typ, _, err := e.Header.ContentType(); err == nil && strings.Contains(typ, "/") && typ != m.Root.Type {
			t.Fatalf("top-level type of the copy %q, the analyzer's %q\nraw %q", typ, m.Root.Type, raw)
		}
	})
}
