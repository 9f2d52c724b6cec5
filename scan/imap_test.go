package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/poller"
)

// crlf converts bare LF line ends to CRLF, as a mail store keeps them.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// fromIMAPFacts fetches the facts of uid with the poller's own fetch
// (poller.FetchFacts) and builds the model as a cycle does. It returns the
// BODYSTRUCTURE too, for the close-delimiter check the poller makes while
// it streams a body to forward it.
func fromIMAPFacts(t *testing.T, c *imapclient.Client, uid imap.UID) (*analyzer.Message, imap.BodyStructure) {
	t.Helper()
	facts, err := poller.FetchFacts(t.Context(), c, []imap.UID{uid})
	if err != nil || len(facts) != 1 {
		t.Fatalf("fetch facts of uid %d: %d messages, %v", uid, len(facts), err)
	}
	m, err := facts[0].Model()
	if err != nil {
		t.Fatalf("model of uid %d: %v", uid, err)
	}
	return m, facts[0].BodyStructure
}

// verdictDiff lists the fields in which a and b differ.
func verdictDiff(a, b analyzer.Verdict) []string {
	var diffs []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		if !reflect.DeepEqual(fa, fb) {
			diffs = append(diffs, fmt.Sprintf("%s: raw %v imap %v", va.Type().Field(i).Name, fa, fb))
		}
	}
	return diffs
}

// TestIMAPAgreement loads every corpus message into the in-process IMAP
// server and requires FromIMAP on the fetched facts to give the same verdict
// as FromRaw on the file.
func TestIMAPAgreement(t *testing.T) {
	c := testenv.MemIMAP(t)
	an := analyzer.New(nil)
	policy := analyzer.DefaultPolicy()
	agreed := 0
	labels := readLabels(t, corpusDir)
	for _, l := range labels {
		path := filepath.Join(corpusDir, l.file)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The store keeps CRLF line ends: compare with FromRaw on those octets.
		msg := crlf(raw)
		m, err := analyzer.FromRaw(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("FromRaw %s: %v", l.file, err)
		}
		want := an.Classify(m, policy)
		start := time.Now()
		uid := testenv.Append(t, c, "INBOX", msg)
		model, bs := fromIMAPFacts(t, c, uid)
		got := an.Classify(model, policy)
		// A multipart cut short shows only in the streamed body: the worker
		// checks it there before forwarding (analyzer.CloseCheck).
		var truncated *analyzer.TruncationError
		if got.Action == analyzer.ActionForward {
			if _, err := io.ReadAll(analyzer.CloseCheck(bytes.NewReader(msg), bs)); errors.As(err, &truncated) {
				got.MarkUnparseable(truncated.Error(), policy)
			}
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: IMAP round trip took %v", l.file, d)
		}
		if diffs := verdictDiff(want, got); len(diffs) > 0 {
			t.Errorf("%s: FromRaw and FromIMAP disagree:\n  %s", l.file, strings.Join(diffs, "\n  "))
			continue
		}
		agreed++
	}
	t.Logf("FromRaw and FromIMAP agree on %d/%d corpus messages", agreed, len(labels))
}
