package smtpclient

import (
	"context"
	"net"
	"sync"
	"time"
)

// deadlineConn gives every read and write on the connection a deadline:
// the timeout from now, or the bound context's deadline when sooner, or the
// past once that context is cancelled, so that a stalled server or a
// cancelled caller never leaves a read or a write hanging.
type deadlineConn struct {
	net.Conn
	timeout time.Duration

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

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.arm(c.Conn.SetReadDeadline)
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.arm(c.Conn.SetWriteDeadline)
	return c.Conn.Write(p)
}
