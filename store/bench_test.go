package store

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mailtriage/mailtriage/internal/testenv"
)

// BenchmarkRecordOutcomes writes batches of outcomes into each engine: 100,
// the poller's batch size, and 1, a forwarded message recorded on its own.
func BenchmarkRecordOutcomes(b *testing.B) {
	engines := []struct {
		name string
		url  func(b *testing.B) string
	}{
		{"bolt", func(b *testing.B) string { return "file:" + filepath.Join(b.TempDir(), "state.db") }},
		{"redis", func(b *testing.B) string { return testenv.StartRedis(b).URL }},
	}
	for _, e := range engines {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/batch=%d", e.name, batch), func(b *testing.B) {
				s, err := Open(b.Context(), e.url(b), Options{})
				if err != nil {
					b.Fatalf("Open: %v", err)
				}
				defer s.Close()
				outs := make([]Outcome, batch)
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					for i := range outs {
						outs[i] = testOutcome(n)
						n++
					}
					if err := s.RecordOutcomes(b.Context(), "support", outs); err != nil {
						b.Fatalf("RecordOutcomes: %v", err)
					}
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "outcomes/s")
			})
		}
	}
}
