package analyzer

import (
	"bytes"
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// SampleSize is how many ENCODED octets of a sampled part the model keeps:
// the poller fetches BODY.PEEK[path]<0.4096> for each path SamplePaths lists,
// and FromRaw cuts the same octets while streaming.
const SampleSize = 4096

// Limits bound the work and memory spent on one message. A message that
// exceeds one becomes encryption "unparseable" with a reason naming the limit.
type Limits struct {
	MaxDepth       int // multipart nesting depth
	MaxParts       int // MIME parts, multipart containers included
	MaxHeaderBytes int // octets of one header block (message or part)
	MaxLineBytes   int // octets of one physical header line
	MaxSamples     int // sampled parts; further candidates are not sampled
}

// DefaultLimits are generous for real mail and small for hostile input.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:       20,
		MaxParts:       500,
		MaxHeaderBytes: 256 << 10,
		MaxLineBytes:   16 << 10,
		MaxSamples:     16,
	}
}

// Field is one header field: its name as written and its unfolded value, not
// yet RFC 2047-decoded.
type Field struct {
	Name  string
	Value string
}

// Header is a message's header fields in order.
type Header []Field

// Get returns the first value of the named field, "" when absent.
func (h Header) Get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Values returns every value of the named field, in order.
func (h Header) Values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Part is one node of the MIME tree, as much as IMAP BODYSTRUCTURE tells.
type Part struct {
	Path        string            // IMAP section number ("1", "1.2"); "" for a multipart message's root
	Type        string            // lower-case media type, "text/plain" when absent
	Params      map[string]string // Content-Type parameters, lower-case keys, RFC 2231/2047 decoded
	Disposition string            // lower-case Content-Disposition value, "" when absent
	Filename    string            // decoded file name (disposition filename, else Content-Type name)
	Encoding    string            // lower-case Content-Transfer-Encoding, "7bit" when absent
	Size        int64             // encoded octets, approximate (servers count differently)
	Children    []*Part           // multipart children; message/rfc822 parts are leaves
	Sampled     bool              // the selection rule asked for a sample of this part
	Sample      []byte            // decoded sample: UTF-8 text for text parts, octets for CMS parts
}

// Message is the model of one message that Classify reads: header fields, the
// MIME tree and decoded samples of some parts.
type Message struct {
	Header   Header
	Root     *Part    // never nil
	Size     int64    // encoded octets of the whole message, approximate
	Problems []string // why the message is unparseable; empty when it parsed

	// unclosed counts the Problems that are a multipart's missing close
	// delimiter: only the raw stream shows them (see CloseCheck).
	unclosed int
}

// Walk calls f for every part in depth-first pre-order, the order of IMAP
// section numbers.
func (m *Message) Walk(f func(p *Part, depth int)) {
	var walk func(p *Part, depth int)
	walk = func(p *Part, depth int) {
		f(p, depth)
		for _, c := range p.Children {
			walk(c, depth+1)
		}
	}
	walk(m.Root, 0)
}

// childPath is the IMAP section number of the i-th (0-based) child of a part.
func childPath(parent string, i int) string {
	if parent == "" {
		return strconv.Itoa(i + 1)
	}
	return parent + "." + strconv.Itoa(i+1)
}

// isMultipart reports whether a part is a container.
func (p *Part) isMultipart() bool { return strings.HasPrefix(p.Type, "multipart/") }

// isAttachment reports whether the sender presented the part as a file.
func (p *Part) isAttachment() bool { return p.Disposition == "attachment" || p.Filename != "" }

// sampleKind says whether and how a part is sampled: the one selection rule
// both constructors follow.
type sampleKind int

const (
	sampleNone    sampleKind = iota
	sampleText               // text/plain, text/html: decoded to UTF-8
	sampleCMS                // an S/MIME part whose header does not tell all: decoded octets
	sampleOpenPGP            // an octet-stream after an application/pgp-encrypted part: decoded octets
)

// sampleKind decides from the part's own header and its previous sibling
// prev (nil for a first child or the root), which both constructors know
// before the part's body.
func (p *Part) sampleKind(prev *Part) sampleKind {
	switch p.Type {
	case "text/plain", "text/html":
		return sampleText
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		// Untyped CMS needs its OID; opaque signed-data may wrap an
		// enveloped entity (encrypted, then signed).
		if st := strings.ToLower(p.Params["smime-type"]); st == "" || st == "signed-data" {
			return sampleCMS
		}
	case "application/octet-stream":
		if strings.HasSuffix(strings.ToLower(p.Filename), ".p7m") {
			return sampleCMS
		}
		// PGP/MIME that Exchange rewrapped as multipart/mixed keeps the
		// version part before the data (see exchangePGP): only the first
		// octets of that data tell whether it is OpenPGP.
		if prev != nil && prev.Type == "application/pgp-encrypted" {
			return sampleOpenPGP
		}
	}
	if strings.EqualFold(p.Filename, "smime.p7m") && p.Params["smime-type"] == "" && !p.isMultipart() {
		return sampleCMS
	}
	return sampleNone
}

// lastChild is the last child of p so far, nil when it has none: the
// previous sibling of the child about to be added.
func lastChild(p *Part) *Part {
	if len(p.Children) == 0 {
		return nil
	}
	return p.Children[len(p.Children)-1]
}

// newPart builds a part from the facts both constructors have: media type,
// Content-Type parameters, disposition and its parameters, transfer encoding.
// Parameters may still carry RFC 2231 sections (Dovecot sends them so); both
// are normalized here so the two constructors agree.
func newPart(path, mediaType string, params map[string]string, disposition string, dispParams map[string]string, encoding string) *Part {
	p := &Part{Path: path}
	p.Type = strings.ToLower(strings.TrimSpace(mediaType))
	if p.Type == "" || !strings.Contains(p.Type, "/") {
		p.Type = "text/plain"
	}
	p.Params = normalizeParams(params)
	if strings.HasPrefix(p.Type, "text/") && p.Params["charset"] == "" {
		p.Params["charset"] = "us-ascii" // RFC 2045 section 5.2, as servers report it
	}
	dp := normalizeParams(dispParams)
	p.Disposition = strings.ToLower(strings.TrimSpace(disposition))
	p.Filename = dp["filename"]
	if p.Filename == "" {
		p.Filename = p.Params["name"]
	}
	p.Encoding = strings.ToLower(strings.TrimSpace(encoding))
	if p.Encoding == "" {
		p.Encoding = "7bit"
	}
	return p
}

// normalizeParams lower-cases keys, joins RFC 2231 continuations, decodes
// RFC 2231 extended values and RFC 2047 encoded words. It is idempotent on
// already decoded parameters.
func normalizeParams(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	type section struct {
		n        int
		extended bool
		value    string
	}
	sections := map[string][]section{}
	for k, v := range in {
		k = strings.ToLower(strings.TrimSpace(k))
		name, rest, found := strings.Cut(k, "*")
		if !found {
			if _, dup := out[k]; !dup {
				out[k] = v
			}
			continue
		}
		// name*  |  name*N  |  name*N*
		s := section{extended: strings.HasSuffix(rest, "*") || rest == ""}
		num := strings.TrimSuffix(rest, "*")
		if num != "" {
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 || n > 1000 {
				continue
			}
			s.n = n
		}
		s.value = v
		sections[name] = append(sections[name], s)
	}
	for name, ss := range sections {
		sort.Slice(ss, func(i, j int) bool { return ss[i].n < ss[j].n })
		var b strings.Builder
		charset := ""
		for i, s := range ss {
			v := s.value
			if s.extended {
				if i == 0 {
					// charset'language'%XX…
					parts := strings.SplitN(v, "'", 3)
					if len(parts) == 3 {
						charset = strings.ToLower(parts[0])
						v = parts[2]
					}
				}
				if u, err := url.PathUnescape(v); err == nil {
					v = u
				}
			}
			b.WriteString(v)
		}
		out[name] = decodeCharset(charset, []byte(b.String()))
	}
	for k, v := range out {
		if strings.Contains(v, "=?") {
			out[k] = decodeWords(v)
		}
	}
	return out
}

// decodeWords decodes RFC 2047 encoded words; undecodable input is returned
// as it is.
func decodeWords(s string) string {
	dec := mime.WordDecoder{CharsetReader: charsetReader}
	out, err := dec.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}

// parseHeader parses a header block (up to the first empty line) into fields,
// unfolding continuation lines. Lines that are not fields are ignored, as mail
// servers do. Limits that the block exceeds are returned as problems.
func parseHeader(block []byte, lim Limits, what string) (Header, []string) {
	var h Header
	var problems []string
	var value strings.Builder // the value of the field being unfolded
	flush := func() {
		if len(h) > 0 {
			h[len(h)-1].Value = strings.TrimSpace(value.String())
		}
		value.Reset()
	}
	longLine := false
	consumed := 0
	if rest, ok := bytes.CutPrefix(block, []byte("From ")); ok && !bytes.HasPrefix(bytes.TrimLeft(rest, " \t"), []byte(":")) {
		// An mbox postmark line left at the top of a saved message.
		if i := indexByte(block, '\n'); i >= 0 {
			block = block[i+1:]
		} else {
			block = nil
		}
	}
	for first := true; len(block) > 0; first = false {
		var line []byte
		i := indexByte(block, '\n')
		if i < 0 {
			line, block = block, nil
		} else {
			line, block = block[:i], block[i+1:]
		}
		consumed += len(line) + 1
		line = trimCR(line)
		if len(line) == 0 {
			break
		}
		if consumed > lim.MaxHeaderBytes {
			problems = append(problems, fmt.Sprintf("%s: header block exceeds %d octets", what, lim.MaxHeaderBytes))
			break
		}
		if len(line) > lim.MaxLineBytes && !longLine {
			longLine = true
			problems = append(problems, fmt.Sprintf("%s: header line longer than %d octets", what, lim.MaxLineBytes))
		}
		if first && !validFieldLine(line) {
			// The block does not start with a field: nothing of it can be
			// trusted (servers give up on such a header too).
			return nil, problems
		}
		if line[0] == ' ' || line[0] == '\t' {
			if len(h) > 0 {
				value.WriteByte(' ')
				value.WriteString(strings.TrimSpace(string(line)))
			}
			continue
		}
		if !validFieldLine(line) {
			continue
		}
		name, v, _ := strings.Cut(string(line), ":")
		name = strings.TrimRight(name, " \t")
		flush()
		h = append(h, Field{Name: name})
		value.WriteString(strings.TrimSpace(v))
	}
	flush()
	return h, problems
}

// messageHeader parses the header block of a message, which must hold at
// least one field.
func messageHeader(block []byte, lim Limits) (Header, []string) {
	h, problems := parseHeader(block, lim, "message")
	if len(h) > 0 {
		problems = append(problems, lineEndProblems(block, lim, "message")...)
	}
	if len(h) == 0 {
		problems = append(problems, "message: no header fields (the data does not start with a header field)")
	}
	return h, problems
}

// validFieldLine reports whether a line opens a header field: a name of
// printable ASCII without white space (RFC 5322 section 2.2), then a colon.
func validFieldLine(line []byte) bool {
	i := indexByte(line, ':')
	if i <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:i], " \t") // RFC 5322 section 4.5.1 allows WSP before the colon
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// contentType parses a Content-Type or Content-Disposition value (RFC 2045
// section 5.1, RFC 2183) leniently: the value, lower-cased, and each
// parameter that reads, with lower-case keys and RFC 2231 sections left for
// normalizeParams (mime.ParseMediaType drops charsets other than UTF-8 and
// US-ASCII), as IMAP servers such as Dovecot report them.
func contentType(v string) (string, map[string]string) {
	value, rest, _ := strings.Cut(v, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	if value == "" {
		return "", nil
	}
	params := map[string]string{}
	for rest != "" {
		var key, val string
		key, rest, _ = strings.Cut(rest, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		rest = strings.TrimLeft(rest, " \t")
		if strings.HasPrefix(rest, "\"") {
			val, rest = quotedString(rest[1:])
			_, rest, _ = strings.Cut(rest, ";")
		} else {
			val, rest, _ = strings.Cut(rest, ";")
			val = strings.TrimSpace(val)
		}
		if i := strings.LastIndexByte(key, ';'); i >= 0 {
			key = strings.TrimSpace(key[i+1:]) // a stray "; ;" or a key without value before
		}
		if key == "" || strings.ContainsAny(key, " \t\"") {
			continue
		}
		if _, dup := params[key]; !dup {
			params[key] = val
		}
	}
	return value, params
}

// quotedString reads an RFC 5322 quoted-string after its opening quote and
// returns its content and what follows the closing quote.
func quotedString(s string) (string, string) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), ""
}
