package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-msgauth/dkim"
	miekgdns "github.com/miekg/dns"

	"github.com/mailtriage/mailtriage/internal/memimap"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
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
// From and Message-ID as the customer sent them and the customer's DKIM
// signature still valid (checked with go-msgauth against the key in the
// test's DNS); the second run sends nothing.
func TestRunOnceRouteMX(t *testing.T) {
	dir := t.TempDir()
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(mxMessage), &dkim.SignOptions{Domain: "shop.test", Selector: "s1", Signer: key}); err != nil {
		t.Fatalf("dkim sign: %v", err)
	}
	original := signed.Bytes()
	cert, err := selfsigned.Loopback("mx test", "mx1.helpdesk.test", "mx2.helpdesk.test")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "mx-ca.pem")
	if err := os.WriteFile(caFile, cert.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	sink, err := smtpsink.Start(t.Context(), smtpsink.Options{TLS: tlsmode.StartTLS, Cert: cert})
	if err != nil {
		t.Fatalf("start sink: %v", err)
	}
	t.Cleanup(func() { sink.Close() })
	_, port, _ := net.SplitHostPort(sink.Addr())
	dns := testenv.StartDNS(t, append(mxRecords,
		fmt.Sprintf(`s1._domainkey.shop.test. 60 IN TXT "v=DKIM1; k=ed25519; p=%s"`, base64.StdEncoding.EncodeToString(pub)))...)
	cfgPath, user := mxMailbox(t, dir, dns.Addr, port, caFile, original)

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
	if !bytes.HasSuffix(got.Data, original) {
		t.Errorf("the helpdesk got\n%s\nwant the original byte for byte under our fields", got.Data)
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(got.Data), &dkim.VerifyOptions{LookupTXT: txtAt(dns.Addr)})
	if err != nil || len(verifications) != 1 || verifications[0].Err != nil || verifications[0].Domain != "shop.test" {
		t.Errorf("the customer's DKIM signature at the helpdesk: %+v, %v; want one valid signature of shop.test", verifications, err)
	}
	for _, field := range []string{"Resent-From: triage@shop.test\r\n", "From: Customer <customer@shop.test>\r\n", "Message-ID: <order-42@shop.test>\r\n"} {
		if !bytes.Contains(got.Data, []byte(field)) {
			t.Errorf("the helpdesk's copy lacks %q", field)
		}
	}
	if st, err := user.Status("INBOX", &imap.StatusOptions{NumMessages: true, NumUnseen: true}); err != nil || *st.NumMessages != 1 || *st.NumUnseen != 0 {
		t.Errorf("INBOX after the cycles: %+v, %v; want the message kept and marked \\Seen", st, err)
	}

	// check --send-test on route mx: the labelled message with a foreign
	// From goes to the MX host that takes it.
	var sendTest bytes.Buffer
	if code := dispatch([]string{"check", "--config", cfgPath, "--send-test"}, &sendTest, &sendTest); code != exitOK ||
		!strings.Contains(sendTest.String(), "send test via the MX of helpdesk.test") || !strings.Contains(sendTest.String(), "accepted") {
		t.Fatalf("check --send-test: exit %d\n%s", code, sendTest.String())
	}
	if n := sink.Count(); n != 2 {
		t.Fatalf("after check --send-test the helpdesk has %d messages, want 2", n)
	}
	test := sink.Messages()[1]
	for _, field := range []string{"X-Mailtriage-Send-Test: yes\r\n", "<" + sendTestFrom + ">\r\n"} {
		if !bytes.Contains(test.Data, []byte(field)) {
			t.Errorf("the send test's message lacks %q:\n%.600s", field, test.Data)
		}
	}
}

// TestRunOnceRouteMXNullMX: a helpdesk domain with a null MX (RFC 7505)
// takes no mail; the message goes to the review folder with
// $ForwardFailed instead of waiting forever, and run --once succeeds.
func TestRunOnceRouteMXNullMX(t *testing.T) {
	dir := t.TempDir()
	dns := testenv.StartDNS(t, "helpdesk.test. 60 IN MX 0 .")
	cfgPath, user := mxMailbox(t, dir, dns.Addr, "25", "", []byte(mxMessage))
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

// txtAt looks TXT records up at the DNS server addr, as a helpdesk's
// verifier would at its resolver.
func txtAt(addr string) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		q := new(miekgdns.Msg)
		q.SetQuestion(miekgdns.Fqdn(name), miekgdns.TypeTXT)
		in, err := miekgdns.Exchange(q, addr)
		if err != nil {
			return nil, err
		}
		var txts []string
		for _, rr := range in.Answer {
			if t, ok := rr.(*miekgdns.TXT); ok {
				txts = append(txts, strings.Join(t.Txt, ""))
			}
		}
		return txts, nil
	}
}

// mxMailbox starts an IMAP server with msg in INBOX and writes a config
// forwarding it on route mx through the DNS server at resolver.
func mxMailbox(t *testing.T, dir, resolver, port, caFile string, msg []byte) (string, *imapmemserver.User) {
	t.Helper()
	srv := testenv.StartMemIMAP(t, memimap.Options{})
	user, err := srv.AddUser("support@shop.test", "imap-password")
	if err != nil {
		t.Fatal(err)
	}
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
