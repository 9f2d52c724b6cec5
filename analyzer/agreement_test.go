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

// fetchAll fetches the facts of uids in c's selected folder in one batch,
// as a cycle does, with the poller's own fetch, and returns them by UID.
func fetchAll(t *testing.T, c *imapclient.Client, uids []imap.UID) map[imap.UID]poller.Facts {
	t.Helper()
	facts, err := poller.FetchFacts(t.Context(), c, uids)
	if err != nil {
		t.Fatalf("fetch facts: %v", err)
	}
	byUID := make(map[imap.UID]poller.Facts, len(facts))
	for _, f := range facts {
		byUID[f.UID] = f
	}
	if len(byUID) != len(uids) {
		t.Fatalf("fetch facts: %d of %d messages", len(byUID), len(uids))
	}
	return byUID
}

// model is what a cycle makes of the facts.
func model(t *testing.T, f poller.Facts) *analyzer.Message {
	t.Helper()
	m, err := f.Model()
	if err != nil {
		t.Fatalf("model of uid %d: %v", f.UID, err)
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
	raws := make([][]byte, len(rows))
	uids := make([]imap.UID, len(rows))
	for i, row := range rows {
		raws[i] = bytes.ReplaceAll([]byte(row.Raw), []byte("\n"), []byte("\r\n"))
		uids[i] = testenv.Append(t, c, "INBOX", raws[i])
	}
	facts := fetchAll(t, c, uids)
	for i, row := range rows {
		t.Run(row.Name, func(t *testing.T) {
			mr, err := analyzer.FromRaw(bytes.NewReader(raws[i]))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			mi := model(t, facts[uids[i]])
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
	uids := make([]imap.UID, len(rows))
	for i := range rows {
		uids[i] = imap.UID(i + 1)
	}
	facts := fetchAll(t, c, uids)
	an := analyzer.New(nil)
	for i, r := range rows {
		t.Run(r.Name, func(t *testing.T) {
			mr, err := analyzer.FromRaw(bytes.NewReader(msgs[i]))
			if err != nil {
				t.Fatalf("FromRaw: %v", err)
			}
			mi := model(t, facts[uids[i]])
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
