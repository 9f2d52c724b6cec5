package analyzer_test

// The agreement tests: FromIMAP on the facts the poller fetches
// (poller.FetchFacts, the poller's own fetch) must give the model and the
// verdict FromRaw gives on the same octets. They live outside package
// analyzer because they import the poller, which imports the analyzer.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/poller"
)

// fromIMAP fetches the facts of uid in c's selected folder with the
// poller's own fetch and builds the model from them.
func fromIMAP(t *testing.T, c *imapclient.Client, uid imap.UID) *analyzer.Message {
	t.Helper()
	facts, err := poller.FetchFacts(t.Context(), c, []imap.UID{uid})
	if err != nil || len(facts) != 1 {
		t.Fatalf("fetch facts of uid %d: %d messages, %v", uid, len(facts), err)
	}
	f := facts[0]
	m, err := analyzer.FromIMAP(f.Header, f.BodyStructure, f.Samples, f.Size)
	if err != nil {
		t.Fatalf("FromIMAP: %v", err)
	}
	return m
}

// modelDiff lists where two models differ, sizes aside (servers count them
// their own way).
func modelDiff(a, b *analyzer.Message) []string {
	var diffs []string
	if !reflect.DeepEqual(a.Header, b.Header) {
		diffs = append(diffs, fmt.Sprintf("header: raw %q imap %q", a.Header, b.Header))
	}
	if !reflect.DeepEqual(a.Problems, b.Problems) {
		diffs = append(diffs, fmt.Sprintf("problems: raw %q imap %q", a.Problems, b.Problems))
	}
	var pa, pb []*analyzer.Part
	a.Walk(func(p *analyzer.Part, _ int) { pa = append(pa, p) })
	b.Walk(func(p *analyzer.Part, _ int) { pb = append(pb, p) })
	if len(pa) != len(pb) {
		return append(diffs, fmt.Sprintf("parts: raw %d imap %d", len(pa), len(pb)))
	}
	for i := range pa {
		x, y := pa[i], pb[i]
		if x.Path != y.Path || x.Type != y.Type || x.Disposition != y.Disposition || x.Filename != y.Filename ||
			x.Encoding != y.Encoding || x.Sampled != y.Sampled || !bytes.Equal(x.Sample, y.Sample) ||
			x.Params["smime-type"] != y.Params["smime-type"] || x.Params["protocol"] != y.Params["protocol"] || x.Params["charset"] != y.Params["charset"] {
			diffs = append(diffs, fmt.Sprintf("part %d: raw %+v imap %+v", i, *x, *y))
		}
	}
	return diffs
}

// TestConstructorsAgree APPENDs the rule-table and agreement messages to the
// in-process IMAP server and requires the model and verdict of FromIMAP on
// the fetched facts to be those of FromRaw.
func TestConstructorsAgree(t *testing.T) {
	c := testenv.MemIMAP(t)
	an := analyzer.New(nil)
	var rows []analyzer.Row
	for _, e := range analyzer.EncryptionRows() {
		switch e.Name {
		case "truncated multipart":
			continue // FromIMAP cannot see a missing close delimiter: see TestTruncatedMultipart
		case "broken multipart without boundary":
			continue // go-imap's server panics writing a multipart without children
		}
		rows = append(rows, e)
	}
	rows = append(rows, analyzer.AgreementRows()...)
	for _, row := range rows {
		t.Run(row.Name, func(t *testing.T) {
			raw := bytes.ReplaceAll([]byte(row.Raw), []byte("\n"), []byte("\r\n"))
			mr, err := analyzer.FromRaw(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			mi := fromIMAP(t, c, testenv.Append(t, c, "INBOX", raw))
			for _, d := range modelDiff(mr, mi) {
				t.Errorf("model: %s", d)
			}
			vr, vi := an.Classify(mr, analyzer.DefaultPolicy()), an.Classify(mi, analyzer.DefaultPolicy())
			if !reflect.DeepEqual(vr, vi) {
				t.Errorf("verdicts differ:\n raw  %+v\n imap %+v", vr, vi)
			}
		})
	}
}

// TestConstructorsAgreeDovecot delivers the rule-table messages and the test
// corpus into a private Dovecot and requires FromIMAP on what Dovecot answers
// to give the model and verdict FromRaw gives on the file.
func TestConstructorsAgreeDovecot(t *testing.T) {
	rows := append(analyzer.EncryptionRows(), analyzer.AgreementRows()...)
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
		rows = append(rows, analyzer.Row{Name: filepath.Base(f), Raw: string(b)})
	}
	// What the raw stream shows and IMAP facts cannot (see
	// TestTruncatedMultipart).
	truncated := map[string]bool{"truncated multipart": true, "broken-unterminated-boundary.eml": true}

	d := testenv.StartDovecot(t)
	msgs := make([][]byte, len(rows))
	for i, r := range rows {
		msgs[i] = []byte(r.Raw)
	}
	d.Deliver(testenv.DovecotUser, "INBOX", msgs...)
	c := d.Dial(t, testenv.DovecotUser, testenv.DovecotPassword)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select INBOX: %v", err)
	}
	an := analyzer.New(nil)
	for i, r := range rows {
		t.Run(r.Name, func(t *testing.T) {
			mr, err := analyzer.FromRaw(bytes.NewReader(msgs[i]))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			mi := fromIMAP(t, c, imap.UID(i+1))
			vr, vi := an.Classify(mr, analyzer.DefaultPolicy()), an.Classify(mi, analyzer.DefaultPolicy())
			if truncated[r.Name] {
				if vr.Encryption != analyzer.EncryptionUnparseable {
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

func verdictLine(v analyzer.Verdict) string {
	return string(v.Encryption) + " " + v.EncryptionScheme + " " + string(v.TransportTLS) + " " + string(v.Relay) + " " + v.RelayService + " " + v.Fingerprint + " [" + strings.Join(v.Reasons, " | ") + "]"
}
