package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/mailtriage/mailtriage/internal/memimap"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

const mxMessage = "From: Customer <customer@shop.test>\r\nTo: support@helpdesk.test\r\nSubject: Where is order 42?\r\n" +
	"Date: Wed, 02 Dec 2026 09:00:00 +0000\r\nMessage-ID: <order-42@shop.test>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nIt was due on Monday.\r\n"

// mxRecords are the helpdesk's DNS: two MX hosts, the preferred one at an
// address where nothing listens.
var mxRecords = []string{
	"helpdesk.test. 60 IN MX 10 mx1.helpdesk.test.",
	"helpdesk.test. 60 IN MX 20 mx2.helpdesk.test.",
	"mx1.helpdesk.test. 60 IN A 127.0.0.2",
	"mx2.helpdesk.test. 60 IN A 127.0.0.1",
}

// TestRunOnceRouteMX: check, then run --once twice through the poller with
// forward.route: mx. The preferred MX refuses connections, the second
// takes the mail over STARTTLS with a certificate for its name (trusted
// through mx.ca_file). The helpdesk gets the original under our fields,
// From and Message-ID as the customer sent them; the second run sends
// nothing.
func TestRunOnceRouteMX(t *testing.T) {
	dir := t.TempDir()
	cert, err := selfsigned.Loopback("mx test", "mx1.helpdesk.test", "mx2.helpdesk.test")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "mx-ca.pem")
	if err := os.WriteFile(caFile, cert.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	sink, err := smtpsink.Start(t.Context(), smtpsink.Options{TLS: smtpsink.TLSStartTLS, Cert: cert})
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	_, port, _ := net.SplitHostPort(sink.Addr())
	dns := testenv.StartDNS(t, mxRecords...)
	cfgPath, user := mxMailbox(t, dir, dns.Addr, port, caFile)

	var check bytes.Buffer
	if code := dispatch([]string{"check", "--config", cfgPath}, &check, &check); code != exitOK || !strings.Contains(check.String(), "mx helpdesk.test") {
		t.Fatalf("check: exit %d\n%s", code, check.String())
	}
	for run := 1; run <= 2; run++ {
		var stdout, stderr bytes.Buffer
		if code := dispatch([]string{"run", "--config", cfgPath, "--once"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("run %d: exit %d\n%s%s", run, code, stdout.String(), stderr.String())
		}
		if n := sink.Count(); n != 1 {
			t.Fatalf("after run %d the helpdesk has %d messages, want 1\n%s", run, n, stderr.String())
		}
	}
	got := sink.Messages()[0]
	if got.From != "triage@shop.test" || strings.Join(got.To, ",") != "support@helpdesk.test" {
		t.Errorf("envelope %s -> %v, want triage@shop.test -> support@helpdesk.test", got.From, got.To)
	}
	if !bytes.HasSuffix(got.Data, []byte(mxMessage)) {
		t.Errorf("the helpdesk got\n%s\nwant the original byte for byte under our fields", got.Data)
	}
	for _, field := range []string{"Resent-From: triage@shop.test\r\n", "From: Customer <customer@shop.test>\r\n", "Message-ID: <order-42@shop.test>\r\n"} {
		if !bytes.Contains(got.Data, []byte(field)) {
			t.Errorf("the helpdesk's copy lacks %q", field)
		}
	}
	if st, err := user.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}); err != nil || *st.NumMessages != 1 || *st.NumUnseen != 0 {
		t.Errorf("INBOX after the cycles: %+v, %v; want the message kept and marked \\Seen", st, err)
	}
}

// TestRunOnceRouteMXNullMX: a helpdesk domain with a null MX (RFC 7505)
// takes no mail; the message goes to the review folder with
// $ForwardFailed instead of waiting forever, and run --once succeeds.
func TestRunOnceRouteMXNullMX(t *testing.T) {
	dir := t.TempDir()
	dns := testenv.StartDNS(t, "helpdesk.test. 60 IN MX 0 .")
	cfgPath, user := mxMailbox(t, dir, dns.Addr, "25", "")
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"run", "--config", cfgPath, "--once"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if st, err := user.Status("INBOX", &imap.StatusOptions{NumMessages: true}); err != nil || *st.NumMessages != 0 {
		t.Errorf("INBOX after the cycle: %+v, %v; want the message moved out", st, err)
	}
	if st, err := user.Status("Triage/Review", &imap.StatusOptions{NumMessages: true}); err != nil || *st.NumMessages != 1 {
		t.Fatalf("Triage/Review after the cycle: %+v, %v; want the message\n%s", st, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "null MX") {
		t.Errorf("the log does not say why:\n%s", stderr.String())
	}
}

// mxMailbox starts an IMAP server with mxMessage in INBOX and writes a
// config forwarding it on route mx through the DNS server at resolver.
func mxMailbox(t *testing.T, dir, resolver, port, caFile string) (string, *imapmemserver.User) {
	t.Helper()
	srv := testenv.StartMemIMAP(t, memimap.Options{})
	user, err := srv.AddUser("support@shop.test", "imap-password")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(mxMessage)
	if _, err := user.Append("INBOX", literal{bytes.NewReader(msg), int64(len(msg))}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "imap-password"), []byte("imap-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "mailtriage.yaml")
	cfg := fmt.Sprintf(`state:
  url: file:%[1]s/state.db
mailboxes:
  - name: support
    imap:
      address: %[2]s
      tls: none
      insecure_plaintext: true
      username: support@shop.test
      password_file: %[1]s/imap-password
    forward:
      to: [support@helpdesk.test]
      from: triage@shop.test
      route: mx
      mx:
        resolver: %[3]s
        port: %[4]s
        ca_file: "%[5]s"
`, dir, srv.Addr, resolver, port, caFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, user
}
