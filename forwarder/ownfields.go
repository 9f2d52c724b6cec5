package forwarder

import (
	"bufio"
	"bytes"
	"io"
)

// Our header fields are ours: a forwarded copy carries each X-Mailtriage-*
// field once, written by us (annotation). Fields of that name that the
// sender wrote — a forged "X-Mailtriage-Released: yes" or "Relay: none" that
// a helpdesk rule would read — are renamed in the original's header block,
// in both modes: "X-Mailtriage-Relay" becomes "X-Original-Mailtriage-Relay",
// the value and its continuation lines unchanged.
//
// Renamed rather than removed: a DKIM signature whose h= tag lists the field
// breaks either way (RFC 6376 §5.4: the verifier hashes the fields it finds
// under the signed names), and one that does not list it survives either
// way; renaming keeps what the sender wrote in view of a reviewer.
const (
	ownPrefix     = "X-Mailtriage-"
	renamedPrefix = "X-Original-Mailtriage-"
)

// renameBufferSize is the renamer's read buffer: a header line longer than
// this passes in pieces, and only a line's start is looked at.
const renameBufferSize = 4 << 10

// renamer passes a message through, renaming in its header block (up to the
// first line that is empty but for CRs, as dataWriter sends it) each field
// whose name starts with ownPrefix, in any letter case. A line ends at LF, as
// the analyzer and the IMAP server read it. The body passes untouched.
type renamer struct {
	br      *bufio.Reader
	header  bool   // still in the header block
	bol     bool   // the next octet starts a line
	blank   bool   // the line so far holds nothing but CRs
	out     []byte // scratch for a renamed line start
	pending []byte // read but not yet returned
	err     error  // the source's error, returned once pending is empty
}

func newRenamer() *renamer {
	return &renamer{br: bufio.NewReaderSize(nil, renameBufferSize)}
}

// reset starts a new message read from r.
func (n *renamer) reset(r io.Reader) {
	n.br.Reset(r)
	n.header, n.bol, n.blank, n.pending, n.err = true, true, false, nil, nil
}

func (n *renamer) Read(p []byte) (int, error) {
	if len(n.pending) == 0 && n.err != nil {
		return 0, n.err
	}
	if len(n.pending) == 0 && !n.header {
		return n.br.Read(p)
	}
	if len(n.pending) == 0 {
		frag, err := n.br.ReadSlice('\n')
		switch err {
		case nil, bufio.ErrBufferFull:
		default:
			n.err = err
		}
		n.pending = n.line(frag)
	}
	k := copy(p, n.pending)
	n.pending = n.pending[k:]
	return k, nil
}

// line handles one fragment of the header block: the end of the block, a
// field to rename, or a line passed on.
func (n *renamer) line(frag []byte) []byte {
	if len(frag) == 0 {
		return nil
	}
	start := n.bol
	n.bol = frag[len(frag)-1] == '\n'
	// "\n", "\r\n", "\r\r\n", however long: an empty line once dataWriter
	// drops the CRs that end it.
	n.blank = (start || n.blank) && len(bytes.TrimLeft(bytes.TrimSuffix(frag, []byte("\n")), "\r")) == 0
	switch {
	case n.blank && n.bol:
		n.header = false
	case start && len(frag) >= len(ownPrefix) && bytes.EqualFold(frag[:len(ownPrefix)], []byte(ownPrefix)):
		n.out = append(append(n.out[:0], renamedPrefix...), frag[len(ownPrefix):]...)
		return n.out
	}
	return frag
}
