package scan

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/analyzer"
)

// corpusDir is the committed corpus that scripts/gencorpus.sh made.
var corpusDir = filepath.Join("..", "testdata", "corpus")

// labelColumns is the header line of labels.tsv.
var labelColumns = []string{"file", "encryption", "encryption_scheme", "transport_tls", "relay",
	"relay_service", "reply_to_tokenized", "action", "thread_key"}

// corpusLabel is one row of labels.tsv: the verdict a message must get.
type corpusLabel struct {
	file   string
	fields map[string]string // column -> expected value
}

// readLabels reads dir/labels.tsv.
func readLabels(t testing.TB, dir string) []corpusLabel {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "labels.tsv"))
	if err != nil {
		t.Fatalf("read labels: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || sc.Text() != strings.Join(labelColumns, "\t") {
		t.Fatalf("labels.tsv: header is %q, want %q", sc.Text(), strings.Join(labelColumns, "\t"))
	}
	var labels []corpusLabel
	for line := 2; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != len(labelColumns) {
			t.Fatalf("labels.tsv line %d: %d columns, want %d", line, len(cols), len(labelColumns))
		}
		l := corpusLabel{file: cols[0], fields: map[string]string{}}
		for i, col := range labelColumns[1:] {
			l.fields[col] = cols[i+1]
		}
		labels = append(labels, l)
	}
	if len(labels) == 0 {
		t.Fatalf("labels.tsv in %s lists no message", dir)
	}
	return labels
}

// verdictFields is the verdict in the spelling of labels.tsv.
func verdictFields(v analyzer.Verdict) map[string]string {
	return map[string]string{
		"encryption":         string(v.Encryption),
		"encryption_scheme":  v.EncryptionScheme,
		"transport_tls":      string(v.TransportTLS),
		"relay":              string(v.Relay),
		"relay_service":      v.RelayService,
		"reply_to_tokenized": fmt.Sprint(v.ReplyToTokenized),
		"action":             string(v.Action),
		"thread_key":         v.ThreadKey,
	}
}

// classifyFile classifies one message file with FromRaw and the default policy.
func classifyFile(t testing.TB, an *analyzer.Analyzer, path string) analyzer.Verdict {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open corpus message: %v", err)
	}
	defer f.Close()
	m, err := analyzer.FromRaw(f)
	if err != nil {
		t.Fatalf("FromRaw %s: %v", path, err)
	}
	return an.Classify(m, analyzer.DefaultPolicy())
}

// scoreCorpus classifies every labelled message of dir and fails listing
// each field that differs from its label. An empty thread_key label is not
// checked.
func scoreCorpus(t *testing.T, dir string) {
	t.Helper()
	an := analyzer.New(nil)
	labels := readLabels(t, dir)
	var misses []string
	right, fields, checked := 0, 0, 0
	for _, l := range labels {
		got := verdictFields(classifyFile(t, an, filepath.Join(dir, l.file)))
		ok := true
		for _, col := range labelColumns[1:] {
			want := l.fields[col]
			if col == "thread_key" && want == "" {
				continue
			}
			checked++
			if got[col] != want {
				ok = false
				misses = append(misses, fmt.Sprintf("%s: %s got %q want %q", l.file, col, got[col], want))
				continue
			}
			fields++
		}
		if ok {
			right++
		}
	}
	t.Logf("corpus score %s: %d/%d messages right, %d/%d fields right", dir, right, len(labels), fields, checked)
	if len(misses) > 0 {
		t.Errorf("%d misses:\n%s", len(misses), strings.Join(misses, "\n"))
	}
}

// TestCorpusScore scores the analyzer against the committed corpus.
func TestCorpusScore(t *testing.T) {
	scoreCorpus(t, corpusDir)
}

// TestCorpusFilesLabelled keeps labels.tsv and the .eml files in step.
func TestCorpusFilesLabelled(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	labelled := map[string]bool{}
	for _, l := range readLabels(t, corpusDir) {
		if labelled[l.file] {
			t.Errorf("%s: labelled twice", l.file)
		}
		labelled[l.file] = true
	}
	for _, f := range files {
		if !labelled[filepath.Base(f)] {
			t.Errorf("%s: no label", filepath.Base(f))
		}
		delete(labelled, filepath.Base(f))
	}
	for f := range labelled {
		t.Errorf("%s: labelled but missing", f)
	}
}

// TestGencorpusScript runs scripts/gencorpus.sh into a temporary folder,
// requires the same files and labels as the committed corpus and scores the
// fresh messages, so the script is proven to reproduce the corpus.
func TestGencorpusScript(t *testing.T) {
	for _, tool := range []string{"bash", "openssl", "gpg", "gpgconf", "perl", "base64"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("gencorpus needs %s, which is not installed (Debian: apt-get install openssl gnupg perl coreutils): %v", tool, err)
		}
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("..", "scripts", "gencorpus.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gencorpus.sh: %v\n%s", err, b)
	}

	fresh, err := os.ReadFile(filepath.Join(out, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(corpusDir, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, committed) {
		t.Errorf("labels.tsv from the script differs from the committed one: regenerate testdata/corpus")
	}
	for _, pattern := range []string{"*.eml", "mbox/*", "maildir/*/*"} {
		a, _ := filepath.Glob(filepath.Join(out, pattern))
		b, _ := filepath.Glob(filepath.Join(corpusDir, pattern))
		if len(a) != len(b) {
			t.Errorf("%s: script made %d files, the committed corpus has %d", pattern, len(a), len(b))
		}
	}
	// Messages without cryptographic content must come out byte for byte.
	committedFiles, _ := filepath.Glob(filepath.Join(corpusDir, "*.eml"))
	identical := 0
	for _, c := range committedFiles {
		want, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if hasCryptoContent(want) {
			continue
		}
		got, err := os.ReadFile(filepath.Join(out, filepath.Base(c)))
		if err != nil {
			t.Errorf("%s: not made by the script: %v", filepath.Base(c), err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the script made different bytes than the committed file", filepath.Base(c))
			continue
		}
		identical++
	}
	t.Logf("%d messages without cryptographic content reproduced byte for byte", identical)
	scoreCorpus(t, out)
}

// hasCryptoContent reports whether a message carries bytes made by openssl
// or gpg, which differ on every run (random keys, session keys, boundaries).
func hasCryptoContent(msg []byte) bool {
	lower := bytes.ToLower(msg)
	for _, marker := range []string{"pkcs7", "pgp", ".gpg", ".p7m"} {
		if bytes.Contains(lower, []byte(marker)) {
			return true
		}
	}
	return false
}

// TestDemoMailbox requires each message bundled for `mailtriage demo`
// (demo/mailbox/NN-name.eml, a copy of testdata/corpus/name.eml) to get the
// verdict its corpus label gives.
func TestDemoMailbox(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "demo", "mailbox", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no demo mailbox messages: %v", err)
	}
	labels := map[string]corpusLabel{}
	for _, l := range readLabels(t, corpusDir) {
		labels[l.file] = l
	}
	an := analyzer.New(nil)
	for _, f := range files {
		_, name, ok := strings.Cut(filepath.Base(f), "-")
		l, labelled := labels[name]
		if !ok || !labelled {
			t.Errorf("%s: not named NN-<corpus file>", filepath.Base(f))
			continue
		}
		got := verdictFields(classifyFile(t, an, f))
		for _, col := range labelColumns[1:] {
			if want := l.fields[col]; (col != "thread_key" || want != "") && got[col] != want {
				t.Errorf("%s: %s got %q want %q", filepath.Base(f), col, got[col], want)
			}
		}
	}
}
