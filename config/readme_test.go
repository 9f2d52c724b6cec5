package config

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestReadmeListsEveryKey checks the configuration reference in README.md
// against configs/mailtriage.example.yaml: every key of the example is in
// the table and every key of the table is in the example.
func TestReadmeListsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("read README: %v", err)
	}
	_, table, ok := strings.Cut(string(readme), "<!-- config-keys: begin -->")
	table, _, ok2 := strings.Cut(table, "<!-- config-keys: end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no config-keys table markers")
	}
	documented := readmeKeys(table)
	if len(documented) == 0 {
		t.Fatal("README config table lists no keys")
	}

	example, err := os.ReadFile("../configs/mailtriage.example.yaml")
	if err != nil {
		t.Fatalf("read example config: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(example, &doc); err != nil {
		t.Fatalf("parse example config: %v", err)
	}
	var keys []string
	walkKeys(&doc, "", &keys)

	covered := func(key string) bool {
		return slices.ContainsFunc(documented, func(d string) bool {
			prefix, wild := strings.CutSuffix(d, "*")
			return d == key || wild && strings.HasPrefix(key, prefix)
		})
	}
	for _, k := range keys {
		if !covered(k) {
			t.Errorf("example config key %s is missing from the README table", k)
		}
	}
	for _, d := range documented {
		prefix, wild := strings.CutSuffix(d, "*")
		// Alternatives (password_env beside password_file, an oauth2
		// block) stand in the example as comments: "# password_env: NAME",
		// "#   provider: microsoft".
		leaf := d[strings.LastIndex(d, ".")+1:]
		if !wild && regexp.MustCompile(`#\s+`+regexp.QuoteMeta(leaf)+`:`).Match(example) {
			continue
		}
		if !slices.ContainsFunc(keys, func(k string) bool { return k == d || wild && strings.HasPrefix(k, prefix) }) {
			t.Errorf("README documents %s, which the example config does not have", d)
		}
	}
}

// readmeKeys reads the first column of the table: `a.b`, `.c` (a sibling of
// the previous key in the cell), `x.*` and `x.<class>` (any key below x).
func readmeKeys(table string) []string {
	code := regexp.MustCompile("`([^`]+)`")
	var keys []string
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.Contains(cells[1], "---") || strings.TrimSpace(cells[1]) == "key" {
			continue
		}
		parent := ""
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			k := m[1]
			if strings.HasPrefix(k, ".") {
				k = parent + k
			}
			if i := strings.Index(k, ".<"); i >= 0 {
				k = k[:i] + ".*"
			}
			parent = k[:strings.LastIndex(k, ".")]
			keys = append(keys, k)
		}
	}
	return keys
}

// walkKeys collects the dotted key paths of the leaves under n; sequence
// items are spelled [].
func walkKeys(n *yaml.Node, path string, out *[]string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkKeys(c, path, out)
		}
	case yaml.SequenceNode:
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode {
			*out = append(*out, path)
			return
		}
		for _, c := range n.Content {
			walkKeys(c, path+"[]", out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			walkKeys(n.Content[i+1], key, out)
		}
	default:
		if !slices.Contains(*out, path) {
			*out = append(*out, path)
		}
	}
}
