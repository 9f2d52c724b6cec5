package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/store"
)

var benchStateN = flag.Int("bench.state-n", 1000000, "messages whose state BenchmarkStateSize writes")

// stateBatch is how many messages' state one write carries, the poller's
// default batch size.
const stateBatch = 200

// stateMessage is message i's outcome and thread note as the poller makes
// them: a Message-ID like a mail client's, its fingerprint (Message-ID
// plus 16 hex digits), four messages to a thread, a relay address in one
// thread of ten.
func stateMessage(i int, at time.Time) (store.Outcome, store.ThreadNote) {
	id := fmt.Sprintf("<CA+%016x.%d@mail.example.com>", uint64(i)*0x9e3779b97f4a7c15, i)
	root := fmt.Sprintf("<CA+%016x.%d@mail.example.com>", uint64(i/4*4)*0x9e3779b97f4a7c15, i/4*4)
	action, folder := analyzer.ActionForwarded, "INBOX"
	if i%10 == 0 {
		action, folder = analyzer.ActionFlagged, "Triage/Review"
	}
	o := store.Outcome{
		Fingerprint: fmt.Sprintf("%s/%016x", id, uint64(i)*0xbf58476d1ce4e5b9),
		MessageID:   id, Action: action, Folder: folder, ThreadKey: root,
		UIDValidity: 1764633600, UID: uint32(i + 1), At: at,
	}
	n := store.ThreadNote{MessageID: id, ThreadKey: root}
	if i/4%10 == 0 {
		n.RelayAddresses = []string{fmt.Sprintf("x%07d@mozmail.com", i/4)}
	}
	return o, n
}

// writeState records the outcomes of n messages, and notes their threads
// when threads is set, in batches as cycles would.
func writeState(b *testing.B, s store.Store, n int, at time.Time, threads bool) {
	b.Helper()
	for i := 0; i < n; i += stateBatch {
		outs := make([]store.Outcome, 0, stateBatch)
		notes := make([]store.ThreadNote, 0, stateBatch)
		for j := i; j < min(i+stateBatch, n); j++ {
			o, note := stateMessage(j, at)
			outs, notes = append(outs, o), append(notes, note)
		}
		var err error
		if threads {
			err = s.NoteThreads(context.Background(), "support", notes)
		} else {
			err = s.RecordOutcomes(context.Background(), "support", outs)
		}
		if err != nil {
			b.Fatalf("write state: %v", err)
		}
	}
}

// BenchmarkStateSize writes the state of -bench.state-n messages (an
// outcome record and a thread note each) and reports its size: the bbolt
// file, with each bucket's share and the time to open it (the store's
// Open, and bbolt's own part of it), and Redis' used_memory, for the outcome keys, the thread keys, and the same
// outcomes in the previous layout's single hash. `make bench-state`.
func BenchmarkStateSize(b *testing.B) {
	n := *benchStateN
	per := func(bytes int64) float64 { return float64(bytes) / float64(n) }
	b.Run("bolt", func(b *testing.B) {
		for b.Loop() {
			path := filepath.Join(b.TempDir(), "state.db")
			s, err := store.Open(context.Background(), "file:"+path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			writeState(b, s, n, time.Now(), false)
			writeState(b, s, n, time.Now(), true)
			s.Close()
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(per(fi.Size()), "file-bytes/msg")
			b.ReportMetric(float64(fi.Size())/(1<<20)*1e6/float64(n), "file-MiB/1M-msgs")
			start := time.Now()
			s, err = store.Open(context.Background(), "file:"+path, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds()), "open-µs")
			s.Close()
			// bbolt's own share: mapping the file and loading its freelist.
			start = time.Now()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(time.Since(start).Microseconds()), "bbolt-open-µs")
			db.Close()
			db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			err = db.View(func(tx *bolt.Tx) error {
				mb := tx.Bucket([]byte("support"))
				return mb.ForEachBucket(func(name []byte) error {
					st := mb.Bucket(name).Stats()
					b.ReportMetric(per(int64(st.LeafInuse+st.BranchInuse)), string(name)+"-bytes/msg")
					return nil
				})
			})
			db.Close()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis", func(b *testing.B) {
		for b.Loop() {
			srv := testenv.StartRedis(b)
			raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
			used := func() int64 {
				b.Helper()
				info, err := raw.Info(context.Background(), "memory").Result()
				if err != nil {
					b.Fatal(err)
				}
				for _, line := range strings.Split(info, "\r\n") {
					if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
						x, err := strconv.ParseInt(v, 10, 64)
						if err != nil {
							b.Fatal(err)
						}
						return x
					}
				}
				b.Fatal("INFO memory has no used_memory")
				return 0
			}
			s, err := store.Open(context.Background(), srv.URL, store.Options{})
			if err != nil {
				b.Fatal(err)
			}
			base := used()
			ctx := context.Background()
			at := time.Now()
			writeState(b, s, n, at, false)
			outcomes := used()
			b.ReportMetric(per(outcomes-base), "outcome-bytes/msg")
			o, _ := stateMessage(0, at)
			if mu, err := raw.MemoryUsage(ctx, "mailtriage:{support}:outcome:"+o.Fingerprint).Result(); err == nil {
				b.ReportMetric(float64(mu), "MEMORY-USAGE-one-outcome-bytes")
			}
			writeState(b, s, n, at, true)
			threads := used()
			b.ReportMetric(per(threads-outcomes), "thread-bytes/msg")
			b.ReportMetric(per(threads-base), "total-bytes/msg")
			b.ReportMetric(float64(threads-base)/(1<<20)*1e6/float64(n), "total-MiB/1M-msgs")
			// The same records in the previous layout's one hash.
			moveToHash(b, raw, "mailtriage:{support}:outcome:", "mailtriage:{support}:outcomes")
			b.ReportMetric(per(used()-threads+(outcomes-base)), "previous-layout-outcome-bytes/msg")
			s.Close()
			raw.Close()
			srv.Stop()
		}
	})
}

// moveToHash moves every string key under prefix into fields of the hash
// key, named by the rest of the key, as the previous layout kept outcomes.
func moveToHash(b *testing.B, raw *redis.Client, prefix, key string) {
	b.Helper()
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := raw.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			b.Fatal(err)
		}
		if len(keys) > 0 {
			vals, err := raw.MGet(ctx, keys...).Result()
			if err != nil {
				b.Fatal(err)
			}
			args := make([]any, 0, 2*len(keys))
			for i, k := range keys {
				args = append(args, strings.TrimPrefix(k, prefix), vals[i])
			}
			if _, err := raw.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, key, args...)
				p.Del(ctx, keys...)
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}
