package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

// BenchmarkMailboxes runs -bench.procs `mailtriage run --once` processes
// together over -bench.mailboxes mailboxes of -bench.per-mailbox messages
// on one Dovecot, sharing one Redis: every message must be handled once,
// and the leases spread the mailboxes across the processes.
func BenchmarkMailboxes(b *testing.B) {
	bin := buildBinary(b)
	ts := loadTemplates(b)
	for range b.N {
		runMailboxes(b, bin, ts, *benchMailboxes, *benchPerMailbox, *benchProcs)
	}
}

func runMailboxes(b *testing.B, bin string, ts templates, boxes, per, procs int) {
	b.StopTimer()
	ctx := context.Background()
	d := testenv.StartDovecot(b)
	redis := testenv.StartRedis(b)
	sink, err := smtpsink.Start(ctx, smtpsink.Options{TLS: smtpsink.TLSNone, DiscardBodies: true})
	if err != nil {
		b.Fatalf("start SMTP sink: %v", err)
	}
	defer sink.Close()

	dir := b.TempDir()
	secret := writeSecret(b, dir, d.Password)
	users := make([]string, boxes)
	mbs := make([]mailboxConfig, boxes)
	m := newMix(benchSeed, ts)
	var want mixStats
	for i := range boxes {
		users[i] = fmt.Sprintf("box%03d@example.test", i)
		mbs[i] = mailboxConfig{name: fmt.Sprintf("box%03d", i), user: users[i], passwordFile: secret}
		st, err := writeMaildir(d.MaildirPath(users[i]), mbs[i].name, per, m)
		if err != nil {
			b.Fatalf("seed mailbox %s: %v", users[i], err)
		}
		want.messages += st.messages
		want.forward += st.forward
		want.flag += st.flag
		want.bytes += st.bytes
	}
	d.AddUsers(users, d.Password)
	cfg := writeConfig(b, dir, redis.URL, d, sink.Addr(), mbs)

	runCtx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	logs := make([][]byte, procs)
	rss := make([]int64, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	b.StartTimer()
	start := time.Now()
	for i := range procs {
		wg.Go(func() {
			logPath := filepath.Join(dir, fmt.Sprintf("proc%d.log", i))
			f, err := os.Create(logPath)
			if err != nil {
				errs[i] = err
				return
			}
			defer f.Close()
			cmd := exec.CommandContext(runCtx, bin, "run", "--once", "--config", cfg)
			cmd.Stdout, cmd.Stderr = f, f
			errs[i] = cmd.Run()
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				rss[i] = ru.Maxrss * 1024
			}
			logs[i], _ = os.ReadFile(logPath)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	b.StopTimer()

	handled := make(map[string]int) // mailbox -> processes that cycled it
	var forwarded, flagged int
	perProc := make([]int, procs)
	for i := range procs {
		if errs[i] != nil {
			b.Errorf("process %d: %v\n%s", i, errs[i], tail(logs[i]))
		}
		for _, l := range cycles(logs[i]) {
			if l.Skipped {
				continue
			}
			handled[l.Mailbox]++
			forwarded += l.Forwarded
			flagged += l.Flagged
			perProc[i] += l.Forwarded + l.Flagged
		}
	}
	if sink.Count() != want.forward || forwarded != want.forward || flagged != want.flag {
		b.Errorf("helpdesk got %d, logs say %d forwarded and %d flagged; want %d forwarded, %d flagged",
			sink.Count(), forwarded, flagged, want.forward, want.flag)
	}
	var maxRSS int64
	for _, r := range rss {
		maxRSS = max(maxRSS, r)
	}
	b.ReportMetric(float64(want.messages)/wall.Seconds(), "msgs/s")
	b.ReportMetric(wall.Seconds(), "cycle-s")
	b.ReportMetric(float64(maxRSS)/(1<<20), "peak-RSS-MiB")
	fmt.Printf("mailboxes: %d x %d messages (%.0f MiB), %d processes, one Redis: all done in %.1fs (%.0f msgs/s); "+
		"forwarded %d, flagged %d; mailboxes cycled %d (of %d); messages per process %v; peak RSS %.1f MiB\n",
		boxes, per, float64(want.bytes)/(1<<20), procs, wall.Seconds(), float64(want.messages)/wall.Seconds(),
		forwarded, flagged, len(handled), boxes, perProc, float64(maxRSS)/(1<<20))
}
