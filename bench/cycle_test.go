package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

var (
	benchSizes      = flag.String("bench.n", "10000", "comma-separated mailbox sizes for BenchmarkCycle")
	benchMailboxes  = flag.Int("bench.mailboxes", 500, "mailboxes for BenchmarkMailboxes")
	benchPerMailbox = flag.Int("bench.per-mailbox", 20, "messages per mailbox for BenchmarkMailboxes")
	benchProcs      = flag.Int("bench.procs", 3, "mailtriage processes sharing one Redis in BenchmarkMailboxes")
	benchState      = flag.String("bench.state", "file", "state store of BenchmarkCycle: file (bbolt) or redis")
	benchRounds     = flag.Int("bench.rounds", 1, "rounds of BenchmarkCycle per size; the medians are reported")
)

const (
	benchSeed     = 20261125
	helpdeskAddr  = "support@example.zendesk.test"
	triageAddr    = "triage@helpdesk.test"
	runTimeout    = 30 * time.Minute
	imapDialLimit = 10 * time.Second
)

// buildBinary builds cmd/mailtriage once for a benchmark.
func buildBinary(b testing.TB) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "mailtriage")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/mailtriage").CombinedOutput()
	if err != nil {
		b.Fatalf("build mailtriage: %v\n%s", err, out)
	}
	return bin
}

// run is one finished process: mailtriage, or the bare loop.
type run struct {
	wall    time.Duration
	cpu     time.Duration // user + system
	peakRSS int64         // bytes
	log     []byte
}

// runMailtriage runs the binary with args and fails the benchmark when it
// exits non-zero.
func runMailtriage(b testing.TB, bin string, args ...string) run {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	r, err := measure(cmd)
	r.log = log.Bytes()
	if err != nil {
		b.Fatalf("mailtriage %s: %v\n%s", strings.Join(args, " "), err, tail(r.log))
	}
	return r
}

// measure runs cmd and reports its wall time (process start to exit), CPU
// and peak RSS.
func measure(cmd *exec.Cmd) (run, error) {
	start := time.Now()
	err := cmd.Run()
	r := run{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.peakRSS = ru.Maxrss * 1024
			r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return r, err
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

// mailboxConfig is one mailbox of a generated configuration.
type mailboxConfig struct {
	name, user, passwordFile string
	notify                   string // YAML of a notify block, "" for none
	forward                  string // YAML of the forward block, "" for the SMTP relay at sinkAddr
}

// writeConfig writes a mailtriage configuration for the mailboxes.
func writeConfig(b testing.TB, dir, stateURL string, d *testenv.Dovecot, sinkAddr string, mbs []mailboxConfig) string {
	b.Helper()
	var c strings.Builder
	fmt.Fprintf(&c, "state:\n  url: %q\nlog:\n  format: json\n  level: info\nmailboxes:\n", stateURL)
	for _, mb := range mbs {
		forward := mb.forward
		if forward == "" {
			forward = fmt.Sprintf(`    forward:
      to: [%s]
      from: %s
      smtp:
        address: %s
        tls: none
        insecure_plaintext: true
`, helpdeskAddr, triageAddr, sinkAddr)
		}
		fmt.Fprintf(&c, `  - name: %s
    schedule: "@every 60s"
    imap:
      address: %s
      ca_file: %s
      username: %s
      password_file: %s
%s%s`, mb.name, d.Addr, d.CAFile, mb.user, mb.passwordFile, forward, mb.notify)
	}
	path := filepath.Join(dir, "mailtriage.yaml")
	if err := os.WriteFile(path, []byte(c.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func writeSecret(b testing.TB, dir, value string) string {
	b.Helper()
	path := filepath.Join(dir, "imap-password")
	if err := os.WriteFile(path, []byte(value), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

// dialIMAP logs in to Dovecot over IMAPS as user.
func dialIMAP(b testing.TB, d *testenv.Dovecot, user string) *imapclient.Client {
	b.Helper()
	c, err := imapclient.DialTLS(d.Addr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: d.RootCAs, MinVersion: tls.VersionTLS12},
		Dialer:    &net.Dialer{Timeout: imapDialLimit},
	})
	if err != nil {
		b.Fatalf("dial Dovecot: %v", err)
	}
	if err := c.Login(user, d.Password).Wait(); err != nil {
		b.Fatalf("login %s: %v", user, err)
	}
	return c
}

// folderCount is the number of messages in folder (0 when it does not exist).
func folderCount(b testing.TB, c *imapclient.Client, folder string) int {
	b.Helper()
	data, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0
	}
	return int(*data.NumMessages)
}

func sizes(b *testing.B) []int {
	var out []int
	for _, f := range strings.Split(*benchSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("-bench.n: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkCycle measures one full `mailtriage run --once` over a mailbox
// of N messages, the bare read-and-relay loop over the same mailbox, and a
// second cycle with nothing to do.
func BenchmarkCycle(b *testing.B) {
	bin := buildBinary(b)
	ts := loadTemplates(b)
	for _, n := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			for range b.N {
				var rounds []round
				for range *benchRounds {
					rounds = append(rounds, benchCycle(b, bin, ts, n))
				}
				summarize(b, n, rounds)
			}
		})
	}
}

// round is one round's figures.
type round struct {
	rate, relayRate, ratio, idleCycleMs, idleRunMs, peakRSSMiB float64
}

// summarize reports the median of each figure over the rounds: on a shared
// machine one round can be slowed by a neighbour, the bare loop or the
// full cycle alike.
func summarize(b *testing.B, n int, rounds []round) {
	median := func(f func(round) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	m := round{
		rate:        median(func(r round) float64 { return r.rate }),
		relayRate:   median(func(r round) float64 { return r.relayRate }),
		ratio:       median(func(r round) float64 { return r.ratio }),
		idleCycleMs: median(func(r round) float64 { return r.idleCycleMs }),
		idleRunMs:   median(func(r round) float64 { return r.idleRunMs }),
		peakRSSMiB:  median(func(r round) float64 { return r.peakRSSMiB }),
	}
	b.ReportMetric(m.rate, "msgs/s")
	b.ReportMetric(m.relayRate, "relay-msgs/s")
	b.ReportMetric(m.ratio, "%-of-relay")
	b.ReportMetric(m.idleCycleMs, "idle-cycle-ms")
	b.ReportMetric(m.idleRunMs, "idle-run-ms")
	b.ReportMetric(m.peakRSSMiB, "peak-RSS-MiB")
	fmt.Printf("cycle n=%d, median of %d rounds: full cycle %.0f msgs/s, bare loop %.0f msgs/s, full/bare %.0f%%, idle cycle %.0f ms (%.0f ms process start to exit), peak RSS %.1f MiB\n",
		n, len(rounds), m.rate, m.relayRate, m.ratio, m.idleCycleMs, m.idleRunMs, m.peakRSSMiB)
}

// medianOf is the median of v (sorted in place).
func medianOf(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// seedMailbox starts Dovecot and an SMTP sink (stopped when b ends) and
// fills the INBOX with n messages of the mix. Dovecot makes the Maildir at
// the first login; then the mix is written straight into it and indexed by
// an EXAMINE, so that no measured run pays for the indexing.
func seedMailbox(b *testing.B, ts templates, n int) (*testenv.Dovecot, *smtpsink.Sink, mixStats) {
	b.Helper()
	return seedMailboxWith(b, ts, n, smtpsink.Options{TLS: tlsmode.None, DiscardBodies: true})
}

// seedMailboxWith is seedMailbox with a sink of the options sinkOpt.
func seedMailboxWith(b *testing.B, ts templates, n int, sinkOpt smtpsink.Options) (*testenv.Dovecot, *smtpsink.Sink, mixStats) {
	b.Helper()
	d := testenv.StartDovecot(b)
	sink, err := smtpsink.Start(context.Background(), sinkOpt)
	if err != nil {
		b.Fatalf("start SMTP sink: %v", err)
	}
	b.Cleanup(func() { sink.Close() })
	c := dialIMAP(b, d, d.User)
	defer c.Close()
	st, err := writeMaildir(d.MaildirPath(d.User), "inbox", n, newMix(benchSeed, ts))
	if err != nil {
		b.Fatalf("seed the mailbox: %v", err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatalf("examine INBOX: %v", err)
	}
	if got := folderCount(b, c, "INBOX"); got != n {
		b.Fatalf("INBOX holds %d messages after seeding, want %d", got, n)
	}
	return d, sink, st
}

func benchCycle(b *testing.B, bin string, ts templates, n int) round {
	b.StopTimer()
	d, sink, st := seedMailbox(b, ts, n)

	relayMark := markCPU(b)
	relayed, bare := relayLoop(b, d, d.User, sink.Addr())
	relayCPU := since(b, relayMark, bare.cpu)
	if relayed.Messages != n || sink.Count() != n {
		b.Fatalf("bare loop relayed %d messages and the sink got %d, want %d", relayed.Messages, sink.Count(), n)
	}
	sink.Reset()

	dir := b.TempDir()
	stateURL := "file:" + filepath.Join(dir, "state.db")
	if *benchState == "redis" {
		stateURL = testenv.StartRedis(b).URL
	}
	cfg := writeConfig(b, dir, stateURL, d, sink.Addr(),
		[]mailboxConfig{{name: "support", user: d.User, passwordFile: writeSecret(b, dir, d.Password)}})
	firstMark := markCPU(b)
	b.StartTimer()
	first := runMailtriage(b, bin, "run", "--once", "--config", cfg)
	b.StopTimer()
	firstCPU := since(b, firstMark, first.cpu)
	forwarded := sink.Count()
	second := runMailtriage(b, bin, "run", "--once", "--config", cfg)
	idle := cycles(second.log)
	if len(idle) != 1 || idle[0].Forwarded+idle[0].Flagged != 0 {
		b.Fatalf("second cycle: %+v, want one cycle that does nothing", idle)
	}

	c := dialIMAP(b, d, d.User)
	// Dovecot's own share of the idle cycle: opening the folder (with a
	// Maildir, reading its UID list) grows with the folder.
	selStart := time.Now()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatalf("examine INBOX: %v", err)
	}
	selectTime := time.Since(selStart)
	inbox, review := folderCount(b, c, "INBOX"), folderCount(b, c, "Triage/Review")
	c.Close()
	if forwarded != st.forward || sink.Count() != st.forward {
		b.Errorf("the helpdesk got %d messages (then %d after the second cycle), want %d", forwarded, sink.Count(), st.forward)
	}
	if inbox+review != n || review != st.flag {
		b.Errorf("INBOX %d + review %d messages; want %d + %d", inbox, review, n-st.flag, st.flag)
	}

	mib := float64(st.bytes) / (1 << 20)
	rate := float64(n) / first.wall.Seconds()
	relayRate := float64(relayed.Messages) / bare.wall.Seconds()
	fmt.Printf("cycle n=%d state=%s (%.0f MiB): full cycle %.2fs (CPU %.2fs) = %.0f msgs/s, %.1f MiB/s, peak RSS %.1f MiB; forwarded %d, flagged %d; "+
		"bare read-and-relay %.2fs = %.0f msgs/s (%.1f MiB/s); full/bare %.0f%%; second cycle %.0f ms (%.0f ms from process start to exit)\n",
		n, *benchState, mib, first.wall.Seconds(), first.cpu.Seconds(), rate, mib/first.wall.Seconds(), float64(first.peakRSS)/(1<<20), forwarded, review,
		bare.wall.Seconds(), relayRate, float64(relayed.Bytes)/(1<<20)/bare.wall.Seconds(), 100*rate/relayRate,
		float64(idle[0].Duration.Microseconds())/1000, float64(second.wall.Microseconds())/1000)
	fmt.Printf("cycle n=%d where the CPU went: full cycle %v; bare loop %v; Dovecot's EXAMINE of the folder alone took %.0f ms\n",
		n, firstCPU, relayCPU, float64(selectTime.Microseconds())/1000)
	return round{rate: rate, relayRate: relayRate, ratio: 100 * rate / relayRate,
		idleCycleMs: float64(idle[0].Duration.Microseconds()) / 1000, idleRunMs: float64(second.wall.Microseconds()) / 1000,
		peakRSSMiB: float64(first.peakRSS) / (1 << 20)}
}

// cycleLine is the "cycle done" record a worker logs per mailbox cycle (a
// skipped cycle logs none).
type cycleLine struct {
	Msg       string        `json:"msg"`
	Mailbox   string        `json:"mailbox"`
	Forwarded int           `json:"forwarded"`
	Flagged   int           `json:"flagged"`
	Duration  time.Duration `json:"duration"` // slog writes nanoseconds
}

// cycles reads the "cycle done" lines of a JSON log.
func cycles(log []byte) []cycleLine {
	var out []cycleLine
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l cycleLine
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "cycle done" {
			out = append(out, l)
		}
	}
	return out
}
