package bench

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

var (
	benchBigN     = flag.Int("bench.big-n", 8, "25 MB messages in BenchmarkBigMessages, among -bench.big-small ordinary ones")
	benchBigSmall = flag.Int("bench.big-small", 200, "ordinary messages in BenchmarkBigMessages")
)

// bigSize is the size of a big message: the attachment limit of Exchange
// Online and Gmail.
const bigSize = 25 << 20

// BenchmarkBigMessages forwards a mailbox of -bench.big-n messages of 25 MB
// among -bench.big-small ordinary ones with `mailtriage run --once`, the
// SMTP sink 20 ms away behind the delay proxy and the default 3 sessions:
// the peak RSS (the target is under 64 MB: bodies are spooled to a file
// above a size, never held whole) and the rate.
func BenchmarkBigMessages(b *testing.B) {
	bin := buildBinary(b)
	for range b.N {
		b.StopTimer()
		d := testenv.StartDovecot(b)
		user := "big@example.test"
		d.AddUsers([]string{user}, d.Password)
		c := dialIMAP(b, d, user)
		c.Close()
		total := writeBig(b, d.MaildirPath(user), *benchBigN, *benchBigSmall)
		sink, err := smtpsink.Start(b.Context(), smtpsink.Options{TLS: tlsmode.None, DiscardBodies: true})
		if err != nil {
			b.Fatalf("start SMTP sink: %v", err)
		}
		proxy := startDelayProxy(b, sink.Addr(), 20*time.Millisecond)
		dir := b.TempDir()
		cfg := writeConfig(b, dir, "file:"+filepath.Join(dir, "state.db"), d, proxy.Addr(),
			[]mailboxConfig{{name: "support", user: user, passwordFile: writeSecret(b, dir, d.Password)}})
		b.StartTimer()
		r := runMailtriage(b, bin, "run", "--once", "--config", cfg)
		b.StopTimer()
		n := *benchBigN + *benchBigSmall
		var big int
		for _, m := range sink.Messages() {
			if m.Size > bigSize {
				big++
			}
		}
		if sink.Count() != n || big != *benchBigN {
			b.Fatalf("the sink got %d messages, %d of them big; want %d and %d\n%s", sink.Count(), big, n, *benchBigN, tail(r.log))
		}
		st := sink.Stats()
		fmt.Printf("big messages: %d of 25 MB among %d (%.0f MB), SMTP 20 ms away: %.2fs = %.1f msgs/s, %.1f MB/s, peak RSS %.1f MiB, %d sessions, up to %d commands ahead\n",
			*benchBigN, n, float64(total)/1e6, r.wall.Seconds(), float64(n)/r.wall.Seconds(), float64(total)/1e6/r.wall.Seconds(),
			float64(r.peakRSS)/(1<<20), st.MaxConcurrent, st.MaxPipelined)
		b.ReportMetric(float64(r.peakRSS)/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(n)/r.wall.Seconds(), "msgs/s")
		sink.Close()
		proxy.Close()
	}
}

// writeBig writes big messages of bigSize octets, spread among small
// ordinary ones, into the Maildir dir's new/ and returns their total size.
func writeBig(b *testing.B, dir string, big, small int) int64 {
	b.Helper()
	uid, gid, err := mailOwner()
	if err != nil {
		b.Fatal(err)
	}
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := mkdirOwned(filepath.Join(dir, sub), uid, gid); err != nil {
			b.Fatal(err)
		}
	}
	var total int64
	every := max(1, (big+small)/max(1, big))
	line := strings.Repeat("QmlnIG1lc3NhZ2VzIGdvIHRocm91Z2ggYSBmaWxlLg", 2)[:76] + "\r\n"
	for i := range big + small {
		name := filepath.Join(dir, "new", fmt.Sprintf("1790000000.M%dP2.big", i))
		f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		isBig := i%every == 0 && i/every < big
		fmt.Fprintf(w, "From: Customer %d <customer%d@example.com>\r\nTo: support@example.test\r\nSubject: message %d\r\n"+
			"Message-ID: <big-%d@example.com>\r\nDate: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n", i, i, i, i)
		if isBig {
			fmt.Fprintf(w, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe scan is attached.\r\n--b\r\n"+
				"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=scan.pdf\r\n\r\n")
			for written := 0; written < bigSize; written += len(line) {
				w.WriteString(line)
			}
			w.WriteString("--b--\r\n")
		} else {
			fmt.Fprintf(w, "Content-Type: text/plain\r\n\r\nThe printer on floor %d is out of toner.\r\n", i)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		st, _ := f.Stat()
		total += st.Size()
		f.Close()
		if err := os.Chown(name, uid, gid); err != nil {
			b.Fatal(err)
		}
	}
	return total
}
