package delayproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// ioLimit bounds every wait of these tests on a socket.
const ioLimit = 20 * time.Second

// startServer serves handle on a free loopback port until the test ends.
func startServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioLimit))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// echo writes back what it reads and passes the end of the stream on.
func echo(c net.Conn) {
	if _, err := io.Copy(c, c); err == nil {
		c.(*net.TCPConn).CloseWrite()
	}
}

func startProxy(t *testing.T, opt Options) *Proxy {
	t.Helper()
	p, err := Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioLimit)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioLimit))
	return c.(*net.TCPConn)
}

// exchange writes msg and reads its echo, returning the round trip.
func exchange(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	expect(t, c, "echo", msg)
	return time.Since(start)
}

// expect reads len(want) bytes from c and fails the test unless they are
// want.
func expect(t *testing.T, c net.Conn, what string, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s %q, want %q", what, got, want)
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// slack is how late a proxied chunk may be and still count as on time:
// timers and scheduling on a shared machine, never a second delay.
func slack(delay time.Duration) time.Duration { return max(10*time.Millisecond, delay/2) }

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name             string
		delay, handshake time.Duration
	}{
		{"20 ms each way", 20 * time.Millisecond, 0},
		{"50 ms each way", 50 * time.Millisecond, 0},
		{"20 ms each way after a handshake of 3 delays", 20 * time.Millisecond, 60 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, Options{Target: startServer(t, echo), Delay: tc.delay, Handshake: tc.handshake})
			c := dial(t, p.Addr())
			exchange(t, c, []byte("warm-up\r\n")) // also waits for the upstream connection
			var rtts []time.Duration
			for i := range 15 {
				rtts = append(rtts, exchange(t, c, fmt.Appendf(nil, "ping %04d\r\n", i)))
			}
			// A request and its reply each wait out the delay once.
			want := 2 * tc.delay
			if low := slices.Min(rtts); low < want {
				t.Errorf("fastest round trip %v, want at least %v (2 × %v)", low, want, tc.delay)
			}
			if m := median(rtts); m >= want+slack(tc.delay) {
				t.Errorf("median round trip %v, want %v plus less than %v", m, want, slack(tc.delay))
			}
		})
	}
}

func TestHandshake(t *testing.T) {
	const delay = 20 * time.Millisecond
	greeting := []byte("220 hello\r\n")
	greet := func(c net.Conn) {
		c.Write(greeting)
		io.Copy(io.Discard, c)
	}
	tests := []struct {
		name      string
		handshake time.Duration
		want      time.Duration // from connect to the greeting
	}{
		{"no handshake: the greeting's one way", 0, delay},
		{"3 delays of handshake: two round trips", 3 * delay, 4 * delay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, Options{Target: startServer(t, greet), Delay: delay, Handshake: tc.handshake})
			start := time.Now()
			expect(t, dial(t, p.Addr()), "greeting", greeting)
			took := time.Since(start)
			if took < tc.want || took >= tc.want+slack(delay) {
				t.Errorf("greeting after %v, want %v plus less than %v", took, tc.want, slack(delay))
			}
		})
	}
}

// TestNoWaitBehindEarlierChunk sends chunks faster than the delay: each
// must arrive one delay after it was sent, not after the delays of the
// chunks before it.
func TestNoWaitBehindEarlierChunk(t *testing.T) {
	const (
		delay  = 100 * time.Millisecond
		chunks = 10
		gap    = delay / 5
	)
	p := startProxy(t, Options{Target: startServer(t, echo), Delay: delay})
	c := dial(t, p.Addr())
	exchange(t, c, []byte("warm-up!"))

	sent := make([]time.Time, chunks)
	done := make(chan error, 1)
	go func() {
		for i := range chunks {
			sent[i] = time.Now()
			if _, err := fmt.Fprintf(c, "chunk-%02d", i); err != nil {
				done <- err
				return
			}
			time.Sleep(gap)
		}
		done <- nil
	}()
	rtts := make([]time.Duration, chunks)
	for i := range chunks {
		expect(t, c, "chunk", fmt.Appendf(nil, "chunk-%02d", i))
		rtts[i] = time.Since(sent[i])
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	// Serialised behind each other, chunk k would come back about
	// k × (2 × delay − gap) late.
	for i, rtt := range rtts {
		if rtt < 2*delay || rtt >= 2*delay+slack(delay) {
			t.Errorf("chunk %d came back after %v, want %v plus less than %v (all: %v)", i, rtt, 2*delay, slack(delay), rtts)
		}
	}
}

// TestOrderManyChunks sends many writes of random sizes both ways at once:
// every byte comes back, in order.
func TestOrderManyChunks(t *testing.T) {
	p := startProxy(t, Options{Target: startServer(t, echo), Delay: 5 * time.Millisecond})
	c := dial(t, p.Addr())
	rng := rand.New(rand.NewPCG(1, 2))
	var payload []byte
	var writes [][]byte
	for range 3000 {
		w := make([]byte, 1+rng.IntN(4000))
		for i := range w {
			w[i] = byte(rng.Uint32())
		}
		writes = append(writes, w)
		payload = append(payload, w...)
	}
	done := make(chan error, 1)
	go func() {
		for i, w := range writes {
			if _, err := c.Write(w); err != nil {
				done <- err
				return
			}
			if i%100 == 0 {
				time.Sleep(time.Millisecond) // let the proxy read separate chunks
			}
		}
		done <- c.CloseWrite()
	}()
	got, err := io.ReadAll(c) // up to the echo's end of stream
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	if len(got) != len(payload) || sha256.Sum256(got) != sha256.Sum256(payload) {
		t.Fatalf("got %d bytes back (digest equal: %v), want the %d sent in order",
			len(got), sha256.Sum256(got) == sha256.Sum256(payload), len(payload))
	}
	st := p.Stats()
	if st.UpBytes != int64(len(payload)) || st.DownBytes != int64(len(payload)) {
		t.Errorf("stats: %d bytes up and %d down, want %d each way", st.UpBytes, st.DownBytes, len(payload))
	}
	if st.Chunks < 2 || st.Late < 0 {
		t.Errorf("stats: %d chunks written, %v late in all; want at least one chunk each way and no chunk early", st.Chunks, st.Late)
	}
}

// TestHalfClose passes the end of each direction on while the other still
// carries bytes.
func TestHalfClose(t *testing.T) {
	const delay = 10 * time.Millisecond
	tests := []struct {
		name    string
		payload int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"1 MiB", 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name+", client ends first", func(t *testing.T) {
			// The server counts to the client's end, then answers and ends.
			count := func(c net.Conn) {
				n, err := io.Copy(io.Discard, c)
				if err == nil {
					fmt.Fprintf(c, "got %d", n)
				}
			}
			p := startProxy(t, Options{Target: startServer(t, count), Delay: delay})
			c := dial(t, p.Addr())
			if _, err := c.Write(make([]byte, tc.payload)); err != nil {
				t.Fatalf("write: %v", err)
			}
			ended := time.Now()
			if err := c.CloseWrite(); err != nil {
				t.Fatalf("close write: %v", err)
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			if want := fmt.Sprintf("got %d", tc.payload); string(got) != want {
				t.Errorf("answer %q, want %q", got, want)
			}
			if took := time.Since(ended); took < 2*delay {
				t.Errorf("answer %v after the end, want at least %v: the end is delayed as a chunk", took, 2*delay)
			}
		})
		t.Run(tc.name+", server ends first", func(t *testing.T) {
			// The server says goodbye and ends, then reads to the client's end.
			counted := make(chan int64, 1)
			bye := func(c net.Conn) {
				c.Write([]byte("bye"))
				c.(*net.TCPConn).CloseWrite()
				n, _ := io.Copy(io.Discard, c)
				counted <- n
			}
			p := startProxy(t, Options{Target: startServer(t, bye), Delay: delay})
			c := dial(t, p.Addr())
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "bye" {
				t.Fatalf("read to the server's end: %q, %v; want \"bye\"", got, err)
			}
			if _, err := c.Write(make([]byte, tc.payload)); err != nil {
				t.Fatalf("write after the server's end: %v", err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatalf("close write: %v", err)
			}
			select {
			case n := <-counted:
				if n != int64(tc.payload) {
					t.Errorf("the server read %d bytes after its end, want %d", n, tc.payload)
				}
			case <-time.After(ioLimit):
				t.Fatal("the server never saw the client's end")
			}
		})
	}
}

// TestBoundedInFlight stalls the target: the proxy stops reading once
// MaxInFlight bytes wait in its queue, and delivers them all once the
// target reads again.
func TestBoundedInFlight(t *testing.T) {
	const (
		maxInFlight = 256 << 10
		payload     = 32 << 20 // far more than the kernel buffers while the target does not read
	)
	release := make(chan struct{})
	received := make(chan [sha256.Size]byte, 1)
	stalled := func(c net.Conn) {
		<-release
		h := sha256.New()
		io.Copy(h, c)
		received <- [sha256.Size]byte(h.Sum(nil))
	}
	p := startProxy(t, Options{Target: startServer(t, stalled), Delay: 10 * time.Millisecond, MaxInFlight: maxInFlight})
	c := dial(t, p.Addr())
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i * 7)
	}
	written := make(chan error, 1)
	go func() {
		if _, err := c.Write(data); err != nil {
			written <- err
			return
		}
		written <- c.CloseWrite()
	}()
	// The queue fills up to the bound while the target stalls.
	deadline := time.Now().Add(ioLimit)
	for p.Stats().PeakQueued < maxInFlight && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // and stays there
	peak := p.Stats().PeakQueued
	close(release)
	if peak < maxInFlight || peak > maxInFlight+chunkSize {
		t.Errorf("at most %d bytes queued while the target stalled, want %d to %d", peak, maxInFlight, maxInFlight+chunkSize)
	}
	if err := <-written; err != nil {
		t.Fatalf("write: %v", err)
	}
	select {
	case sum := <-received:
		if sum != sha256.Sum256(data) {
			t.Error("the target received other bytes than were sent")
		}
	case <-time.After(ioLimit):
		t.Fatal("the target never got to the end of the stream")
	}
	if peak := p.Stats().PeakQueued; peak > maxInFlight+chunkSize {
		t.Errorf("%d bytes queued at the peak, want at most %d", peak, maxInFlight+chunkSize)
	}
}

// TestStops ends the proxy three ways: each closes the open connections
// and the listener.
func TestStops(t *testing.T) {
	tests := []struct {
		name string
		stop func(p *Proxy, cancel context.CancelFunc)
		opt  Options
	}{
		{"lifetime", func(*Proxy, context.CancelFunc) {}, Options{Lifetime: 300 * time.Millisecond}},
		{"context", func(_ *Proxy, cancel context.CancelFunc) { cancel() }, Options{}},
		{"close", func(p *Proxy, _ context.CancelFunc) { p.Close() }, Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opt := tc.opt
			opt.Target = startServer(t, echo)
			opt.Delay = time.Millisecond
			p, err := Start(ctx, opt)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer p.Close()
			c := dial(t, p.Addr())
			exchange(t, c, []byte("before"))
			tc.stop(p, cancel)
			select {
			case <-p.Done():
			case <-time.After(ioLimit):
				t.Fatal("the proxy did not stop")
			}
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Errorf("read %d bytes from a connection of a stopped proxy", n)
			}
			p.Close()
			if c2, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
				c2.Close()
				t.Error("the stopped proxy still accepts connections")
			}
		})
	}
}

func TestTargetIsLoopbackOnly(t *testing.T) {
	tests := []struct {
		target string
		ok     bool
	}{
		{"127.0.0.1:2525", true},
		{"127.0.0.2:2525", true},
		{"[::1]:2525", true},
		{"192.0.2.1:25", false},    // not loopback
		{"0.0.0.0:25", false},      // every interface
		{"localhost:25", false},    // a name could resolve anywhere
		{"127.0.0.1", false},       // no port
		{"smtp.example:25", false}, // a name
	}
	for _, tc := range tests {
		p, err := Start(context.Background(), Options{Target: tc.target})
		if err == nil {
			p.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("target %q: error %v, want ok %v", tc.target, err, tc.ok)
		}
	}
}

// TestTargetRefuses closes the client's connection when the target cannot
// be reached.
func TestTargetRefuses(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := startProxy(t, Options{Target: addr, Delay: time.Millisecond})
	c := dial(t, p.Addr())
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read through a proxy whose target refuses: %d bytes, %v; want the end of the stream", n, err)
	}
}

// TestClientTurns counts the round trips a client waited for.
func TestClientTurns(t *testing.T) {
	p := startProxy(t, Options{Target: startServer(t, echo), Delay: 2 * time.Millisecond})
	c := dial(t, p.Addr())
	for _, m := range []string{"one", "two", "six"} { // three waits for a reply
		exchange(t, c, []byte(m))
	}
	exchange(t, c, []byte("a b c d")) // one more turn, however many commands it holds
	if got := p.Stats().ClientTurns; got != 4 {
		t.Errorf("client turns %d, want 4", got)
	}
}
