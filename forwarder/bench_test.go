package forwarder

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
)

// lineReader produces a message of n octets: a header, then 64-octet lines,
// generated as it is read so that the benchmark holds none of it.
type lineReader struct{ n, off int }

const benchHeader = "From: bench@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\r\n"

func (r *lineReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	const line = "The quick brown fox jumps over the lazy dog 0123456789 abcdef.\r\n"
	n := 0
	for n < len(p) && r.off < r.n {
		if r.off < len(benchHeader) {
			p[n] = benchHeader[r.off]
		} else {
			p[n] = line[(r.off-len(benchHeader))%len(line)]
		}
		n++
		r.off++
	}
	return n, nil
}

// heapPeak samples the heap in use until stop is called and returns the
// highest value seen.
func heapPeak() (stop func() uint64) {
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}

// BenchmarkForward25MB streams a 25 MB message to smtpsink (which keeps only
// a hash) and reports the peak heap above idle.
func BenchmarkForward25MB(b *testing.B) {
	const size = 25 << 20
	sink := startSink(b, smtpsink.Options{DiscardBodies: true})
	f := newForwarder(b, sink, nil)
	ctx := context.Background()
	var worst uint64
	b.SetBytes(size)
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		idle := ms.HeapAlloc
		stop := heapPeak()
		if err := forwardBody(ctx, f, cleanVerdict(), false, readerBody{size: size, open: func() io.Reader { return &lineReader{n: size} }}); err != nil {
			b.Fatalf("Forward: %v", err)
		}
		if peak := stop(); peak > idle {
			worst = max(worst, peak-idle)
		}
	}
	if got := sink.Messages(); len(got) == 0 || got[0].Size < size {
		b.Fatalf("sink received %v", got)
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-heap-MB")
}

// BenchmarkForwardSmall forwards 2 KB messages over one loopback session.
func BenchmarkForwardSmall(b *testing.B) {
	sink := startSink(b, smtpsink.Options{DiscardBodies: true})
	f := newForwarder(b, sink, nil)
	msg := benchHeader + strings.Repeat("A short line of a small support request, nothing more.\r\n", 36)
	ctx := context.Background()
	for b.Loop() {
		if err := forwardBody(ctx, f, cleanVerdict(), false, bytesBody(msg)); err != nil {
			b.Fatalf("Forward: %v", err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
