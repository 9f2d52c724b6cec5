package smtpsink

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// wireConn is a connection as go-smtp's server sees it. It follows the SMTP
// dialogue on the wire, both ways, to see what go-smtp does not show a
// backend: which commands a client sent before the replies it was owed
// (pipelining, RFC 2920), the BDAT chunks (RFC 3030), RSET; and it filters
// the EHLO reply for Options.HidePipelining and Options.HideChunking.
//
// A goroutine reads the client's bytes as soon as they arrive, so that a
// command is known to have come before a reply even when go-smtp reads it
// only after answering. A reply counts as given just before its last line
// is written, so a client that waits for every reply is never taken for
// one that pipelines.
//
// After STARTTLS the bytes are TLS records (go-smtp wraps this connection
// in its own tls.Conn): from then on they pass through unread.
type wireConn struct {
	raw    net.Conn // the TCP connection, or the tls.Conn of tlsmode.Implicit
	sink   *Sink
	number int
	avail  chan struct{} // a token when bytes or an error arrived for Read

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	space    *sync.Cond // signalled when Read took bytes or the connection closed
	rbuf     []byte     // bytes read from raw, rbuf[roff:] not yet given to Read
	roff     int
	rerr     error
	closed   bool
	deadline time.Time // Read's deadline
	closeAt  bool      // close after the next Write (a 421 reply)

	// The client's side.
	opaque   bool      // after STARTTLS: TLS records, not SMTP
	mode     int       // modeLine, modeContent or modeChunk
	line     []byte    // the current command line, its first maxLine octets
	lineMark int       // replies given when the current line or content began; -1 between them
	dot      int       // the end-of-data state in content, as go-smtp's dataReader
	skip     int64     // octets of the BDAT chunk still to come
	authNext bool      // the next line is a SASL response (RFC 4954 §4), not a command
	blocked  bool      // the last unit waits for its reply, which decides what the next octets are
	pending  []segment // octets that arrived while blocked
	units    []unit    // the units numbered base, base+1, ...
	base     int
	next     int // the number of the next unit: the units sent so far, the greeting being unit 0
	replies  int // the replies given so far, the greeting's included

	// The server's side.
	wline   []byte   // the reply line being written, without its end yet
	inReply bool     // a reply's first line was written, its last not yet
	hold    bool     // the reply is an EHLO reply being filtered
	held    [][]byte // its lines so far
}

// maxBuffered bounds the octets read ahead of go-smtp.
const maxBuffered = 256 << 10

// maxLine is how much of a command line is kept: its verb and arguments.
const maxLine = 1024

// The modes of the client's byte stream.
const (
	modeLine    = iota // command lines
	modeContent        // DATA's content, up to <CRLF>.<CRLF>
	modeChunk          // a BDAT chunk of skip octets
)

// The states of the end-of-data scan, as go-smtp's dataReader has them.
const (
	stBegin = iota // at the beginning of a line
	stDot          // read "." there
	stDotCR        // read ".\r" there
	stCR           // read "\r"
	stData         // in the middle of a line
)

// segment is a piece of the client's stream and the number of replies
// given when it arrived.
type segment struct {
	data []byte
	mark int
}

// A unit is what owes one reply: the greeting (unit 0), a command line, a
// DATA content up to its end, a SASL response line.
type unit struct {
	kind int
	verb string // of a command, upper case
	last bool   // must be the last of a pipelined group
}

// The kinds of unit.
const (
	kindGreeting = iota
	kindCommand
	kindContent
	kindAuthResponse
)

// groupEnding are the commands that "can only appear as the last command in
// a group" (RFC 2920 §3.1): EHLO, DATA, VRFY, EXPN, TURN, QUIT, NOOP; and
// the commands of extensions that do not say otherwise (same section):
// STARTTLS (RFC 3207), AUTH (RFC 4954). BDAT may be pipelined (RFC 3030 §4.2).
var groupEnding = map[string]bool{
	"EHLO": true, "HELO": true, "LHLO": true, "DATA": true, "VRFY": true, "EXPN": true,
	"TURN": true, "QUIT": true, "NOOP": true, "STARTTLS": true, "AUTH": true,
}

func newWireConn(raw net.Conn, s *Sink, number int) *wireConn {
	c := &wireConn{
		raw:      raw,
		sink:     s,
		number:   number,
		avail:    make(chan struct{}, 1),
		lineMark: -1,
		units:    []unit{{kind: kindGreeting, last: true}},
		next:     1,
	}
	c.space = sync.NewCond(&c.mu)
	go c.readLoop()
	return c
}

// readLoop reads the client's bytes into rbuf as they arrive.
func (c *wireConn) readLoop() {
	if tc, ok := c.raw.(*tls.Conn); ok {
		// go-smtp handshakes a *tls.Conn it is given under its timeouts;
		// this one it does not see.
		tc.SetReadDeadline(time.Now().Add(c.sink.opt.Timeout))
		err := tc.Handshake()
		tc.SetReadDeadline(time.Time{})
		if err != nil {
			c.fail(err)
			return
		}
	}
	b := make([]byte, 32<<10)
	for {
		c.mu.Lock()
		for len(c.rbuf)-c.roff >= maxBuffered && !c.closed {
			c.space.Wait()
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		n, err := c.raw.Read(b)
		c.mu.Lock()
		if n > 0 {
			if c.roff > 0 && c.roff >= len(c.rbuf)/2 {
				c.rbuf = c.rbuf[:copy(c.rbuf, c.rbuf[c.roff:])]
				c.roff = 0
			}
			c.rbuf = append(c.rbuf, b[:n]...)
			c.feed(b[:n], c.replies)
			c.trim()
		}
		c.mu.Unlock()
		if err != nil {
			c.fail(err)
			return
		}
		c.signal()
	}
}

// fail ends reading with err.
func (c *wireConn) fail(err error) {
	c.mu.Lock()
	c.rerr = err
	c.mu.Unlock()
	c.signal()
}

func (c *wireConn) signal() {
	select {
	case c.avail <- struct{}{}:
	default:
	}
}

func (c *wireConn) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, net.ErrClosed
		}
		if c.roff < len(c.rbuf) {
			n := copy(p, c.rbuf[c.roff:])
			c.roff += n
			if c.roff == len(c.rbuf) {
				c.rbuf, c.roff = c.rbuf[:0], 0
			}
			c.space.Signal()
			c.mu.Unlock()
			return n, nil
		}
		if c.rerr != nil {
			err := c.rerr
			c.mu.Unlock()
			return 0, err
		}
		deadline := c.deadline
		c.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-c.avail:
		case <-expired:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (c *wireConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	out := p
	if !c.opaque {
		out = c.replyBytes(p)
	}
	closeAt := c.closeAt
	c.closeAt = false
	c.mu.Unlock()
	if len(out) > 0 {
		if _, err := c.raw.Write(out); err != nil {
			return 0, err
		}
	}
	if closeAt {
		c.Close()
	}
	return len(p), nil
}

// closeAfterReply closes the connection once the next reply is written.
func (c *wireConn) closeAfterReply() {
	c.mu.Lock()
	c.closeAt = true
	c.mu.Unlock()
}

func (c *wireConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.rbuf, c.roff = nil, 0
		c.space.Broadcast()
		c.mu.Unlock()
		c.signal()
		c.closeErr = c.raw.Close()
		c.sink.closed(c.raw)
	})
	return c.closeErr
}

func (c *wireConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *wireConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

func (c *wireConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.raw.SetWriteDeadline(t)
}

func (c *wireConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	c.signal() // a blocked Read looks at the new deadline
	return nil
}

func (c *wireConn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }

// feed follows the client's octets b, which arrived when mark replies had
// been given; c.mu is held.
func (c *wireConn) feed(b []byte, mark int) {
	for len(b) > 0 && !c.opaque {
		if c.blocked {
			c.pending = append(c.pending, segment{bytes.Clone(b), mark})
			return
		}
		switch c.mode {
		case modeChunk:
			n := min(int64(len(b)), c.skip)
			c.skip -= n
			b = b[n:]
			if c.skip == 0 {
				c.mode = modeLine
			}
		case modeContent:
			if c.lineMark < 0 {
				c.lineMark = mark
			}
			n, end := c.scanContent(b)
			b = b[n:]
			if end {
				c.add(unit{kind: kindContent}, c.lineMark)
				c.lineMark = -1
				c.mode = modeLine
			}
		default:
			if c.lineMark < 0 {
				c.lineMark = mark
			}
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				c.keep(b)
				return
			}
			c.keep(b[:i+1])
			b = b[i+1:]
			c.endLine()
		}
	}
}

// keep adds b to the command line, up to maxLine octets.
func (c *wireConn) keep(b []byte) {
	if room := maxLine - len(c.line); room > 0 {
		c.line = append(c.line, b[:min(room, len(b))]...)
	}
}

// scanContent looks for the end of data in b, as go-smtp's dataReader does,
// and returns the octets it read and whether the end was among them.
func (c *wireConn) scanContent(b []byte) (int, bool) {
	for i, ch := range b {
		switch c.dot {
		case stBegin:
			switch ch {
			case '.':
				c.dot = stDot
			case '\r':
				c.dot = stCR
			default:
				c.dot = stData
			}
		case stDot:
			if ch == '\r' {
				c.dot = stDotCR
			} else {
				c.dot = stData
			}
		case stDotCR:
			if ch == '\n' {
				c.dot = stBegin
				return i + 1, true
			}
			c.dot = stData
		case stCR:
			if ch == '\n' {
				c.dot = stBegin
			} else {
				c.dot = stData
			}
		case stData:
			if ch == '\r' {
				c.dot = stCR
			}
		}
	}
	return len(b), false
}

// endLine takes the complete line in c.line.
func (c *wireConn) endLine() {
	line := strings.TrimRight(string(c.line), "\r\n")
	mark := c.lineMark
	c.line, c.lineMark = c.line[:0], -1
	if c.authNext {
		c.authNext = false
		c.add(unit{kind: kindAuthResponse, last: true}, mark)
		c.blocked = true
		return
	}
	verb, arg := parseCmd(line)
	c.add(unit{kind: kindCommand, verb: verb, last: groupEnding[verb]}, mark)
	switch verb {
	case "DATA", "AUTH", "STARTTLS":
		c.blocked = true
	case "RSET":
		c.sink.tally(func(st *Stats) { st.RSETCommands++ })
	case "BDAT":
		c.sink.tally(func(st *Stats) { st.BDATCommands++ })
		if c.sink.opt.HideChunking {
			c.sink.violation(fmt.Sprintf("connection %d: BDAT without CHUNKING", c.number))
		}
		if n, ok := bdatSize(arg); ok && n > 0 {
			c.mode, c.skip = modeChunk, n
		}
	}
}

// parseCmd splits a command line as go-smtp's server does; verb is "" for
// a line it refuses.
func parseCmd(line string) (verb, arg string) {
	switch l := len(line); {
	case strings.HasPrefix(strings.ToUpper(line), "STARTTLS"):
		return "STARTTLS", ""
	case l < 4 || l == 5:
		return "", ""
	case l == 4:
		return strings.ToUpper(line), ""
	case line[4] != ' ':
		return "", ""
	}
	return strings.ToUpper(line[:4]), strings.TrimSpace(line[5:])
}

// bdatSize is the chunk size of BDAT's arguments when go-smtp's server
// takes them, and so reads the chunk (if only to discard it).
func bdatSize(arg string) (int64, bool) {
	args := strings.Fields(arg)
	if len(args) == 0 || len(args) > 2 || (len(args) == 2 && !strings.EqualFold(args[1], "LAST")) {
		return 0, false
	}
	n, err := strconv.ParseUint(args[0], 10, 32)
	return int64(n), err == nil
}

// add numbers u, which arrived when mark replies had been given, and
// checks it against the replies still owed then.
func (c *wireConn) add(u unit, mark int) {
	num := c.next
	c.next++
	c.units = append(c.units, u)
	owed := num - mark
	if owed <= 0 {
		if u.kind == kindCommand {
			c.sink.pipelined(1)
		}
		return
	}
	if u.kind == kindCommand {
		c.sink.pipelined(owed + 1)
	}
	for n := mark; n < num; n++ {
		if v := c.unit(n); v.last {
			c.sink.violation(fmt.Sprintf("connection %d: %s sent before %s", c.number, u.subject(), v.reply()))
			return
		}
	}
	if c.sink.opt.HidePipelining && u.kind == kindCommand {
		c.sink.violation(fmt.Sprintf("connection %d: %s sent before %s", c.number, u.subject(), c.unit(num-1).reply()))
	}
}

// unit is the unit numbered n.
func (c *wireConn) unit(n int) unit {
	if i := n - c.base; i >= 0 && i < len(c.units) {
		return c.units[i]
	}
	return unit{kind: -1}
}

// trim forgets the units no check needs any more.
func (c *wireConn) trim() {
	lo := c.replies
	if c.lineMark >= 0 {
		lo = min(lo, c.lineMark)
	}
	if len(c.pending) > 0 {
		lo = min(lo, c.pending[0].mark)
	}
	if k := lo - c.base; k > 0 && k <= len(c.units) {
		c.units = c.units[k:]
		c.base = lo
	}
}

// subject names u in a violation.
func (u unit) subject() string {
	switch u.kind {
	case kindContent:
		return "message content"
	case kindAuthResponse:
		return "an AUTH response"
	case kindCommand:
		if u.verb == "" {
			return "a bad command"
		}
		return u.verb
	}
	return "?"
}

// reply names u's reply in a violation.
func (u unit) reply() string {
	switch u.kind {
	case kindGreeting:
		return "the greeting"
	case kindContent:
		return "the reply to the end of data"
	}
	return "the reply to " + u.subject()
}

// replyBytes follows the server's octets p and returns what is to be
// written instead: complete lines, the EHLO reply filtered and whole once
// its last line is there; c.mu is held.
func (c *wireConn) replyBytes(p []byte) []byte {
	var out []byte
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			c.wline = append(c.wline, p...)
			break
		}
		line := p[:i+1]
		if len(c.wline) > 0 {
			line = append(c.wline, line...)
			c.wline = nil
		}
		p = p[i+1:]
		out = c.replyLine(line, out)
	}
	return out
}

// replyLine takes one line of a reply and appends what to write to out.
func (c *wireConn) replyLine(line, out []byte) []byte {
	final := len(line) < 4 || line[3] != '-'
	if !c.inReply {
		c.inReply = true
		head := c.unit(c.replies)
		c.hold = (c.sink.opt.HidePipelining || c.sink.opt.HideChunking) &&
			head.kind == kindCommand && (head.verb == "EHLO" || head.verb == "LHLO") && bytes.HasPrefix(line, []byte("250"))
	}
	if c.hold {
		if len(c.held) == 0 || !c.hidden(line) {
			c.held = append(c.held, bytes.Clone(line))
		}
		if final {
			for i, l := range c.held {
				if len(l) > 3 {
					l[3] = '-'
					if i == len(c.held)-1 {
						l[3] = ' '
					}
				}
				out = append(out, l...)
			}
			c.held = nil
		}
	} else {
		out = append(out, line...)
	}
	if final {
		code, _ := strconv.Atoi(string(line[:min(3, len(line))]))
		c.inReply, c.hold = false, false
		c.replied(code)
	}
	return out
}

// hidden reports whether an EHLO reply line is a keyword to hide.
func (c *wireConn) hidden(line []byte) bool {
	if len(line) < 4 {
		return false
	}
	kw, _, _ := strings.Cut(strings.TrimSpace(string(line[4:])), " ")
	kw = strings.ToUpper(kw)
	return (kw == "PIPELINING" && c.sink.opt.HidePipelining) || (kw == "CHUNKING" && c.sink.opt.HideChunking)
}

// replied counts a reply with code; when it answers the unit the client's
// stream waits on, what follows is now known and is read.
func (c *wireConn) replied(code int) {
	u := c.unit(c.replies)
	c.replies++
	if c.blocked && c.replies == c.next {
		c.blocked = false
		switch {
		case u.kind == kindCommand && u.verb == "DATA" && code == 354:
			c.mode, c.dot = modeContent, stBegin
		case u.kind == kindCommand && u.verb == "STARTTLS" && code == 220:
			c.opaque = true
			if len(c.pending) > 0 {
				c.sink.violation(fmt.Sprintf("connection %d: data sent before the reply to STARTTLS", c.number))
			}
			c.pending = nil
		case (u.kind == kindAuthResponse || u.verb == "AUTH") && code == 334:
			c.authNext = true
		}
		segs := c.pending
		c.pending = nil
		for _, s := range segs {
			c.feed(s.data, s.mark)
		}
	}
	c.trim()
}
