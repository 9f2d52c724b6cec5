package analyzer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// readBufferSize bounds the memory of the streaming parser: a line longer
// than this is handled in pieces (it cannot be a boundary line).
const readBufferSize = 32 << 10

// FromRaw builds the model from raw RFC 5322 octets, streaming: attachment
// bodies are read and discarded, only header blocks (bounded by the limits)
// and the first SampleSize octets of sampled parts are kept. The error is
// only a failure to read r; broken MIME becomes a problem inside the model.
func FromRaw(r io.Reader) (*Message, error) {
	return DefaultLimits().FromRaw(r)
}

// FromRaw is FromRaw under these limits.
func (l Limits) FromRaw(r io.Reader) (*Message, error) {
	cr := &countingReader{r: r}
	rp := &rawParser{lr: lineReader{br: bufio.NewReaderSize(cr, readBufferSize)}}
	m := &Message{}
	rp.b = treeBuilder{lim: l, msg: m}

	block, _, _ := rp.readHeaderBlock(l, nil)
	h, problems := messageHeader(block, l)
	m.Header = h
	m.Problems = problems

	if len(h) == 0 {
		// Without a header nothing tells how to read the body.
		m.Root = newPart("1", "application/octet-stream", nil, "", nil, "")
	} else {
		m.Root, _ = rp.part(h, "1", 0, nil, true, nil, nil)
	}
	if rp.lr.err == nil {
		_, rp.lr.err = io.Copy(io.Discard, rp.lr.br)
	}
	if rp.lr.err != nil {
		return nil, fmt.Errorf("read message: %w", rp.lr.err)
	}
	m.Size = cr.n
	return m, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// lineReader yields the input in line fragments of bounded size.
type lineReader struct {
	br      *bufio.Reader
	err     error // a read error other than EOF
	eof     bool
	midLine bool // the last fragment did not end its line
}

// next returns the next fragment and whether it starts a line; ok is false at
// the end of input.
func (lr *lineReader) next() (frag []byte, startsLine, ok bool) {
	if lr.eof || lr.err != nil {
		return nil, false, false
	}
	frag, err := lr.br.ReadSlice('\n')
	startsLine = !lr.midLine
	switch err {
	case nil:
		lr.midLine = false
	case bufio.ErrBufferFull:
		lr.midLine = true
	case io.EOF:
		lr.eof = true
		lr.midLine = false
	default:
		lr.err = err
		return nil, false, false
	}
	if len(frag) == 0 {
		return nil, false, false
	}
	return frag, startsLine, true
}

// rawParser walks the MIME structure of a stream (RFC 2045, RFC 2046
// section 5.1) with the same part numbering, limits and sample rule as
// FromIMAP.
type rawParser struct {
	lr lineReader
	b  treeBuilder
}

// term says how a body ended: at the boundary of the enclosing multipart at
// level (index into the boundary stack), or at the end of input (level -1).
type term struct {
	level int
	close bool
}

var endOfInput = term{level: -1}

// readHeaderBlock reads a header block up to and without its empty line,
// keeping at most MaxHeaderBytes+1 octets (parseHeader reports the excess).
// A boundary line of the stack ends a part header that has no body: ended
// is then true and t the boundary.
func (rp *rawParser) readHeaderBlock(l Limits, bounds []string) (block []byte, t term, ended bool) {
	for {
		frag, start, ok := rp.lr.next()
		if !ok {
			return block, endOfInput, true
		}
		if start && (bytes.Equal(frag, []byte("\r\n")) || bytes.Equal(frag, []byte("\n"))) {
			return block, term{}, false
		}
		if start {
			if t, ok := matchBoundary(frag, bounds); ok {
				return block, t, true
			}
		}
		if room := l.MaxHeaderBytes + 1 - len(block); room > 0 {
			block = append(block, frag[:min(len(frag), room)]...)
		}
	}
}

// part builds the part whose header is h and parses its body up to the
// boundary or end of input that ends it. The message itself is the root
// part: "1" when single-part, "" when multipart. A part whose header already
// ran into a boundary (ended) has an empty body. prev is its previous
// sibling, nil for a first child or the root.
func (rp *rawParser) part(h Header, path string, depth int, bounds []string, root bool, ended *term, prev *Part) (*Part, term) {
	admitted := rp.b.admit()
	mt, params := contentType(h.Get("Content-Type"))
	disp, dparams := contentType(h.Get("Content-Disposition"))
	p := newPart(path, mt, params, disp, dparams, h.Get("Content-Transfer-Encoding"))
	if root && p.isMultipart() {
		p.Path = ""
	}
	if !admitted {
		return p, endOfInput
	}
	if !p.isMultipart() {
		k := rp.b.choose(p, prev)
		if ended != nil {
			if k != sampleNone {
				p.Sample = decodeSample(p, k, nil)
			}
			return p, *ended
		}
		return p, rp.leaf(p, k, bounds)
	}
	if rp.b.tooDeep(p, depth) {
		return p, endOfInput
	}
	var t term
	if ended != nil {
		t = *ended
	} else {
		t = rp.multipart(p, depth, bounds)
	}
	switch {
	case p.Params["boundary"] == "":
		rp.b.msg.Problems = append(rp.b.msg.Problems, noBoundary(p))
	case len(p.Children) == 0 && !rp.b.stopped:
		rp.b.msg.Problems = append(rp.b.msg.Problems, noParts(p))
	}
	return p, t
}

// multipart reads the preamble, the children and the epilogue of p.
func (rp *rawParser) multipart(p *Part, depth int, bounds []string) term {
	boundary := p.Params["boundary"]
	if boundary == "" {
		return rp.leaf(p, sampleNone, bounds)
	}
	inner := append(bounds[:len(bounds):len(bounds)], boundary)
	own := len(bounds)
	t := rp.leaf(nil, sampleNone, inner) // preamble
	for t.level == own && !t.close {
		block, end, ended := rp.readHeaderBlock(rp.b.lim, inner)
		path := childPath(p.Path, len(p.Children))
		h, problems := parseHeader(block, rp.b.lim, "part "+path)
		rp.b.msg.Problems = append(rp.b.msg.Problems, problems...)
		var c *Part
		if ended {
			c, t = rp.part(h, path, depth+1, inner, false, &end, lastChild(p))
		} else {
			c, t = rp.part(h, path, depth+1, inner, false, nil, lastChild(p))
		}
		p.Children = append(p.Children, c)
		if rp.b.stopped {
			return endOfInput
		}
	}
	if t.level == own && t.close {
		return rp.leaf(nil, sampleNone, bounds) // epilogue
	}
	if t.level < 0 && len(p.Children) > 0 {
		// RFC 2046 section 5.1.1: the close delimiter ends the body. A
		// message cut short misses it (FromIMAP cannot see this: servers
		// report the parts they found).
		rp.b.msg.Problems = append(rp.b.msg.Problems, fmt.Sprintf("part %s: %s ends without its close delimiter (truncated)", displayPath(p.Path), p.Type))
		rp.b.msg.unclosed++
	}
	return t
}

// leaf reads a body up to a boundary of the stack or the end of input,
// counting its encoded octets (CRLF line ends) and keeping the first
// SampleSize of them when kind asks for a sample. p may be nil (preamble,
// epilogue).
func (rp *rawParser) leaf(p *Part, kind sampleKind, bounds []string) term {
	var sample []byte
	var size int64
	pendingEOL := false
	add := func(b []byte) {
		size += int64(len(b))
		if kind != sampleNone && len(sample) < SampleSize {
			sample = append(sample, b[:min(len(b), SampleSize-len(sample))]...)
		}
	}
	finish := func(t term) term {
		if t.level < 0 && pendingEOL {
			add([]byte("\r\n"))
		}
		if p != nil {
			p.Size = size
			if kind != sampleNone {
				p.Sample = decodeSample(p, kind, sample)
			}
		}
		return t
	}
	for {
		frag, start, ok := rp.lr.next()
		if !ok {
			return finish(endOfInput)
		}
		if start {
			if t, ok := matchBoundary(frag, bounds); ok {
				return finish(t)
			}
		}
		content, eol := frag, false
		if n := len(content); n > 0 && content[n-1] == '\n' {
			content, eol = trimCR(content[:n-1]), true
		}
		if pendingEOL {
			add([]byte("\r\n"))
		}
		add(content)
		pendingEOL = eol
	}
}

// matchBoundary reports whether a whole line is a delimiter or close
// delimiter of one of the boundaries, innermost first (RFC 2046 section
// 5.1.1: "--" boundary, optionally "--", then optional white space).
func matchBoundary(line []byte, bounds []string) (term, bool) {
	if len(bounds) == 0 || len(line) < 3 || line[0] != '-' || line[1] != '-' {
		return term{}, false
	}
	line = bytes.TrimRight(line[2:], " \t\r\n")
	for i := len(bounds) - 1; i >= 0; i-- {
		b := bounds[i]
		if !bytes.HasPrefix(line, []byte(b)) {
			continue
		}
		switch rest := line[len(b):]; {
		case len(rest) == 0:
			return term{level: i}, true
		case len(rest) == 2 && rest[0] == '-' && rest[1] == '-':
			return term{level: i, close: true}, true
		}
	}
	return term{}, false
}
