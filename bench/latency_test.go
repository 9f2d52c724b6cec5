package bench

import (
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/bench/delayproxy"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

var (
	benchLatencyN = flag.Int("bench.latency-n", 1000, "messages per SMTP round trip of BenchmarkLatency")
	benchRTTs     = flag.String("bench.rtts", "0,20,50", "comma-separated SMTP round trips in ms for BenchmarkLatency (0 is always measured)")
)

// BenchmarkLatency puts the SMTP sink -bench.rtts milliseconds away, behind
// the delay proxy (half the round trip each way, and a TCP handshake of 1.5
// round trips), and relays a mailbox of -bench.latency-n messages at each
// distance with the bare read-and-relay loop and with `mailtriage run
// --once`: messages/s per round trip, and the share of the same run's RTT-0
// rate (through the proxy too) that each keeps; with -bench.rounds, the
// median of each over the rounds, each ratio taken within its round. IMAP
// stays on loopback: one FETCH streams all bodies, so its latency barely
// counts.
func BenchmarkLatency(b *testing.B) {
	if *benchLatencyN <= 0 {
		b.Fatalf("-bench.latency-n: %d is not a positive number", *benchLatencyN)
	}
	rtts := roundTrips(b)
	bin := buildBinary(b)
	ts := loadTemplates(b)
	for range b.N {
		b.StopTimer()
		var rounds [][]latencyMode
		for range *benchRounds {
			rounds = append(rounds, latencyRun(b, bin, ts, *benchLatencyN, rtts))
		}
		reportLatency(b, *benchLatencyN, rounds)
	}
}

// roundTrips parses -bench.rtts: distinct, ascending, starting with 0 (the
// base of the ratios).
func roundTrips(b *testing.B) []time.Duration {
	out := []time.Duration{0}
	for _, f := range strings.Split(*benchRTTs, ",") {
		ms, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || ms < 0 {
			b.Fatalf("-bench.rtts: %q is not a round trip in milliseconds", f)
		}
		out = append(out, time.Duration(ms)*time.Millisecond)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// latencyMode is what one round trip measured.
type latencyMode struct {
	rtt, measured    time.Duration // as set, and as an SMTP NOOP saw it
	rate, bareRate   float64       // msgs/s: mailtriage's full cycle, the bare loop
	turns, bareTurns float64       // SMTP client turns (round trips waited for) per relayed message
	late, bareLate   time.Duration // the proxy's mean lateness per chunk, on top of the delay
	sessions, ahead  int           // the full cycle's SMTP sessions open at once, and commands sent ahead of their replies, at most (smtpsink.Stats)
}

func latencyRun(b *testing.B, bin string, ts templates, n int, rtts []time.Duration) []latencyMode {
	d := testenv.StartDovecot(b)
	sink, err := smtpsink.Start(b.Context(), smtpsink.Options{TLS: tlsmode.None, DiscardBodies: true})
	if err != nil {
		b.Fatalf("start SMTP sink: %v", err)
	}
	defer sink.Close()

	// One mailbox per round trip, all the same messages.
	users := make([]string, len(rtts))
	for i, rtt := range rtts {
		users[i] = fmt.Sprintf("rtt%d@example.test", rtt.Milliseconds())
	}
	d.AddUsers(users, d.Password)
	var st mixStats
	for _, user := range users {
		st = seedInbox(b, d, user, n, newMix(benchSeed, ts))
	}

	var modes []latencyMode
	for i, rtt := range rtts {
		m := latencyMode{rtt: rtt, measured: smtpRoundTrip(b, startDelayProxy(b, sink.Addr(), rtt).Addr())}

		proxy := startDelayProxy(b, sink.Addr(), rtt)
		relayed, bare := relayLoop(b, d, users[i], proxy.Addr())
		if relayed.Messages != n || sink.Count() != n {
			b.Fatalf("RTT %v: bare loop relayed %d messages and the sink got %d, want %d", rtt, relayed.Messages, sink.Count(), n)
		}
		m.bareRate = float64(n) / bare.wall.Seconds()
		m.bareTurns, m.bareLate = perMessage(proxy.Stats(), n)
		proxy.Close()
		sink.Reset()

		proxy = startDelayProxy(b, sink.Addr(), rtt)
		dir := b.TempDir()
		cfg := writeConfig(b, dir, "file:"+filepath.Join(dir, "state.db"), d, proxy.Addr(),
			[]mailboxConfig{{name: "support", user: users[i], passwordFile: writeSecret(b, dir, d.Password)}})
		b.StartTimer()
		full := runMailtriage(b, bin, "run", "--once", "--config", cfg)
		b.StopTimer()
		done := cycles(full.log)
		if len(done) != 1 || done[0].Forwarded != st.forward || done[0].Flagged != st.flag || sink.Count() != st.forward {
			b.Fatalf("RTT %v: cycles %+v and the sink got %d; want one cycle forwarding %d and flagging %d\n%s",
				rtt, done, sink.Count(), st.forward, st.flag, tail(full.log))
		}
		m.rate = float64(n) / full.wall.Seconds()
		m.turns, m.late = perMessage(proxy.Stats(), st.forward)
		m.sessions, m.ahead = sink.Stats().MaxConcurrent, sink.Stats().MaxPipelined
		proxy.Close()
		sink.Reset()

		fmt.Printf("latency n=%d RTT %d ms (NOOP median %.1f ms): full cycle %.2fs = %.1f msgs/s (%.2f SMTP round trips per forwarded message, %d sessions, up to %d commands ahead, proxy %.2f ms late per chunk); "+
			"bare loop %.2fs = %.1f msgs/s (%.1f per message, proxy %.2f ms late per chunk)\n",
			n, rtt.Milliseconds(), ms(m.measured), full.wall.Seconds(), m.rate, m.turns, m.sessions, m.ahead, ms(m.late), bare.wall.Seconds(), m.bareRate, m.bareTurns, ms(m.bareLate))
		modes = append(modes, m)
	}
	return modes
}

// seedInbox writes n messages of the mix into user's INBOX and has Dovecot
// index them (an EXAMINE), so that no measured run pays for the indexing.
func seedInbox(b *testing.B, d *testenv.Dovecot, user string, n int, m *mix) mixStats {
	b.Helper()
	c := dialIMAP(b, d, user) // Dovecot makes the Maildir at the first login
	defer c.Close()
	st, err := writeMaildir(d.MaildirPath(user), "inbox", n, m)
	if err != nil {
		b.Fatalf("seed the mailbox of %s: %v", user, err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatalf("examine INBOX of %s: %v", user, err)
	}
	if got := folderCount(b, c, "INBOX"); got != n {
		b.Fatalf("INBOX of %s holds %d messages after seeding, want %d", user, got, n)
	}
	return st
}

// smtpRoundTrip is the median time of an SMTP NOOP at addr: the round trip
// a mode really had, the delay plus the proxy's timers and the sink.
func smtpRoundTrip(b *testing.B, addr string) time.Duration {
	b.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		b.Fatalf("dial the sink through the proxy: %v", err)
	}
	defer c.Close()
	if err := c.Hello("bench.mailtriage.test"); err != nil {
		b.Fatalf("EHLO through the proxy: %v", err)
	}
	rtts := make([]time.Duration, 21)
	for i := range rtts {
		start := time.Now()
		if err := c.Noop(); err != nil {
			b.Fatalf("NOOP through the proxy: %v", err)
		}
		rtts[i] = time.Since(start)
	}
	if err := c.Quit(); err != nil {
		b.Fatalf("QUIT through the proxy: %v", err)
	}
	slices.Sort(rtts)
	return rtts[len(rtts)/2]
}

// perMessage is the round trips the client waited for per message, and
// the proxy's mean lateness per chunk.
func perMessage(st delayproxy.Stats, messages int) (float64, time.Duration) {
	var late time.Duration
	if st.Chunks > 0 {
		late = st.Late / time.Duration(st.Chunks)
	}
	return float64(st.ClientTurns) / float64(messages), late
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startDelayProxy puts the sink rtt away: half of it each way, and the
// TCP handshake's 1.5 round trips before the sink sees the connection.
func startDelayProxy(b *testing.B, sinkAddr string, rtt time.Duration) *delayproxy.Proxy {
	b.Helper()
	p, err := delayproxy.Start(b.Context(), delayproxy.Options{Target: sinkAddr, Delay: rtt / 2, Handshake: 3 * rtt / 2, Lifetime: runTimeout})
	if err != nil {
		b.Fatalf("start delay proxy: %v", err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// reportLatency prints the table of the rounds' medians and reports them.
func reportLatency(b *testing.B, n int, rounds [][]latencyMode) {
	// each is the median over the rounds of f of mode i and of the round's
	// RTT-0 mode.
	each := func(i int, f func(m, base latencyMode) float64) float64 {
		v := make([]float64, len(rounds))
		for r, modes := range rounds {
			v[r] = f(modes[i], modes[0])
		}
		slices.Sort(v)
		return (v[(len(v)-1)/2] + v[len(v)/2]) / 2
	}
	var t strings.Builder
	fmt.Fprintf(&t, "latency n=%d, median of %d rounds, SMTP sink behind the delay proxy, IMAP on loopback:\n", n, len(rounds))
	fmt.Fprintf(&t, "| SMTP round trip (NOOP median) | mailtriage msg/s | of its RTT-0 rate | SMTP round trips per message | sessions | commands ahead | bare loop msg/s | of its RTT-0 rate |\n")
	fmt.Fprintf(&t, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, m := range rounds[0] {
		rtt := m.rtt.Milliseconds()
		measured := each(i, func(m, _ latencyMode) float64 { return ms(m.measured) })
		rate := each(i, func(m, _ latencyMode) float64 { return m.rate })
		ratio := each(i, func(m, base latencyMode) float64 { return 100 * m.rate / base.rate })
		turns := each(i, func(m, _ latencyMode) float64 { return m.turns })
		bareRate := each(i, func(m, _ latencyMode) float64 { return m.bareRate })
		bareRatio := each(i, func(m, base latencyMode) float64 { return 100 * m.bareRate / base.bareRate })
		sessions := each(i, func(m, _ latencyMode) float64 { return float64(m.sessions) })
		ahead := each(i, func(m, _ latencyMode) float64 { return float64(m.ahead) })
		fmt.Fprintf(&t, "| %d ms (%.1f ms) | %.1f | %.1f%% | %.2f | %.0f | %.0f | %.1f | %.1f%% |\n",
			rtt, measured, rate, ratio, turns, sessions, ahead, bareRate, bareRatio)
		b.ReportMetric(rate, fmt.Sprintf("rtt%dms-msgs/s", rtt))
		b.ReportMetric(ratio, fmt.Sprintf("rtt%dms-%%-of-rtt0", rtt))
		b.ReportMetric(bareRate, fmt.Sprintf("rtt%dms-bare-msgs/s", rtt))
	}
	fmt.Print(t.String())
}
