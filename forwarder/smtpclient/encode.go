package smtpclient

import (
	"bytes"
	"io"
)

// dataWriter encodes a message as the content of SMTP DATA or BDAT and
// writes it to w: every line ends in CRLF (a bare LF too, RFC 5321 §2.3.8)
// and, for DATA, a line that starts with "." gets a second one (§4.5.2;
// BDAT carries the octets as they are, RFC 3030 §2). A line is what ends in
// LF, as the analyzer, the IMAP server (its BODYSTRUCTURE) and the
// forwarder's renamer read it. CRs that end a line (before its LF, or at
// the end of the message: "\r\r\n", as some mailers write) are dropped.
// Any other CR is bare, SMTP must not carry it, and it goes out as "?":
// made a line break, it gave the helpdesk header fields or MIME boundaries
// that nobody classified ("Subject: x\rContent-Type: multipart/encrypted"
// smuggled past the analyzer); made white space, it would still turn
// "Content-Type\r: x" into a field (RFC 5322 §4.5.1 allows white space
// before the colon), "\rContent-Type: x" into the continuation of the field
// before, and "--b\r " into a boundary line. "?" is none of these. It does
// in one pass, with vectorized scans for the line breaks, what
// net/textproto's DotWriter does a byte at a time.
//
// The last line break is held back: for DATA, the "\r\n.\r\n" that ends
// the data ends the last line too (finish); for BDAT, tail gives it to the
// LAST chunk. So the server receives the same octets either way, the
// message's lines each ending in CRLF, a last line without a line break
// given one.
type dataWriter struct {
	w   io.Writer // the connection's writer, or the BDAT chunker
	dot bool      // DATA: dot-stuff lines
	out []byte    // encoded, not yet written; cap is the write size
	in  []byte    // ReadFrom's read buffer
	n   int64     // octets written to w
	err error     // the first write error; sticky

	bol bool // the next octet starts a line
	eol bool // a line break is held back
	crs int  // CRs the input so far ends with, not yet written: dropped if LF comes next, else each a bareCR
}

var (
	crlf = []byte("\r\n")
	dot  = []byte(".")
	// bareCRs is what a run of bare CRs goes out as, in pieces of this size.
	bareCRs = bytes.Repeat([]byte("?"), 64)
)

func newDataWriter(bufSize int) *dataWriter {
	return &dataWriter{out: make([]byte, 0, bufSize), in: make([]byte, bufSize/2)}
}

// reset starts a new message on w, dot-stuffed when dot (DATA).
func (d *dataWriter) reset(w io.Writer, dot bool) {
	d.w, d.dot, d.out, d.n, d.err = w, dot, d.out[:0], 0, nil
	d.bol, d.eol, d.crs = true, false, 0
}

func (d *dataWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := len(p)
	for len(p) > 0 {
		if p[0] == '\r' { // held, whatever line break is held too, until what follows the run decides
			d.crs++
			p = p[1:]
			continue
		}
		if d.crs > 0 && p[0] == '\n' { // the CRs end the line: dropped
			d.crs = 0
		}
		if d.eol {
			d.put(crlf)
			d.eol, d.bol = false, true
		}
		if d.crs > 0 { // bare: the line goes on with them, and "?" needs no dot
			d.bol = false
			d.putBareCRs()
		}
		if d.bol {
			d.bol = false
			if p[0] == '.' && d.dot {
				d.put(dot)
			}
		}
		end := len(p) // this line's LF, or the end of p
		if k := bytes.IndexByte(p, '\n'); k >= 0 {
			end = k
		}
		r := bytes.IndexByte(p[:end], '\r')
		switch {
		case r < 0 && end == len(p): // the line goes on in the next write
			d.put(p)
			p = nil
		case r < 0: // LF
			d.put(p[:end])
			d.eol = true
			p = p[end+1:]
		case r+1 < len(p) && p[r+1] == '\n': // CRLF, the common case
			d.put(p[:r])
			d.eol = true
			p = p[r+2:]
		default: // another CR, for the top of the loop
			d.put(p[:r])
			p = p[r:]
		}
	}
	if d.err != nil {
		return 0, d.err
	}
	return n, nil
}

// ReadFrom copies r through the encoder with the writer's own buffer, so
// that io.Copy allocates none per message.
func (d *dataWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		n, err := r.Read(d.in)
		if n > 0 {
			total += int64(n)
			if _, werr := d.Write(d.in[:n]); werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// finish writes what is buffered, but not the held-back line break; CRs
// that end the message end its last line.
func (d *dataWriter) finish() error {
	d.crs = 0
	d.flush()
	return d.err
}

// tail ends the message for BDAT: what is buffered and not yet written,
// with the held-back (or a missing) last line break, for the LAST chunk;
// CRs that end the message end its last line. The slice is the writer's:
// it is valid until the next reset.
func (d *dataWriter) tail() ([]byte, error) {
	d.crs = 0
	if len(d.out)+len(crlf) > cap(d.out) {
		d.flush()
	}
	d.out = append(d.out, crlf...)
	return d.out, d.err
}

// putBareCRs writes the held CRs, which were bare.
func (d *dataWriter) putBareCRs() {
	for d.crs > 0 {
		k := min(d.crs, len(bareCRs))
		d.put(bareCRs[:k])
		d.crs -= k
	}
}

// put appends b to the output, writing whenever the buffer is full.
func (d *dataWriter) put(b []byte) {
	for len(b) > 0 && d.err == nil {
		if len(d.out) == cap(d.out) {
			d.flush()
			continue
		}
		k := copy(d.out[len(d.out):cap(d.out)], b)
		d.out = d.out[:len(d.out)+k]
		b = b[k:]
	}
}

func (d *dataWriter) flush() {
	if d.err != nil || len(d.out) == 0 {
		return
	}
	k, err := d.w.Write(d.out)
	d.n += int64(k)
	d.out = d.out[:0]
	d.err = err
}
