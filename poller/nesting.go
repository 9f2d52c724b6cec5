package poller

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// maxNesting bounds the parenthesis nesting of a server response. go-imap's
// BODYSTRUCTURE reader recurses once per level and dies of a stack
// overflow near 3 million; Dovecot caps a message's MIME nesting at 100,
// but other servers describe whatever the mail holds (the corpus has a
// message 300 levels deep, which the in-process server describes in full
// and the analyzer then flags), so the bound leaves such mail to the
// analyzer and stops only what no mail needs, some 700 times below the
// depth that overflows the stack.
const maxNesting = 4096

// ErrNestingTooDeep: the server sent a response nested deeper than
// maxNesting parentheses; the connection is dropped before go-imap parses it.
var ErrNestingTooDeep = fmt.Errorf("server response nested deeper than %d parentheses", maxNesting)

// nestingGuard is the IMAP connection as the client reads it, with the
// nesting of each response tracked outside quoted strings and literals
// (RFC 9051 section 4.3): past maxNesting every read fails. A response of
// free text (OK, NO, BAD, BYE, PREAUTH, a continuation) is skipped to its
// end: neither its parentheses nor a "{n}" in it count.
type nestingGuard struct {
	net.Conn

	mu    sync.Mutex
	err   error
	seq   uint32 // the message sequence number of the data line being read ("* 12 FETCH"), 0 when none
	state nestState
	depth int
	lit   int64 // octets of the literal still to skip
	head  []byte
	text  bool // the line is free text
}

type nestState int

const (
	nestHead     nestState = iota // the start of a line: tag or "*", then the response's keyword
	nestData                      // inside response data
	nestQuoted                    // in a quoted string
	nestEscape                    // after a backslash in a quoted string
	nestCount                     // after "{": the literal's octet count
	nestCountEnd                  // after "}": CRLF, then the literal
	nestLiteral                   // skipping the literal's octets
)

// maxHead is how much of a line's start is looked at to tell data from text.
const maxHead = 64

func guardNesting(c net.Conn) *nestingGuard { return &nestingGuard{Conn: c} }

// tripped returns ErrNestingTooDeep once the guard has dropped the session.
func (g *nestingGuard) tripped() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// trippedAt returns the sequence number of the message whose response the
// guard dropped the session in (a FETCH response names it first), 0 when
// it has not tripped or the response named none.
func (g *nestingGuard) trippedAt() uint32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		return 0
	}
	return g.seq
}

func (g *nestingGuard) Read(b []byte) (int, error) {
	if err := g.tripped(); err != nil {
		return 0, err
	}
	n, err := g.Conn.Read(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	if serr := g.scan(b[:n]); serr != nil {
		g.err = serr
		g.Conn.Close()
		return 0, serr
	}
	return n, err
}

// scan moves the state over b.
func (g *nestingGuard) scan(b []byte) error {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch g.state {
		case nestLiteral:
			skip := min(int64(len(b)-i), g.lit)
			g.lit -= skip
			i += int(skip) - 1
			if g.lit == 0 {
				g.state = nestData
			}
			continue
		case nestHead:
			if c == '\n' {
				g.newLine()
				continue
			}
			g.head = append(g.head, c)
			if g.classify() {
				g.state = nestData
				if g.text {
					continue
				}
			}
			if g.state == nestHead {
				continue
			}
		case nestQuoted:
			switch c {
			case '\\':
				g.state = nestEscape
			case '"':
				g.state = nestData
			case '\n':
				g.newLine()
			}
			continue
		case nestEscape:
			g.state = nestQuoted
			continue
		case nestCount:
			switch {
			case c >= '0' && c <= '9':
				g.lit = min(g.lit*10+int64(c-'0'), 1<<50)
				continue
			case c == '}':
				g.state = nestCountEnd
				continue
			case c == '+': // LITERAL+ syntax; servers do not send it, but it is no data
				continue
			}
			g.state = nestData // not a literal: read c as data
		case nestCountEnd:
			switch c {
			case '\r':
				continue
			case '\n':
				g.state = nestLiteral
				if g.lit == 0 {
					g.state = nestData
				}
				continue
			}
			g.state = nestData
		}
		// nestData
		if g.text {
			if c == '\n' {
				g.newLine()
			}
			continue
		}
		switch c {
		case '(':
			g.depth++
			if g.depth > maxNesting {
				return ErrNestingTooDeep
			}
		case ')':
			if g.depth > 0 {
				g.depth--
			}
		case '"':
			g.state = nestQuoted
		case '{':
			g.state, g.lit = nestCount, 0
		case '\n':
			g.newLine()
		}
	}
	return nil
}

func (g *nestingGuard) newLine() {
	g.state, g.depth, g.text, g.seq, g.head = nestHead, 0, false, 0, g.head[:0]
}

// classify decides, once the head of a line shows it, whether the line is
// free text; it reports whether it has decided.
func (g *nestingGuard) classify() bool {
	h := string(g.head)
	if h == "+" || strings.HasPrefix(h, "+ ") {
		g.text = true
		return true
	}
	_, rest, ok := strings.Cut(h, " ")
	if !ok {
		return len(h) >= maxHead
	}
	word, _, ok := strings.Cut(rest, " ")
	if !ok && len(h) < maxHead && !strings.ContainsAny(rest, "([{\"") {
		return false
	}
	switch strings.ToUpper(word) {
	case "OK", "NO", "BAD", "BYE", "PREAUTH":
		g.text = true
	default:
		if n, err := strconv.ParseUint(word, 10, 32); err == nil && strings.HasPrefix(h, "* ") {
			g.seq = uint32(n) // message data: "* 12 FETCH (...)" (RFC 9051 section 7.5.2)
		}
	}
	return true
}

// nestingError names the guard's verdict in err when the guard dropped the
// connection under a command.
func nestingError(g *nestingGuard, err error) error {
	if err == nil || g == nil {
		return err
	}
	if gerr := g.tripped(); gerr != nil && !errors.Is(err, gerr) {
		return fmt.Errorf("%w (%v)", gerr, err)
	}
	return err
}
