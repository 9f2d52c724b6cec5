package poller

import (
	"fmt"
	"log/slog"
	"testing"
)

// BenchmarkCycle measures one cycle over a mailbox of 1,000 messages (80%
// clean, 20% encrypted) on the in-process IMAP server, the bbolt store and
// the SMTP sink through the real forwarder, then an idle cycle.
func BenchmarkCycle(b *testing.B) {
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, envOptions{discardBodies: true})
		e.log = slog.New(slog.DiscardHandler)
		for i := range n {
			id := fmt.Sprintf("m%05d", i)
			if i%5 == 4 {
				e.appendMsg("INBOX", encryptedMessage(id))
			} else {
				e.appendMsg("INBOX", cleanMessage(id))
			}
		}
		p := e.poller(nil, nil)
		b.StartTimer()
		rep, err := p.Cycle(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if rep.Counts.Forwarded != n*4/5 || rep.Counts.Flagged != n/5 {
			b.Fatalf("counts %+v", rep.Counts)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkIdleCycle measures a cycle with nothing new in a mailbox of
// 1,000 done messages: lease, login, SELECT, state, release folder check.
func BenchmarkIdleCycle(b *testing.B) {
	e := newEnv(b, envOptions{discardBodies: true})
	e.log = slog.New(slog.DiscardHandler)
	for i := range 1000 {
		e.appendMsg("INBOX", cleanMessage(fmt.Sprintf("m%05d", i)))
	}
	p := e.poller(nil, nil)
	if _, err := p.Cycle(b.Context()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rep, err := p.Cycle(b.Context())
		if err != nil || rep.Counts.Seen != 0 {
			b.Fatalf("idle cycle: %+v, %v", rep.Counts, err)
		}
	}
}
