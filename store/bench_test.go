package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/redis/go-redis/v9"
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

// BenchmarkOutcomesLookup looks a poller batch of 200 fingerprints up (180
// known, 20 new) among 100,000 records: bbolt; Redis, records as keys (one
// MGET, pipelined with the HMGET of the previous layout's empty hash);
// Redis with every record still in the previous layout's hash, read
// through the same call; and what the previous version did, one HMGET of
// that hash and the decoding.
func BenchmarkOutcomesLookup(b *testing.B) {
	const records, batch = 100000, 200
	outs := make([]Outcome, records)
	for i := range outs {
		outs[i] = testOutcome(i)
	}
	lookup := make([]string, batch)
	for i := range lookup {
		if i%10 == 9 {
			lookup[i] = fmt.Sprintf("new-%d", i)
		} else {
			lookup[i] = outs[(i*7919)%records].Fingerprint
		}
	}
	fill := func(b *testing.B, s Store) {
		b.Helper()
		for chunk := range slices.Chunk(outs, 1000) {
			if err := s.RecordOutcomes(b.Context(), "support", chunk); err != nil {
				b.Fatalf("RecordOutcomes: %v", err)
			}
		}
	}
	run := func(b *testing.B, s Store) {
		b.Helper()
		for b.Loop() {
			got, err := s.Outcomes(b.Context(), "support", lookup)
			if err != nil || len(got) != batch*9/10 {
				b.Fatalf("Outcomes = %d records, %v; want %d", len(got), err, batch*9/10)
			}
		}
	}
	b.Run("bolt", func(b *testing.B) {
		s, err := Open(b.Context(), "file:"+filepath.Join(b.TempDir(), "state.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fill(b, s)
		run(b, s)
	})
	srv := testenv.StartRedis(b)
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer raw.Close()
	b.Run("redis", func(b *testing.B) {
		s, err := Open(b.Context(), srv.URL, Options{Prefix: "keys"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fill(b, s)
		run(b, s)
	})
	// The previous layout: every record a field of P:{M}:outcomes.
	for chunk := range slices.Chunk(outs, 1000) {
		args := make([]any, 0, 2*len(chunk))
		for _, o := range chunk {
			v, err := encodeOutcome(o)
			if err != nil {
				b.Fatal(err)
			}
			args = append(args, o.Fingerprint, v)
		}
		if err := raw.HSet(b.Context(), "hash:{support}:outcomes", args...).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("redis-previous-layout", func(b *testing.B) {
		s, err := Open(b.Context(), srv.URL, Options{Prefix: "hash"})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		run(b, s)
	})
	b.Run("redis-previous-version", func(b *testing.B) {
		for b.Loop() {
			vals, err := raw.HMGet(b.Context(), "hash:{support}:outcomes", lookup...).Result()
			if err != nil {
				b.Fatal(err)
			}
			for i, v := range vals {
				if str, ok := v.(string); ok {
					if _, err := decodeOutcome(lookup[i], []byte(str)); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
}
