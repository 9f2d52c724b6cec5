package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/config"
	"github.com/mailtriage/mailtriage/demo"
	"github.com/mailtriage/mailtriage/poller"
	"github.com/mailtriage/mailtriage/scan"
)

func TestDryRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"--limit", "3"}, "--limit, --since and --json need --dry-run"},
		{[]string{"--json"}, "--limit, --since and --json need --dry-run"},
		{[]string{"--dry-run", "--limit", "-1"}, "--limit -1: want a positive number"},
		{[]string{"--dry-run", "--since", "30.11.2026"}, `--since "30.11.2026": want a date`},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"run", "--config", "mailtriage.yaml"}, tc.args...)
		if code := dispatch(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%q: stderr %q lacks %q", tc.args, stderr.String(), tc.says)
		}
	}
}

// TestDryRunDemoMailbox dry-runs the demo mailbox, which has no state file
// yet: every sample is listed in the `scan --json` contract, nothing is
// sent, no state file appears, and the real cycle that follows does what
// the dry run said, message by message.
func TestDryRunDemoMailbox(t *testing.T) {
	env := startDemoEnv(t, demo.Options{})
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", env.ConfigPath, "--dry-run", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run --dry-run: exit %d\n%s", code, stderr.String())
	}
	keys, err := json.Marshal(scan.NewRecord("", analyzer.Verdict{}))
	if err != nil {
		t.Fatal(err)
	}
	var contract map[string]json.RawMessage
	if err := json.Unmarshal(keys, &contract); err != nil {
		t.Fatal(err)
	}
	said := make(map[string]analyzer.Action) // file → action
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(obj)), slices.Sorted(maps.Keys(contract))) {
			t.Errorf("line %q: keys differ from the scan --json contract", sc.Text())
		}
		var r scan.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		said[r.File] = r.Action
	}
	if len(said) != len(env.Samples) {
		t.Errorf("the dry run listed %d messages, want the %d samples:\n%s", len(said), len(env.Samples), stdout.String())
	}
	if n := env.Sink.Count(); n != 0 {
		t.Errorf("the dry run sent %d messages", n)
	}
	if _, err := os.Stat(strings.TrimPrefix(env.StateURL, "file:")); !os.IsNotExist(err) {
		t.Errorf("the dry run made the state file (stat: %v)", err)
	}

	cfg, err := config.Load(env.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	reports, err := runConfig(t.Context(), cfg, true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("run --once after the dry run: %v", err)
	}
	did := make(map[string]analyzer.Action)
	for _, rep := range reports {
		for _, e := range rep.Entries {
			action := analyzer.ActionForward
			if e.Action == poller.EntryFlagged {
				action = analyzer.ActionFlag
			}
			did[fmt.Sprintf("%s:%s#%d", rep.Mailbox, e.Folder, e.UID)] = action
		}
	}
	if !maps.Equal(said, did) {
		t.Errorf("the dry run said %v; the cycle did %v", said, did)
	}
}

func TestDryRunTable(t *testing.T) {
	env := startDemoEnv(t, demo.Options{})
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", env.ConfigPath, "--dry-run", "--limit", "3"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run --dry-run: exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1+3+1 || !strings.HasPrefix(lines[0], "FILE ") || !strings.Contains(lines[0], " WHY") {
		t.Fatalf("want a header, 3 rows and a count; got\n%s", stdout.String())
	}
	if !strings.HasPrefix(lines[4], "3 messages: ") {
		t.Errorf("closing line %q, want the count of 3 messages", lines[4])
	}
	for i, s := range env.Samples[len(env.Samples)-3:] {
		if file := fmt.Sprintf("demo:INBOX#%d", len(env.Samples)-2+i); !strings.HasPrefix(lines[1+i], file+" ") {
			t.Errorf("row %d %q, want %s (%s)", i, lines[1+i], file, s.Name)
		}
	}
}
