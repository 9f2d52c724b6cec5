package bench

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

var benchRouteN = flag.Int("bench.route-n", 1000, "messages per route for BenchmarkRoutes")

const (
	// intakeAccount is the helpdesk's account of route imap, in the same
	// Dovecot as the watched mailbox.
	intakeAccount = "intake@example.test"
	// mxHost is the MX host of helpdeskAddr's domain in the benchmark's DNS.
	mxHost = "mx.example.zendesk.test"
)

// BenchmarkRoutes forwards the benchmark mix end to end on each forward
// route (smtp into the SMTP sink, imap into a second Dovecot account, mx
// through a loopback DNS server to a STARTTLS sink), checks that every clean
// message arrived once with the original bytes below our fields and every
// flagged one is in the review folder, that a second cycle sends nothing,
// and reports msg/s per route.
func BenchmarkRoutes(b *testing.B) {
	bin := buildBinary(b)
	ts := loadTemplates(b)
	n := *benchRouteN
	if n <= 0 {
		b.Fatalf("-bench.route-n: %d is not a positive number", n)
	}
	for _, route := range []string{"smtp", "imap", "mx"} {
		b.Run("route="+route, func(b *testing.B) {
			for range b.N {
				benchRoute(b, bin, ts, route, n)
			}
		})
	}
}

// helpdesk is the receiving end of one route.
type helpdesk struct {
	forward  string          // the mailbox's forward block
	received func() [][]byte // what the helpdesk holds
}

func benchRoute(b *testing.B, bin string, ts templates, route string, n int) {
	b.StopTimer()
	dir := b.TempDir()
	sinkOpt := smtpsink.Options{TLS: tlsmode.None}
	var caFile string
	if route == "mx" {
		cert, err := selfsigned.Loopback("bench mx", mxHost)
		if err != nil {
			b.Fatal(err)
		}
		caFile = filepath.Join(dir, "mx-ca.pem")
		if err := os.WriteFile(caFile, cert.PEM, 0o644); err != nil {
			b.Fatal(err)
		}
		sinkOpt = smtpsink.Options{TLS: tlsmode.StartTLS, Cert: cert}
	}
	d, sink, st := seedMailboxWith(b, ts, n, sinkOpt)
	secret := writeSecret(b, dir, d.Password)
	hd := routeHelpdesk(b, route, d, sink, secret, caFile)
	cfg := writeConfig(b, dir, "file:"+filepath.Join(dir, "state.db"), d, sink.Addr(),
		[]mailboxConfig{{name: "support", user: d.User, passwordFile: secret, forward: hd.forward}})

	b.StartTimer()
	first := runMailtriage(b, bin, "run", "--once", "--config", cfg)
	b.StopTimer()
	if cs := cycles(first.log); len(cs) != 1 || cs[0].Forwarded != st.forward || cs[0].Flagged != st.flag {
		b.Fatalf("route %s, first cycle: %+v, want one cycle forwarding %d and flagging %d\n%s", route, cs, st.forward, st.flag, tail(first.log))
	}
	checkDelivered(b, d, ts, n, hd.received())

	second := runMailtriage(b, bin, "run", "--once", "--config", cfg)
	if cs := cycles(second.log); len(cs) != 1 || cs[0].Forwarded+cs[0].Flagged != 0 {
		b.Errorf("route %s, second cycle: %+v, want one cycle that does nothing", route, cs)
	}
	if got := len(hd.received()); got != st.forward {
		b.Errorf("route %s: the helpdesk holds %d messages after the second cycle, want %d", route, got, st.forward)
	}
	if route == "imap" && sink.Count() != 0 {
		b.Errorf("route imap: the SMTP sink got %d messages", sink.Count())
	}

	rate := float64(n) / first.wall.Seconds()
	b.ReportMetric(rate, "msgs/s")
	fmt.Printf("route %s n=%d: %.2fs = %.0f msgs/s (CPU %.2fs, peak RSS %.1f MiB); forwarded %d, flagged %d; second cycle sent nothing\n",
		route, n, first.wall.Seconds(), rate, first.cpu.Seconds(), float64(first.peakRSS)/(1<<20), st.forward, st.flag)
}

// routeHelpdesk returns the forward block of route and what the helpdesk
// behind it holds: sink for routes smtp and mx (caFile holds the root of
// the sink's certificate for the MX name), a second Dovecot account for
// route imap.
func routeHelpdesk(b *testing.B, route string, d *testenv.Dovecot, sink *smtpsink.Sink, secret, caFile string) helpdesk {
	b.Helper()
	switch route {
	case "smtp":
		return helpdesk{received: sinkData(sink)} // writeConfig's default block
	case "imap":
		d.AddUser(intakeAccount, d.Password)
		return helpdesk{
			forward: fmt.Sprintf("    forward:\n      route: imap\n      imap:\n        address: %s\n        ca_file: %s\n        username: %s\n        password_file: %s\n",
				d.Addr, d.CAFile, intakeAccount, secret),
			received: func() [][]byte {
				c := dialIMAP(b, d, intakeAccount)
				defer c.Close()
				return bodies(b, c, "INBOX", &imap.FetchItemBodySection{Peek: true})
			},
		}
	case "mx":
		_, port, _ := net.SplitHostPort(sink.Addr())
		domain := helpdeskAddr[strings.IndexByte(helpdeskAddr, '@')+1:]
		dns := testenv.StartDNS(b, domain+". 60 IN MX 10 "+mxHost+".", mxHost+". 60 IN A 127.0.0.1")
		return helpdesk{
			forward: fmt.Sprintf("    forward:\n      to: [%s]\n      from: %s\n      route: mx\n      mx:\n        resolver: %s\n        port: %s\n        ca_file: %s\n",
				helpdeskAddr, triageAddr, dns.Addr, port, caFile),
			received: sinkData(sink),
		}
	}
	b.Fatalf("unknown route %q", route)
	return helpdesk{}
}

func sinkData(sink *smtpsink.Sink) func() [][]byte {
	return func() [][]byte {
		var out [][]byte
		for _, m := range sink.Messages() {
			out = append(out, m.Data)
		}
		return out
	}
}

// bodies fetches the given section of every message in folder.
func bodies(b *testing.B, c *imapclient.Client, folder string, section *imap.FetchItemBodySection) [][]byte {
	b.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		b.Fatalf("examine %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}},
		&imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		b.Fatalf("fetch %s: %v", folder, err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.FindBodySection(section)
	}
	return out
}

// messageID is the first Message-ID field of raw ("" when it has none).
func messageID(raw []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return ""
	}
	return m.Header.Get("Message-Id")
}

// checkDelivered checks the receiving end against the mix of n messages:
// every clean message arrived once, ending in the bytes the watched INBOX
// serves (so From, Message-ID and any DKIM signature are as the customer
// sent them) below added header fields, and every flagged message is in
// the review folder.
func checkDelivered(b *testing.B, d *testenv.Dovecot, ts templates, n int, received [][]byte) {
	b.Helper()
	wantFlag := map[string]bool{} // Message-ID -> flagged by the default policy
	m := newMix(benchSeed, ts)
	for i := range n {
		raw, flag := m.message("inbox", i)
		wantFlag[messageID(raw)] = flag
	}
	c := dialIMAP(b, d, d.User)
	defer c.Close()
	originals := map[string][]byte{}
	for _, raw := range bodies(b, c, "INBOX", &imap.FetchItemBodySection{Peek: true}) {
		originals[messageID(raw)] = raw
	}
	for id, flag := range wantFlag {
		if _, ok := originals[id]; ok == flag {
			b.Errorf("%s: in INBOX %v, want %v", id, ok, !flag)
		}
	}
	reviewed := 0
	for _, raw := range bodies(b, c, "Triage/Review", &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}) {
		if id := messageID(raw); !wantFlag[id] {
			b.Errorf("%q is in the review folder, want it forwarded", id)
		}
		reviewed++
	}
	arrived := map[string]int{}
	for _, data := range received {
		id := messageID(data)
		orig, ok := originals[id]
		switch {
		case !ok:
			b.Errorf("the helpdesk got %q, which is no clean message of the mix:\n%.400s", id, data)
		case len(data) <= len(orig) || !bytes.HasSuffix(data, orig) || bytes.Contains(data[:len(data)-len(orig)], []byte("\r\n\r\n")):
			b.Errorf("%s: the helpdesk's copy is not the original below added fields:\n%.600s", id, data)
		}
		arrived[id]++
	}
	for id, flag := range wantFlag {
		if !flag && arrived[id] != 1 {
			b.Errorf("%s arrived %d times, want once", id, arrived[id])
		}
	}
	if want := countTrue(wantFlag); reviewed != want {
		b.Errorf("the review folder holds %d messages, want %d", reviewed, want)
	}
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
