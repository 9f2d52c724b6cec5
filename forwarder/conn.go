package forwarder

import (
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// deadlineConn gives every read and write on the connection a deadline:
// Timeout from now, or the context's deadline when sooner, or the past once
// the context is cancelled. go-smtp's own SetDeadline calls are ignored: it
// clears the deadline between commands and sets none while DATA is written,
// and a stalled server must not hang a write forever.
//
// It also holds writes until the next read (or writeBufferSize bytes):
// go-smtp writes DATA through a 4 KiB buffer, and a write system call per
// 4 KiB cost more CPU than the rest of the transfer. A client only waits for
// the server after reading, so flushing before every read keeps the dialogue
// intact; an error of a held write surfaces at that flush.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	wbuf    []byte // writes not yet sent

	mu        sync.Mutex
	ctxDead   time.Time // deadline of the bound context; zero when none
	cancelled bool
}

// past is a deadline that has expired.
var past = time.Unix(1, 0)

// bind applies ctx to the connection's I/O until release is called.
func (c *deadlineConn) bind(ctx context.Context) (release func()) {
	c.mu.Lock()
	c.ctxDead, _ = ctx.Deadline()
	c.cancelled = false
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cancelled = true
		c.Conn.SetDeadline(past)
	})
	return func() {
		stop()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.ctxDead, c.cancelled = time.Time{}, false
	}
}

// arm sets the deadline for one I/O call through set, under c.mu so that a
// cancellation cannot be overwritten.
func (c *deadlineConn) arm(set func(time.Time) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := time.Now().Add(c.timeout)
	if !c.ctxDead.IsZero() && c.ctxDead.Before(d) {
		d = c.ctxDead
	}
	if c.cancelled {
		d = past
	}
	set(d)
}

// writeBufferSize bounds the writes held back by deadlineConn.
const writeBufferSize = 64 << 10

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	c.arm(c.Conn.SetReadDeadline)
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if len(c.wbuf)+len(p) > writeBufferSize {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if len(p) >= writeBufferSize {
			c.arm(c.Conn.SetWriteDeadline)
			return c.Conn.Write(p)
		}
	}
	c.wbuf = append(c.wbuf, p...)
	return len(p), nil
}

// flush sends the held writes.
func (c *deadlineConn) flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	c.arm(c.Conn.SetWriteDeadline)
	_, err := c.Conn.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

// Close sends what is held (a QUIT, say) and closes the connection.
func (c *deadlineConn) Close() error {
	ferr := c.flush()
	if err := c.Conn.Close(); err != nil {
		return err
	}
	return ferr
}

// SetDeadline is a no-op: deadlines are set per I/O call.
func (c *deadlineConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline is a no-op: deadlines are set per I/O call.
func (c *deadlineConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline is a no-op: deadlines are set per I/O call.
func (c *deadlineConn) SetWriteDeadline(time.Time) error { return nil }

// crlfWriter passes bytes through with every bare LF and bare CR turned into
// CRLF, as SMTP DATA requires (RFC 5321 §2.3.8); CRLF input passes unchanged
// and in one piece.
type crlfWriter struct {
	w      io.Writer
	lastCR bool // the previous byte written was CR
}

var crlf = []byte("\r\n")

func (c *crlfWriter) Write(p []byte) (int, error) {
	start := 0
	for i, b := range p {
		switch {
		case c.lastCR && b != '\n': // bare CR before p[i]: complete it
			if err := c.emit(p[start:i], crlf[1:]); err != nil {
				return 0, err
			}
			start = i
		case !c.lastCR && b == '\n': // bare LF
			if err := c.emit(p[start:i], crlf); err != nil {
				return 0, err
			}
			start = i + 1
		}
		c.lastCR = b == '\r'
	}
	if _, err := c.w.Write(p[start:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *crlfWriter) emit(data, eol []byte) error {
	if len(data) > 0 {
		if _, err := c.w.Write(data); err != nil {
			return err
		}
	}
	_, err := c.w.Write(eol)
	return err
}

// sourceReader remembers a failure of the message source, to tell it from a
// failure of the SMTP connection when io.Copy fails.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}
