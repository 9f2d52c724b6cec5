// Package delayproxy is a TCP proxy on the loopback interface that delays
// every chunk it carries, for benchmarks that need a distant server on one
// machine: it listens on 127.0.0.1, connects each accepted connection to a
// loopback target and forwards the bytes both ways, each chunk written
// Delay after it was read (a one-way delay in each direction, so a request
// and its reply cost 2×Delay more).
//
// Each direction is a queue of (due time, bytes): chunks keep their order
// and a chunk never waits behind another chunk's delay, so the only bound on
// throughput is the socket and the in-flight limit (MaxInFlight bytes per
// direction read but not yet written; above it reading pauses). The end of
// a direction (a half-close) is passed on Delay after it was read, like a
// chunk; a reset or error on either side closes both. TLS passes through
// untouched: it is plain TCP.
//
// The TCP handshake is optional: with Handshake set, the upstream
// connection is opened that long after the client's was accepted (3×Delay
// is when a server Delay away sees a new connection), while the client's
// first bytes are already read and timed.
//
// Timing: a chunk is written when its timer fires, about a millisecond
// after its due time on a busy 2-core machine (Go's timers wake from
// epoll's millisecond timeouts); Stats.Late adds the lateness up, so a
// benchmark can report the round trip it really had.
//
// Not modelled: TCP's own acknowledgements (the client's kernel gets them
// from the proxy at loopback speed), slow start, bandwidth, loss.
//
// It never listens or connects beyond the loopback interface and stops by
// itself after Lifetime. The semantics are those of the planning's asyncio
// model of it (delay-proxy.py), written anew in Go.
package delayproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxInFlight = 8 << 20
	DefaultLifetime    = time.Hour
	chunkSize          = 64 << 10 // the most one read takes
	dialTimeout        = 10 * time.Second
)

// Options configure a proxy.
type Options struct {
	Target      string        // upstream address, a loopback IP literal and port ("127.0.0.1:2525")
	Delay       time.Duration // one-way delay of each chunk, both directions; 0 passes bytes at once
	Handshake   time.Duration // wait before the upstream connection is opened; 0 connects at once
	MaxInFlight int           // bytes per direction read but not yet written; DefaultMaxInFlight when 0
	Lifetime    time.Duration // the proxy stops by itself this long after Start; DefaultLifetime when 0
	Logger      *slog.Logger  // upstream dial failures; nothing is logged when nil
}

// Stats are the proxy's counters since Start.
type Stats struct {
	Connections int64 // client connections accepted
	UpBytes     int64 // bytes read from clients
	DownBytes   int64 // bytes read from the target
	// ClientTurns counts, over all connections, the chunks a client sent
	// after the server had sent something since the client's last chunk
	// (each connection's first client chunk counts one). For a client that
	// waits for every reply (SMTP without PIPELINING) that is the number of
	// round trips it waited for.
	ClientTurns int64
	// PeakQueued is the most bytes one direction of one connection held
	// read but not yet written.
	PeakQueued int64
	// Chunks counts the chunks written, and Late adds up how long after
	// its due time each was written: the proxy's own error on top of Delay
	// (timers and scheduling; on a loaded machine it grows).
	Chunks int64
	Late   time.Duration
}

// Proxy is a running delay proxy. Its methods are safe for concurrent use.
type Proxy struct {
	opt      Options
	listener net.Listener
	done     chan struct{} // closed by Close
	stopOnce sync.Once
	timer    *time.Timer
	wg       sync.WaitGroup // the accept loop and every connection

	mu    sync.Mutex
	conns map[*conn]struct{}

	connections, up, down, turns, peak, chunks, late atomic.Int64
}

// Start listens on a free port of 127.0.0.1 and proxies to opt.Target until
// Close, until ctx ends or until opt.Lifetime has passed.
func Start(ctx context.Context, opt Options) (*Proxy, error) {
	target, err := netip.ParseAddrPort(opt.Target)
	if err != nil {
		return nil, fmt.Errorf("delay proxy target %q: want a loopback IP and port: %w", opt.Target, err)
	}
	if !target.Addr().IsLoopback() {
		return nil, fmt.Errorf("delay proxy target %q: not a loopback address", opt.Target)
	}
	if opt.Delay < 0 || opt.Handshake < 0 || opt.MaxInFlight < 0 || opt.Lifetime < 0 {
		return nil, fmt.Errorf("delay proxy: negative delay, handshake, in-flight limit or lifetime")
	}
	if opt.MaxInFlight == 0 {
		opt.MaxInFlight = DefaultMaxInFlight
	}
	if opt.Lifetime == 0 {
		opt.Lifetime = DefaultLifetime
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay proxy listen: %w", err)
	}
	p := &Proxy{opt: opt, listener: l, done: make(chan struct{}), conns: make(map[*conn]struct{})}
	// The timer is set under mu: a lifetime so short that it fires before
	// the assignment finds stop waiting for mu, not a nil timer.
	p.mu.Lock()
	p.timer = time.AfterFunc(opt.Lifetime, p.stop)
	p.mu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		select {
		case <-ctx.Done():
			p.stop()
		case <-p.done:
		}
	}()
	go func() {
		defer p.wg.Done()
		p.accept()
	}()
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.listener.Addr().String() }

// Done is closed when the proxy has begun to stop (Close, the context or
// the lifetime).
func (p *Proxy) Done() <-chan struct{} { return p.done }

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Connections: p.connections.Load(),
		UpBytes:     p.up.Load(),
		DownBytes:   p.down.Load(),
		ClientTurns: p.turns.Load(),
		PeakQueued:  p.peak.Load(),
		Chunks:      p.chunks.Load(),
		Late:        time.Duration(p.late.Load()),
	}
}

// Close stops listening, closes every connection and waits until the
// proxy's goroutines have ended.
func (p *Proxy) Close() error {
	p.stop()
	p.wg.Wait()
	return nil
}

// stop begins the shutdown; it returns at once and may run more than once.
func (p *Proxy) stop() {
	p.stopOnce.Do(func() {
		close(p.done)
		p.listener.Close()
		p.mu.Lock()
		p.timer.Stop()
		for c := range p.conns {
			c.teardown()
		}
		p.mu.Unlock()
	})
}

func (p *Proxy) accept() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return // the listener was closed
		}
		c := newConn(p, client)
		p.mu.Lock()
		select {
		case <-p.done:
			p.mu.Unlock()
			client.Close()
			return
		default:
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		p.connections.Add(1)
		go func() {
			defer p.wg.Done()
			c.run()
			p.mu.Lock()
			delete(p.conns, c)
			p.mu.Unlock()
		}()
	}
}

// conn is one proxied connection.
type conn struct {
	p        *Proxy
	client   net.Conn
	gone     chan struct{} // closed by teardown
	goneOnce sync.Once

	mu        sync.Mutex // lastWasUp
	lastWasUp bool       // the last chunk read came from the client
}

func newConn(p *Proxy, client net.Conn) *conn {
	return &conn{p: p, client: client, gone: make(chan struct{})}
}

// teardown closes both sides at once: an error, a reset or the proxy's
// stop.
func (c *conn) teardown() {
	c.goneOnce.Do(func() { close(c.gone) })
}

// run carries the connection until both directions have ended or it is
// torn down.
func (c *conn) run() {
	up := newQueue(c.p.opt.MaxInFlight, &c.p.peak)
	down := newQueue(c.p.opt.MaxInFlight, &c.p.peak)
	var wg sync.WaitGroup
	defer wg.Wait()

	// Close both sockets when torn down, which ends every read and write.
	closed := make(chan struct{})
	var upstreamMu sync.Mutex
	var upstream net.Conn
	go func() {
		defer close(closed)
		<-c.gone
		up.close()
		down.close()
		c.client.Close()
		upstreamMu.Lock()
		if upstream != nil {
			upstream.Close()
		}
		upstreamMu.Unlock()
	}()
	defer func() {
		c.teardown()
		<-closed
	}()

	// The client's bytes are read, and timed, from the start.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.pump(c.client, up, true)
	}()

	if !sleepUntil(time.Now().Add(c.p.opt.Handshake), c.gone) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	s, err := d.Dial("tcp", c.p.opt.Target)
	if err != nil {
		c.p.opt.Logger.Warn("delay proxy: connect upstream", "target", c.p.opt.Target, "err", err)
		return
	}
	upstreamMu.Lock()
	upstream = s
	upstreamMu.Unlock()
	select {
	case <-c.gone: // torn down while dialling: the closer may have missed s
		s.Close()
		return
	default:
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		c.pump(s, down, false)
	}()
	var writers sync.WaitGroup
	writers.Add(2)
	go func() {
		defer writers.Done()
		c.deliver(up, s)
	}()
	go func() {
		defer writers.Done()
		c.deliver(down, c.client)
	}()
	writers.Wait()
}

// pump reads from r into q, stamping each chunk with its due time, until
// the end of the stream (queued as a chunk without bytes) or an error
// (which tears the connection down).
func (c *conn) pump(r net.Conn, q *queue, isUp bool) {
	buf := make([]byte, chunkSize)
	for {
		if !q.waitRoom() {
			return
		}
		n, err := r.Read(buf)
		due := time.Now().Add(c.p.opt.Delay)
		if n > 0 {
			c.saw(isUp, n)
			// A copy of its own size: a queue of small chunks holds
			// what it counts, not a read buffer per chunk.
			if !q.push(chunk{due: due, data: append([]byte(nil), buf[:n]...)}) {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			q.push(chunk{due: due, eof: true})
			return
		}
		if err != nil {
			c.teardown()
			return
		}
	}
}

// saw counts a chunk read.
func (c *conn) saw(isUp bool, n int) {
	if !isUp {
		c.p.down.Add(int64(n))
		c.mu.Lock()
		c.lastWasUp = false
		c.mu.Unlock()
		return
	}
	c.p.up.Add(int64(n))
	c.mu.Lock()
	if !c.lastWasUp {
		c.p.turns.Add(1)
	}
	c.lastWasUp = true
	c.mu.Unlock()
}

// deliver writes the chunks of q to w, each at its due time, and
// half-closes w at the end of the stream.
func (c *conn) deliver(q *queue, w net.Conn) {
	for {
		ch, ok := q.pop()
		if !ok || !sleepUntil(ch.due, c.gone) {
			return
		}
		if ch.eof {
			if tc, ok := w.(*net.TCPConn); ok {
				if tc.CloseWrite() != nil {
					c.teardown()
				}
			}
			return
		}
		c.p.chunks.Add(1)
		c.p.late.Add(int64(time.Since(ch.due)))
		_, err := w.Write(ch.data)
		q.release(len(ch.data))
		if err != nil {
			c.teardown()
			return
		}
	}
}

// sleepUntil waits until t; false when gone closed first.
func sleepUntil(t time.Time, gone <-chan struct{}) bool {
	wait := time.Until(t)
	if wait <= 0 {
		select {
		case <-gone:
			return false
		default:
			return true
		}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-gone:
		return false
	}
}

// chunk is what one read returned, or the end of the stream.
type chunk struct {
	due  time.Time
	data []byte
	eof  bool
}

// queue is one direction's chunks read but not yet written, in order, with
// the count of their bytes bounded by max.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled on push, release and close
	chunks []chunk
	bytes  int
	max    int
	closed bool
	peak   *atomic.Int64
}

func newQueue(max int, peak *atomic.Int64) *queue {
	q := &queue{max: max, peak: peak}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// waitRoom waits until the queue holds fewer than max bytes; false once
// closed.
func (q *queue) waitRoom() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.bytes >= q.max && !q.closed {
		q.cond.Wait()
	}
	return !q.closed
}

// push appends ch; false once closed.
func (q *queue) push(ch chunk) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.chunks = append(q.chunks, ch)
	q.bytes += len(ch.data)
	for {
		old := q.peak.Load()
		if int64(q.bytes) <= old || q.peak.CompareAndSwap(old, int64(q.bytes)) {
			break
		}
	}
	q.cond.Broadcast()
	return true
}

// pop takes the oldest chunk, waiting for one; false once closed. Its
// bytes stay counted until release.
func (q *queue) pop() (chunk, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return chunk{}, false
	}
	ch := q.chunks[0]
	q.chunks[0] = chunk{}
	q.chunks = q.chunks[1:]
	return ch, true
}

// release uncounts n bytes written.
func (q *queue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.mu.Unlock()
	q.cond.Broadcast()
}

// close wakes every waiter for good.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}
