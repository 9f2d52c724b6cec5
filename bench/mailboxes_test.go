package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// BenchmarkMailboxes starts -bench.procs `mailtriage run` workers together,
// scheduled every 60 s, over -bench.mailboxes mailboxes of
// -bench.per-mailbox messages on one Dovecot, sharing one Redis: every
// message must be handled once, the leases and the spacing spread the
// mailboxes across the workers, and the time is until the last message is
// handled.
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
	sink, err := smtpsink.Start(ctx, smtpsink.Options{TLS: tlsmode.None, DiscardBodies: true})
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
	logPaths := make([]string, procs)
	cmds := make([]*exec.Cmd, procs)
	mark := markCPU(b)
	b.StartTimer()
	start := time.Now()
	for i := range procs {
		logPaths[i] = filepath.Join(dir, fmt.Sprintf("proc%d.log", i))
		f, err := os.Create(logPaths[i])
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		cmds[i] = exec.CommandContext(runCtx, bin, "run", "--config", cfg)
		cmds[i].Stdout, cmds[i].Stderr = f, f
		if err := cmds[i].Start(); err != nil {
			b.Fatalf("start worker %d: %v", i, err)
		}
	}
	// Done when the logs account for every message (a cycle logs its
	// counts when it ends), or at the first 60-second tick at the latest.
	handled := func() (forwarded, flagged int, perProc []int, mailboxes map[string]int, logs [][]byte) {
		perProc, mailboxes, logs = make([]int, procs), map[string]int{}, make([][]byte, procs)
		for i, path := range logPaths {
			logs[i], _ = os.ReadFile(path)
			for _, l := range cycles(logs[i]) {
				if l.Forwarded+l.Flagged == 0 {
					continue
				}
				mailboxes[l.Mailbox]++
				forwarded += l.Forwarded
				flagged += l.Flagged
				perProc[i] += l.Forwarded + l.Flagged
			}
		}
		return
	}
	var forwarded, flagged int
	for time.Since(start) < 2*time.Minute {
		if forwarded, flagged, _, _, _ = handled(); forwarded+flagged >= want.messages {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(start)
	b.StopTimer()
	rss := make([]int64, procs)
	var workersCPU time.Duration
	for i, cmd := range cmds {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Errorf("worker %d: %v", i, err)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss[i] = ru.Maxrss * 1024
			workersCPU += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	cpu := since(b, mark, workersCPU)
	forwarded, flagged, perProc, mailboxes, logs := handled()
	for i := range procs {
		if b.Failed() {
			b.Logf("worker %d:\n%s", i, tail(logs[i]))
		}
	}
	if sink.Count() != want.forward || forwarded != want.forward || flagged != want.flag {
		b.Errorf("helpdesk got %d, logs say %d forwarded and %d flagged; want %d forwarded, %d flagged",
			sink.Count(), forwarded, flagged, want.forward, want.flag)
	}
	if wall > time.Minute {
		b.Logf("not all handled within the first 60-second schedule interval: %v", wall)
	}
	var maxRSS int64
	for _, r := range rss {
		maxRSS = max(maxRSS, r)
	}
	b.ReportMetric(float64(want.messages)/wall.Seconds(), "msgs/s")
	b.ReportMetric(wall.Seconds(), "cycle-s")
	b.ReportMetric(float64(maxRSS)/(1<<20), "peak-RSS-MiB")
	fmt.Printf("mailboxes: %d x %d messages (%.0f MiB), %d `mailtriage run` workers scheduled @every 60s, one Redis: all handled in %.1fs (%.0f msgs/s); "+
		"forwarded %d, flagged %d; mailboxes with mail %d (of %d); messages per worker %v; peak RSS %.1f MiB\n",
		boxes, per, float64(want.bytes)/(1<<20), procs, wall.Seconds(), float64(want.messages)/wall.Seconds(),
		forwarded, flagged, len(mailboxes), boxes, perProc, float64(maxRSS)/(1<<20))
	fmt.Printf("mailboxes: where the CPU went (workers until SIGTERM; Dovecot includes Redis): %v\n", cpu)
}
