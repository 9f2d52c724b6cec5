package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkDryRun times `mailtriage run --dry-run` as a process, from start
// to exit, over the -bench.n mailbox of BenchmarkCycle with no state file
// yet (an operator's first try): every message's verdict printed as the
// scan table, nothing changed. Besides the facts, it reads the bodies of
// the mail it would forward, as a cycle does, for the check of a multipart
// cut short.
func BenchmarkDryRun(b *testing.B) {
	bin := buildBinary(b)
	ts := loadTemplates(b)
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				benchDryRun(b, bin, ts, n)
			}
		})
	}
}

func benchDryRun(b *testing.B, bin string, ts templates, n int) {
	b.StopTimer()
	d, sink, st := seedMailbox(b, ts, n)

	dir := b.TempDir()
	cfg := writeConfig(b, dir, "file:"+filepath.Join(dir, "state.db"), d, sink.Addr(),
		[]mailboxConfig{{name: "support", user: d.User, passwordFile: writeSecret(b, dir, d.Password)}})
	var rates []float64
	for round := range *benchRounds {
		ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "run", "--dry-run", "--config", cfg)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		mark := markCPU(b)
		b.StartTimer()
		r, err := measure(cmd)
		b.StopTimer()
		cancel()
		if err != nil {
			b.Fatalf("mailtriage run --dry-run: %v\n%s", err, tail(stderr.Bytes()))
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		summary := fmt.Sprintf("%d messages: %d to flag, %d to forward; 0 unreadable", n, st.flag, st.forward)
		if len(lines) != n+2 || lines[len(lines)-1] != summary {
			b.Fatalf("dry run printed %d lines ending %q; want a header, %d rows and %q", len(lines), lines[len(lines)-1], n, summary)
		}
		rate := float64(n) / r.wall.Seconds()
		rates = append(rates, rate)
		fmt.Printf("dry run n=%d round %d: %.2fs = %.0f msgs/s, process CPU %.2fs, peak RSS %.1f MiB; %v\n",
			n, round+1, r.wall.Seconds(), rate, r.cpu.Seconds(), float64(r.peakRSS)/(1<<20), since(b, mark, r.cpu))
	}

	c := dialIMAP(b, d, d.User)
	inbox, review := folderCount(b, c, "INBOX"), folderCount(b, c, "Triage/Review")
	c.Close()
	if inbox != n || review != 0 || sink.Count() != 0 {
		b.Errorf("after the dry runs: INBOX %d, review %d, sent %d; want %d, 0, 0", inbox, review, sink.Count(), n)
	}
	b.ReportMetric(medianOf(rates), "msgs/s")
}
