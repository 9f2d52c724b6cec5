package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// fromLinePrefix starts every mbox separator line (RFC 4155 section 2).
const fromLinePrefix = "From "

// mboxBufferSize bounds the memory a MboxReader holds: lines longer than it
// are passed through in pieces.
const mboxBufferSize = 64 << 10

// MboxReader splits an mbox stream into messages without holding a message
// in memory. A separator is a line starting with "From " at the start of the
// stream or after an empty line; the empty line before it belongs to the
// separator. Body lines matching `>+From ` lose one '>' (mboxrd), so lines
// an mboxo writer left unquoted still read right unless they follow an
// empty line.
type MboxReader struct {
	br      *bufio.Reader
	started bool
	cur     *mboxMessage
}

// NewMboxReader reads the mbox in r.
func NewMboxReader(r io.Reader) *MboxReader {
	return &MboxReader{br: bufio.NewReaderSize(r, mboxBufferSize)}
}

// Next returns a reader for the next message, valid until the following
// call to Next; unread bytes of the previous message are skipped. It
// returns io.EOF after the last message, at once for an empty stream, and
// an error when the stream does not start with a From_ line.
func (mr *MboxReader) Next() (io.Reader, error) {
	if mr.cur != nil {
		if _, err := io.Copy(io.Discard, mr.cur); err != nil {
			return nil, err
		}
		mr.cur = nil
	}
	if !mr.started {
		mr.started = true
		first, err := mr.br.Peek(len(fromLinePrefix))
		if len(first) == 0 && errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if string(first) != fromLinePrefix {
			return nil, fmt.Errorf("not an mbox: first line does not start with %q", fromLinePrefix)
		}
	}
	if _, err := mr.br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	// The stream is at a From_ line: skip it, however long.
	for {
		_, err := mr.br.ReadSlice('\n')
		if err == nil || errors.Is(err, io.EOF) {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
	mr.cur = &mboxMessage{br: mr.br}
	return mr.cur, nil
}

// mboxMessage reads one message of an mbox, line by line.
type mboxMessage struct {
	br      *bufio.Reader
	pending []byte // bytes read from the stream and ready for Read
	buf     []byte // backing store of pending, reused per fragment
	held    []byte // an empty line kept back: it may precede a separator
	midLine bool   // the last fragment did not end its line
	end     bool   // the message ended (next separator or end of stream)
	err     error  // a read error of the stream, returned once pending is empty
}

func (m *mboxMessage) Read(p []byte) (int, error) {
	for len(m.pending) == 0 {
		if m.end {
			if m.err != nil {
				return 0, m.err
			}
			return 0, io.EOF
		}
		m.fill()
	}
	n := copy(p, m.pending)
	m.pending = m.pending[n:]
	return n, nil
}

// fill moves the next line fragment of the stream into pending, or ends the
// message.
func (m *mboxMessage) fill() {
	if !m.midLine {
		start, err := m.br.Peek(len(fromLinePrefix))
		if len(start) == 0 {
			m.end = true
			if !errors.Is(err, io.EOF) {
				m.err = err
			}
			return
		}
		if m.held != nil && string(start) == fromLinePrefix {
			m.held = nil
			m.end = true
			return
		}
		if m.held != nil {
			m.pending, m.held = m.held, nil
			return
		}
	}
	frag, err := m.br.ReadSlice('\n')
	switch {
	case err == nil, errors.Is(err, bufio.ErrBufferFull):
	case errors.Is(err, io.EOF):
		if len(frag) == 0 {
			m.end = true
			return
		}
	default:
		m.end, m.err = true, err
		return
	}
	atLineStart := !m.midLine
	m.midLine = frag[len(frag)-1] != '\n'
	if atLineStart && !m.midLine && isEmptyLine(frag) {
		m.held = append([]byte(nil), frag...)
		return
	}
	if atLineStart && isQuotedFrom(frag) {
		frag = frag[1:]
	}
	m.buf = append(m.buf[:0], frag...)
	m.pending = m.buf
}

// isEmptyLine reports whether line is "\n" or "\r\n".
func isEmptyLine(line []byte) bool {
	return string(line) == "\n" || string(line) == "\r\n"
}

// isQuotedFrom reports whether line starts with one or more '>' and "From ".
func isQuotedFrom(line []byte) bool {
	rest := bytes.TrimLeft(line, ">")
	return len(rest) < len(line) && bytes.HasPrefix(rest, []byte(fromLinePrefix))
}
