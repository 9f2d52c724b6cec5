package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanCommand(t *testing.T) {
	mailbox := filepath.Join("..", "..", "demo", "mailbox")
	emls, err := filepath.Glob(filepath.Join(mailbox, "*.eml"))
	if err != nil || len(emls) == 0 {
		t.Fatalf("no sample messages in %s: %v", mailbox, err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		lines int // JSON lines expected on stdout; -1 = a table
	}{
		{"folder as JSON lines", []string{"--json", mailbox}, exitOK, len(emls)},
		{"one file as a table", []string{filepath.Join(mailbox, "01-plain-clean.eml")}, exitOK, -1},
		{"an unreadable input fails the exit code", []string{"--json", filepath.Join(t.TempDir(), "missing.eml")}, exitFail, 0},
	} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(append([]string{"scan"}, tc.args...), &stdout, &stderr); code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", tc.name, code, tc.code, stderr.String())
		}
		if tc.lines < 0 {
			if stdout.Len() == 0 {
				t.Errorf("%s: no table", tc.name)
			}
			continue
		}
		var n int
		for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if line == "" {
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Errorf("%s: line %q is not JSON: %v", tc.name, line, err)
			}
			for _, key := range []string{"file", "message_id", "encryption", "action", "reasons"} {
				if _, ok := obj[key]; !ok {
					t.Errorf("%s: line lacks %q: %s", tc.name, key, line)
				}
			}
			n++
		}
		if n != tc.lines {
			t.Errorf("%s: %d JSON lines, want %d", tc.name, n, tc.lines)
		}
	}
}
