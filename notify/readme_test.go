package notify

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeListsEveryRule: the README's table of do-not-reply rules
// names every rule, with its source, and no rule that does not exist.
func TestReadmeListsEveryRule(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	_, table, ok := strings.Cut(string(b), "<!-- notify-rules: begin -->")
	table, _, ok2 := strings.Cut(table, "<!-- notify-rules: end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no notify-rules markers")
	}
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = line
	}
	for _, r := range Rules() {
		line, ok := rows[r.Name]
		if !ok {
			t.Errorf("README does not list rule %s", r.Name)
			continue
		}
		if !strings.Contains(line, r.Source) {
			t.Errorf("README row of %s does not cite %q", r.Name, r.Source)
		}
		delete(rows, r.Name)
	}
	for name := range rows {
		t.Errorf("README lists rule %s, which does not exist", name)
	}
}
