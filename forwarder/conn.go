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
// It also holds writes until the next read (or writeBufferSize bytes), so
// that each turn of the dialogue costs one write system call: TLS cuts DATA
// into records of at most 16 KiB, and the last piece of a message and the
// end of data come as separate writes. A client only waits for the server
// after reading, so flushing before every read keeps the dialogue intact;
// an error of a held write surfaces at that flush.
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
