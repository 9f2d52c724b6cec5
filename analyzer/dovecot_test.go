package analyzer

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// TestConstructorsAgreeDovecot delivers the rule-table messages and the test
// corpus into a private Dovecot and requires FromIMAP on what Dovecot answers
// to give the model and verdict FromRaw gives on the file.
func TestConstructorsAgreeDovecot(t *testing.T) {
	type row struct{ name, raw string }
	var rows []row
	for _, e := range encryptionCases {
		rows = append(rows, row{e.name, e.raw})
	}
	for _, e := range agreementCases {
		rows = append(rows, row{e.name, e.raw})
	}
	files, err := filepath.Glob(filepath.Join("..", "testdata", "corpus", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus messages in ../testdata/corpus: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{filepath.Base(f), string(b)})
	}
	// What the raw stream shows and IMAP facts cannot (see
	// TestTruncatedMultipart).
	truncated := map[string]bool{"truncated multipart": true, "broken-unterminated-boundary.eml": true}

	d := testenv.StartDovecot(t)
	msgs := make([][]byte, len(rows))
	for i, r := range rows {
		msgs[i] = []byte(r.raw)
	}
	d.Deliver(testenv.DovecotUser, "INBOX", msgs...)
	c := d.Dial(t, testenv.DovecotUser, testenv.DovecotPassword)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select INBOX: %v", err)
	}
	an := New(nil)
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			mr, err := FromRaw(bytes.NewReader(msgs[i]))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			header, bs, samples, size := fetchFacts(t, c, imap.UID(i+1))
			mi, err := FromIMAP(header, bs, samples, size)
			if err != nil {
				t.Fatalf("FromIMAP: %v", err)
			}
			vr, vi := an.Classify(mr, DefaultPolicy()), an.Classify(mi, DefaultPolicy())
			if truncated[r.name] {
				if vr.Encryption != EncryptionUnparseable {
					t.Errorf("raw verdict %s, want unparseable", vr.Encryption)
				}
				return
			}
			if len(mr.Problems) == 0 {
				// A broken message need not give the same model, only the
				// same verdict.
				for _, diff := range modelDiff(mr, mi) {
					t.Errorf("model: %s", diff)
				}
			}
			if !reflect.DeepEqual(vr, vi) {
				t.Errorf("verdicts differ:\n raw  %s\n imap %s", verdictLine(vr), verdictLine(vi))
			}
		})
	}
}

func verdictLine(v Verdict) string {
	return string(v.Encryption) + " " + v.EncryptionScheme + " " + string(v.TransportTLS) + " " + string(v.Relay) + " " + v.RelayService + " " + v.Fingerprint + " [" + strings.Join(v.Reasons, " | ") + "]"
}
