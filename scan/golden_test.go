package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
)

var update = flag.Bool("update", false, "rewrite scan/testdata/golden/*.golden from the current output")

// goldenInputs is a small fixed set: one message of each kind, an mbox and
// a Maildir.
var goldenInputs = []string{
	filepath.Join(corpusDir, "plain-clean.eml"),
	filepath.Join(corpusDir, "smime-enveloped.eml"),
	filepath.Join(corpusDir, "pgp-mime-signed.eml"),
	filepath.Join(corpusDir, "portal-virtru.eml"),
	filepath.Join(corpusDir, "relay-firefox-via-relay.eml"),
	filepath.Join(corpusDir, "list-mail.eml"),
	filepath.Join(corpusDir, "thread-reply-aw.eml"),
	filepath.Join(corpusDir, "broken-deep-nesting.eml"),
	filepath.Join(corpusDir, "mbox", "sample.mbox"),
	filepath.Join(corpusDir, "maildir"),
}

// jsonKeys are the keys of a `scan --json` line, DESIGN.md section 3.
var jsonKeys = []string{"file", "message_id", "encryption", "encryption_scheme", "transport_tls", "relay",
	"relay_service", "reply_to_tokenized", "thread_key", "action", "reasons"}

func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		json   bool
	}{
		{"scan-json.golden", true},
		{"scan-table.golden", false},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var out bytes.Buffer
			sum, err := Run(context.Background(), analyzer.New(nil), analyzer.DefaultPolicy(), goldenInputs, tc.json, &out)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if want := 8 + 5 + 3; sum.Messages != want || sum.Failed != 0 {
				t.Errorf("summary %+v, want %d messages and no failure", sum, want)
			}
			if tc.json {
				checkJSONLines(t, out.Bytes(), sum.Messages)
			}
			path := filepath.Join("testdata", "golden", tc.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test ./scan -run TestGolden -update to create it): %v", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("output differs from %s (rerun with -update if the change is intended):\n--- got\n%s\n--- want\n%s", path, out.Bytes(), want)
			}
		})
	}
}

// checkJSONLines requires n lines, each one JSON object with exactly the
// contract's keys and a non-null reasons array.
func checkJSONLines(t *testing.T, out []byte, n int) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %d is not a JSON object: %v", lines, err)
		}
		if len(obj) != len(jsonKeys) {
			t.Errorf("line %d has %d keys, want %d", lines, len(obj), len(jsonKeys))
		}
		for _, k := range jsonKeys {
			if _, ok := obj[k]; !ok {
				t.Errorf("line %d lacks %q", lines, k)
			}
		}
		var reasons []string
		if string(obj["reasons"]) == "null" || json.Unmarshal(obj["reasons"], &reasons) != nil {
			t.Errorf("line %d: reasons is %s, want an array of strings", lines, obj["reasons"])
		}
	}
	if lines != n {
		t.Errorf("%d JSON lines, want %d", lines, n)
	}
}

// BenchmarkRunCorpus scans the whole committed corpus as JSON lines.
func BenchmarkRunCorpus(b *testing.B) {
	an := analyzer.New(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(context.Background(), an, analyzer.DefaultPolicy(), []string{corpusDir}, true, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
