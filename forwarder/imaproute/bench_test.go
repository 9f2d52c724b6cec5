package imaproute_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
)

// BenchmarkForward appends distinct 10 KiB messages into the helpdesk's
// INBOX over IMAPS, the folder already holding filled messages (a helpdesk
// that never empties it). The session is open: a forward is a map look-up
// and one APPEND.
func BenchmarkForward(b *testing.B) {
	for _, filled := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("folder=%d", filled), func(b *testing.B) {
			dc, acct := helpdesk(b)
			old := make([][]byte, filled)
			for i := range old {
				old[i] = message(fmt.Sprintf("old-%d", i))
			}
			dc.Deliver(helpdeskUser, "INBOX", old...)
			r := newRoute(b, imaproute.Config{IMAP: acct})
			body := strings.Repeat("The printer on floor 3 is on fire again. Please help.\r\n", 190)
			msg := func(i int) []byte {
				return append(message(fmt.Sprintf("bench-%d", i)), body...)
			}
			ctx := b.Context()
			// The first forward opens the session and has Dovecot index the
			// folder; the loop measures the steady state.
			first := msg(-1)
			if err := r.Forward(ctx, verdict(b, first), false, int64(len(first)), bytes.NewReader(first)); err != nil {
				b.Fatalf("Forward: %v", err)
			}
			raws := make([][]byte, b.N)
			vs := make([]analyzer.Verdict, b.N)
			for i := range raws {
				raws[i] = msg(i)
				vs[i] = verdict(b, raws[i])
			}
			b.SetBytes(int64(len(first)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := r.Forward(ctx, vs[i], false, int64(len(raws[i])), bytes.NewReader(raws[i])); err != nil {
					b.Fatalf("Forward: %v", err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}

// BenchmarkOpen is what a cycle pays once, at its first forward: log in,
// EXAMINE the folder and read the fingerprint field of every message in it
// (Check does the same).
func BenchmarkOpen(b *testing.B) {
	for _, filled := range []int{0, 1000, 10000} {
		b.Run(fmt.Sprintf("folder=%d", filled), func(b *testing.B) {
			dc, acct := helpdesk(b)
			r := newRoute(b, imaproute.Config{IMAP: acct})
			old := make([][]byte, filled)
			for i := range old {
				raw := message(fmt.Sprintf("old-%d", i))
				// Copies as the route makes them, fingerprint field on top.
				old[i] = append([]byte(fmt.Sprintf("%s: %032x\r\n", imaproute.HeaderFingerprint, i)), raw...)
			}
			dc.Deliver(helpdeskUser, "INBOX", old...)
			if err := r.Check(b.Context()); err != nil { // Dovecot indexes the folder
				b.Fatalf("Check: %v", err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := r.Check(b.Context()); err != nil {
					b.Fatalf("Check: %v", err)
				}
			}
		})
	}
}

// BenchmarkForwardLarge appends one 16 MiB message per op, read from a
// generator: B/op shows the body is streamed, not held.
func BenchmarkForwardLarge(b *testing.B) {
	_, acct := helpdesk(b)
	r := newRoute(b, imaproute.Config{IMAP: acct})
	head := message("large")
	line := []byte(strings.Repeat("0123456789abcdef", 4) + "\r\n")
	const lines = 16 << 20 / 66
	size := int64(len(head) + lines*len(line))
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		// A verdict of its own per op, so that no copy is found.
		v := verdict(b, message(fmt.Sprintf("large-%d", i)))
		body := io.MultiReader(bytes.NewReader(head), &repeatReader{line: line, n: lines})
		if err := r.Forward(b.Context(), v, false, size, body); err != nil {
			b.Fatalf("Forward: %v", err)
		}
	}
}

// repeatReader yields line n times.
type repeatReader struct {
	line []byte
	n    int
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:], r.line[r.off:])
		k += c
		if r.off += c; r.off == len(r.line) {
			r.off, r.n = 0, r.n-1
		}
	}
	if k == 0 {
		return 0, io.EOF
	}
	return k, nil
}
