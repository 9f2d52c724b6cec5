package analyzer

import (
	"fmt"

	"github.com/emersion/go-imap/v2"
)

// SamplePaths lists the IMAP part paths whose first SampleSize encoded octets
// (BODY.PEEK[path]<0.4096>) FromIMAP wants, in section order.
func SamplePaths(bs imap.BodyStructure) []string {
	return DefaultLimits().SamplePaths(bs)
}

// SamplePaths is SamplePaths under these limits.
func (l Limits) SamplePaths(bs imap.BodyStructure) []string {
	m := l.fromStructure(nil, bs, 0)
	var paths []string
	m.Walk(func(p *Part, _ int) {
		if p.Sampled {
			paths = append(paths, p.Path)
		}
	})
	return paths
}

// FromIMAP builds the model from IMAP facts: the header block
// (BODY.PEEK[HEADER]), BODYSTRUCTURE, the samples SamplePaths asked for
// (missing ones count as empty) and RFC822.SIZE. It gives the same model as
// FromRaw on the same message. The error is reserved; hostile facts become
// problems inside the model.
func FromIMAP(header []byte, bs imap.BodyStructure, samples map[string][]byte, size int64) (*Message, error) {
	return DefaultLimits().FromIMAP(header, bs, samples, size)
}

// FromIMAP is FromIMAP under these limits.
func (l Limits) FromIMAP(header []byte, bs imap.BodyStructure, samples map[string][]byte, size int64) (*Message, error) {
	h, problems := messageHeader(header, l)
	if len(h) == 0 {
		// Without a header nothing tells how to read the body (FromRaw
		// does the same).
		bs = &imap.BodyStructureSinglePart{Type: "application", Subtype: "octet-stream"}
		samples = nil
	}
	m := l.fromStructure(samples, bs, size)
	m.Header = h
	m.Problems = append(problems, m.Problems...)
	return m, nil
}

// fromStructure builds the MIME tree from BODYSTRUCTURE under the limits.
// With samples == nil it only marks which parts want one.
func (l Limits) fromStructure(samples map[string][]byte, bs imap.BodyStructure, size int64) *Message {
	m := &Message{Size: size}
	b := treeBuilder{lim: l, msg: m}
	if bs == nil {
		m.Root = newPart("1", "text/plain", nil, "", nil, "")
		m.Problems = append(m.Problems, "message: no body structure")
		return m
	}
	rootPath := "1"
	if _, ok := bs.(*imap.BodyStructureMultiPart); ok {
		rootPath = ""
	}
	m.Root = b.part(bs, rootPath, 0, samples, nil)
	return m
}

// treeBuilder applies the part and depth limits and the sample rule the way
// the raw parser does.
type treeBuilder struct {
	lim     Limits
	msg     *Message
	parts   int
	sampled int
	stopped bool
}

// admit counts a part against the part limit; false once it is exceeded.
func (b *treeBuilder) admit() bool {
	if b.stopped {
		return false
	}
	b.parts++
	if b.parts > b.lim.MaxParts {
		b.stopped = true
		b.msg.Problems = append(b.msg.Problems, fmt.Sprintf("message: more than %d MIME parts", b.lim.MaxParts))
		return false
	}
	return true
}

// choose decides whether a part gets a sample; prev is the part's previous
// sibling (nil for a first child or the root).
func (b *treeBuilder) choose(p, prev *Part) sampleKind {
	k := p.sampleKind(prev)
	if k == sampleNone || b.sampled >= b.lim.MaxSamples {
		return sampleNone
	}
	b.sampled++
	p.Sampled = true
	return k
}

// tooDeep records the depth problem for a multipart at depth.
func (b *treeBuilder) tooDeep(p *Part, depth int) bool {
	if depth < b.lim.MaxDepth {
		return false
	}
	b.msg.Problems = append(b.msg.Problems, fmt.Sprintf("part %s: multipart nesting deeper than %d", displayPath(p.Path), b.lim.MaxDepth))
	b.stopped = true
	return true
}

func (b *treeBuilder) part(bs imap.BodyStructure, path string, depth int, samples map[string][]byte, prev *Part) *Part {
	admitted := b.admit()
	switch s := bs.(type) {
	case *imap.BodyStructureMultiPart:
		var params, dparams map[string]string
		var disp string
		if s.Extended != nil {
			params = s.Extended.Params
			if s.Extended.Disposition != nil {
				disp, dparams = s.Extended.Disposition.Value, s.Extended.Disposition.Params
			}
		}
		p := newPart(path, "multipart/"+s.Subtype, params, disp, dparams, "")
		if !admitted || b.tooDeep(p, depth) {
			return p
		}
		for i, c := range s.Children {
			if b.stopped || c == nil {
				break
			}
			p.Children = append(p.Children, b.part(c, childPath(path, i), depth+1, samples, lastChild(p)))
		}
		switch {
		case s.Extended != nil && p.Params["boundary"] == "":
			// Servers make up a structure for a multipart without boundary
			// (Dovecot: one text part); the raw stream has none.
			b.msg.Problems = append(b.msg.Problems, noBoundary(p))
		case len(p.Children) == 0 && !b.stopped:
			b.msg.Problems = append(b.msg.Problems, noParts(p))
		}
		return p
	case *imap.BodyStructureSinglePart:
		var disp string
		var dparams map[string]string
		if d := s.Disposition(); d != nil {
			disp, dparams = d.Value, d.Params
		}
		p := newPart(path, s.Type+"/"+s.Subtype, s.Params, disp, dparams, s.Encoding)
		p.Size = int64(s.Size)
		if !admitted {
			return p
		}
		if k := b.choose(p, prev); k != sampleNone && samples != nil {
			p.Sample = decodeSample(p, k, normalizeSample(samples[path]))
		}
		return p
	default:
		return newPart(path, "text/plain", nil, "", nil, "")
	}
}

// noBoundary and noParts are the problems of a multipart without boundary
// parameter (RFC 2046 section 5.1.1 requires one) and without parts.
func noBoundary(p *Part) string {
	return fmt.Sprintf("part %s: %s without boundary parameter", displayPath(p.Path), p.Type)
}

func noParts(p *Part) string {
	return fmt.Sprintf("part %s: %s without parts", displayPath(p.Path), p.Type)
}

// displayPath names the root of a multipart message in reasons.
func displayPath(path string) string {
	if path == "" {
		return "root"
	}
	return path
}
