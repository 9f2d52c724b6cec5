package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the work of walking a document, so that a file of nested
// aliases ("billion laughs") cannot make loading take unbounded time.
const maxNodes = 100000

// Error is one problem in the file, at a key path and line.
type Error struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when the problem has no place (an empty file)
	Path string // key path: mailboxes[0].imap.tls
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and parses the file at path. Problems in the file come back as
// Errors, naming path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse parses a configuration document; name is used in error messages.
// On any problem it returns Errors listing all of them.
func Parse(data []byte, name string) (*Config, error) {
	d := &decoder{file: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.errs = append(d.errs, &Error{File: name, Path: "mailboxes", Msg: "required key missing (the file is empty)"})
			return nil, d.errs
		}
		return nil, Errors{{File: name, Line: yamlErrorLine(err), Msg: yamlErrorMsg(err)}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "", "a second YAML document; the file must hold one")
	} else if !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, &Error{File: name, Line: yamlErrorLine(err), Msg: yamlErrorMsg(err)})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	cfg := d.config(root)
	if len(d.errs) > 0 {
		sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
		return nil, d.errs
	}
	return cfg, nil
}

// yamlErrorLine digs the line out of a yaml.v3 syntax error ("yaml: line 3: ...").
func yamlErrorLine(err error) int {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if !ok {
		return 0
	}
	n, _, _ := strings.Cut(rest, ":")
	line, err := strconv.Atoi(n)
	if err != nil {
		return 0
	}
	return line
}

func yamlErrorMsg(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if _, after, found := strings.Cut(rest, ": "); found {
			msg = after
		}
	}
	return "invalid YAML: " + msg
}

// decoder walks a yaml.Node tree and collects problems.
type decoder struct {
	file  string
	errs  Errors
	nodes int
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows an alias and counts the node against the budget; it
// returns nil once the budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes {
		d.errorf(n, "", "document too large or too many aliases")
	}
	if d.nodes >= maxNodes {
		return nil
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// field is one key of a mapping and what to do with its value.
type field struct {
	key      string
	required bool
	decode   func(n *yaml.Node, path string)
}

// mapping decodes a mapping node against its known fields and returns the
// value nodes seen, by key. A null node is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) map[string]*yaml.Node {
	seen := map[string]*yaml.Node{}
	if n = d.resolve(n); n == nil {
		return seen
	}
	switch {
	case isNull(n):
	case n.Kind != yaml.MappingNode:
		d.errorf(n, path, "must be a mapping, not %s", describe(n))
		return seen
	}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return seen
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a key must be a plain string, not %s", describe(k))
			continue
		}
		key := k.Value
		if line, dup := keyLines[key]; dup {
			d.errorf(k, join(path, key), "duplicate key (first at line %d)", line)
			continue
		}
		keyLines[key] = k.Line
		f, ok := findField(fields, key)
		if !ok {
			d.errorf(k, join(path, key), "unknown key%s", suggest(key, fields))
			continue
		}
		seen[key] = v
		f.decode(v, join(path, key))
	}
	for _, f := range fields {
		if _, ok := seen[f.key]; f.required && !ok {
			d.errorf(n, join(path, f.key), "required key missing")
		}
	}
	return seen
}

func findField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// suggest names the known key closest to a misspelt one.
func suggest(key string, fields []field) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if dist := editDistance(key, f.key); dist < bestDist {
			best, bestDist = f.key, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of two short keys.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "empty"
		}
		return strconv.Quote(n.Value)
	default:
		return "a YAML node of kind " + strconv.Itoa(int(n.Kind))
	}
}

// str decodes a scalar as a string; null is "".
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n = d.resolve(n); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a string, not %s", describe(n))
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	return n.Value, true
}

// setStr returns a field decoder storing a string.
func (d *decoder) setStr(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.str(n, path); ok {
			*dst = s
		}
	}
}

// setBool returns a field decoder storing a YAML 1.2 boolean (true/false).
func (d *decoder) setBool(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if n = d.resolve(n); n == nil {
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errorf(n, path, "must be true or false, not %s", describe(n))
			return
		}
		if err := n.Decode(dst); err != nil {
			d.errorf(n, path, "must be true or false, not %s", describe(n))
		}
	}
}

// integer decodes a scalar as a whole number.
func (d *decoder) integer(n *yaml.Node, path string) (int, *yaml.Node, bool) {
	if n = d.resolve(n); n == nil {
		return 0, nil, false
	}
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil {
		d.errorf(n, path, "must be a whole number, not %s", describe(n))
		return 0, n, false
	}
	return v, n, true
}

// setInt returns a field decoder storing an integer within [lo, hi].
func (d *decoder) setInt(dst *int, lo, hi int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v, n, ok := d.integer(n, path)
		if !ok {
			return
		}
		if v < lo || v > hi {
			d.errorf(n, path, "%d is out of range %d..%d", v, lo, hi)
			return
		}
		*dst = v
	}
}

// setLimit returns a field decoder storing a count that is at most so
// many: a whole number not below 0, where 0 is no limit.
func (d *decoder) setLimit(dst *int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		v, n, ok := d.integer(n, path)
		if !ok {
			return
		}
		if v < 0 {
			d.errorf(n, path, "%d is negative; 0 (or no key) is no limit", v)
			return
		}
		*dst = v
	}
}

// setEnum returns a field decoder storing one of the allowed values of a
// string type.
func setEnum[T ~string](d *decoder, dst *T, allowed ...T) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.str(n, path)
		if !ok {
			return
		}
		names := make([]string, len(allowed))
		for i, a := range allowed {
			if s == string(a) {
				*dst = a
				return
			}
			names[i] = string(a)
		}
		d.errorf(n, path, "%q is not one of %s", s, strings.Join(names, ", "))
	}
}

// strList decodes a list of strings; empty strings are errors.
func (d *decoder) strList(n *yaml.Node, path string) ([]string, bool) {
	if n = d.resolve(n); n == nil {
		return nil, false
	}
	if isNull(n) {
		return nil, true
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list, not %s", describe(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		s, good := d.str(item, p)
		switch {
		case !good:
			ok = false
		case s == "":
			d.errorf(item, p, "must not be empty")
			ok = false
		default:
			out = append(out, s)
		}
	}
	return out, ok
}

// sequence calls each for every item of a list node.
func (d *decoder) sequence(n *yaml.Node, path string, each func(i int, item *yaml.Node, path string)) {
	if n = d.resolve(n); n == nil || isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "must be a list, not %s", describe(n))
		return
	}
	for i, item := range n.Content {
		each(i, item, fmt.Sprintf("%s[%d]", path, i))
	}
}
