package forwarder

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/mailheader"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// startSink runs an smtpsink for the test.
func startSink(t testing.TB, opt smtpsink.Options) *smtpsink.Sink {
	t.Helper()
	s, err := smtpsink.Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("start smtp sink: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newForwarder returns a forwarder to sink over plain text, changed by edit.
func newForwarder(t testing.TB, sink *smtpsink.Sink, edit func(*Config)) *Forwarder {
	t.Helper()
	cfg := Config{
		Address:           sink.Addr(),
		TLS:               tlsmode.None,
		InsecurePlaintext: true,
		From:              "triage@example.com",
		To:                []string{"support@helpdesk.example"},
		Hostname:          "mailtriage.test",
		Timeout:           5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	f, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func cleanVerdict() analyzer.Verdict {
	return analyzer.Verdict{
		MessageID:    "abc@customer.example",
		Subject:      "Printer on fire",
		From:         "alice@customer.example",
		Encryption:   analyzer.EncryptionNone,
		TransportTLS: analyzer.TransportTLSYes,
		Relay:        analyzer.RelayNone,
		ThreadKey:    "root@customer.example",
		Class:        analyzer.ClassClean,
		Action:       analyzer.ActionForward,
	}
}

const original = "Received: from mx.customer.example by mx.example.com with ESMTPS; Tue, 24 Nov 2026 10:00:00 +0000\r\n" +
	"From: Alice <alice@customer.example>\r\n" +
	"To: support@example.com\r\n" +
	"Subject: Printer on fire\r\n" +
	"Message-ID: <abc@customer.example>\r\n" +
	"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n" +
	"\r\n" +
	"Hello,\r\n" +
	".\r\n" +
	"..leading dots survive\r\n" +
	". \r\n" +
	"the printer is on fire.\r\n"

func forward(t *testing.T, f *Forwarder, v analyzer.Verdict, released bool, msg string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return forwardBody(ctx, f, v, released, bytesBody(msg))
}

// forwardBody sends body with the annotation for v through Deliver, as
// its only job, and returns that job's error.
func forwardBody(ctx context.Context, f *Forwarder, v analyzer.Verdict, released bool, body Body) error {
	jobs := make(chan Job, 1)
	jobs <- Job{Key: 1, Verdict: v, Released: released, Body: body}
	close(jobs)
	results := make(chan Result, 1)
	f.Deliver(ctx, jobs, results)
	return (<-results).Err
}

// readerBody is a Body of size octets whose every reader open makes anew.
type readerBody struct {
	size int64
	open func() io.Reader
}

func (b readerBody) Size() int64       { return b.size }
func (b readerBody) Reader() io.Reader { return b.open() }

// split cuts a received redirect-mode message into the fields the forwarder
// added and the rest.
func split(t *testing.T, data []byte) (added []string, rest []byte) {
	t.Helper()
	for len(data) > 0 {
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated line in %q", data)
		}
		line := string(data[:i])
		switch {
		case strings.HasPrefix(line, "X-Mailtriage-"), strings.HasPrefix(line, "Resent-"):
			added = append(added, line)
		case (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(added) > 0:
			added[len(added)-1] += "\r\n" + line
		default:
			return added, data
		}
		data = data[i+2:]
	}
	return added, nil
}

func TestRedirectKeepsOriginal(t *testing.T) {
	sink := startSink(t, smtpsink.Options{SMTPUTF8: true})
	f := newForwarder(t, sink, nil)
	tests := []struct {
		name string
		in   string
		want string // what must follow the added fields
	}{
		{"CRLF with dot lines", original, original},
		{"8-bit UTF-8 header and body", "Subject: Grüße\r\nFrom: jörg@example.de\r\n\r\nÄrger mit dem Drucker\r\n", "Subject: Grüße\r\nFrom: jörg@example.de\r\n\r\nÄrger mit dem Drucker\r\n"},
		{"bare LF normalized", "Subject: x\n\nline one\n.\nline two\n", "Subject: x\r\n\r\nline one\r\n.\r\nline two\r\n"},
		{"bare CR no line break", "Subject: x\r\n\r\nold\rmac\r\n", "Subject: x\r\n\r\nold?mac\r\n"},
		{"CR CR LF line ends", "Subject: x\r\r\n\r\nbody\r\r\n", "Subject: x\r\n\r\nbody\r\n"},
		{"no final line break", "Subject: x\r\n\r\nno newline at end", "Subject: x\r\n\r\nno newline at end\r\n"},
		{"long line kept", "Subject: x\r\n\r\n" + strings.Repeat("y", 990) + "\r\n", "Subject: x\r\n\r\n" + strings.Repeat("y", 990) + "\r\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := forward(t, f, cleanVerdict(), false, tt.in); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			msgs := sink.Messages()
			if len(msgs) != i+1 {
				t.Fatalf("sink has %d messages, want %d", len(msgs), i+1)
			}
			m := msgs[i]
			if m.From != "triage@example.com" || len(m.To) != 1 || m.To[0] != "support@helpdesk.example" {
				t.Errorf("envelope = %q -> %q", m.From, m.To)
			}
			// SMTPUTF8 only for a header that needs it (RFC 6531 §3.4).
			if wantUTF8 := strings.ContainsFunc(tt.in[:strings.Index(tt.in, "\n\n")+strings.Index(tt.in, "\r\n\r\n")+2], func(r rune) bool { return r > 127 }); !m.Body8Bit || m.UTF8 != wantUTF8 {
				t.Errorf("BODY=8BITMIME %v, SMTPUTF8 %v; want 8BITMIME, and SMTPUTF8 %v", m.Body8Bit, m.UTF8, wantUTF8)
			}
			if m.DeclSize < int64(len(tt.in)) || m.DeclSize > m.Size+100 {
				t.Errorf("SIZE=%d for %d octets received", m.DeclSize, m.Size)
			}
			added, rest := split(t, m.Data)
			if string(rest) != tt.want {
				t.Errorf("below the added fields:\n got %q\nwant %q", rest, tt.want)
			}
			if len(added) != 8 {
				t.Errorf("added fields = %q, want 8", added)
			}
		})
	}
}

func TestAnnotationHeaders(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	hostile := cleanVerdict()
	hostile.ThreadKey = "<root@x>\r\nBcc: victim@example.org\r\n"
	hostile.RelayService = "firefox-relay\nX-Evil: 1"
	hostile.Relay = analyzer.RelayPrivate
	hostile.ReplyToTokenized = true
	hostile.EncryptionScheme = strings.Repeat("scheme ", 40)
	hostile.Subject = "Hi\r\nBcc: victim@example.org"

	relay := cleanVerdict()
	relay.Relay, relay.RelayService, relay.ReplyToTokenized = analyzer.RelayPrivate, "firefox-relay", true

	tests := []struct {
		name     string
		v        analyzer.Verdict
		released bool
		want     map[string]string // field -> value (unfolded); "" means absent
	}{
		{"clean", cleanVerdict(), false, map[string]string{
			HeaderEncryption: "none", HeaderTransportTLS: "tls", HeaderRelay: "none",
			HeaderThread: "<root@customer.example>", HeaderReleased: "",
		}},
		{"private relay, released", relay, true, map[string]string{
			HeaderRelay: "private; service=firefox-relay; reply-to-tokenized=yes", HeaderReleased: "yes",
		}},
		{"CR/LF injection", hostile, false, map[string]string{
			HeaderThread: "<root@xBcc:victim@example.org>",
			HeaderRelay:  "private; service=firefox-relay X-Evil: 1; reply-to-tokenized=yes",
			"Bcc":        "", "X-Evil": "",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink.Reset()
			if err := forward(t, f, tt.v, tt.released, original); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			data := sink.Messages()[0].Data
			added, _ := split(t, data)
			for _, l := range strings.Split(strings.Join(added, "\r\n"), "\r\n") {
				if len(l) > mailheader.FoldAt && strings.Contains(strings.TrimSpace(l), " ") {
					t.Errorf("line of %d characters not folded: %q", len(l), l)
				}
			}
			h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
			if err != nil {
				t.Fatalf("read header: %v", err)
			}
			for k, want := range tt.want {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := h.Get("Resent-From"); got != "triage@example.com" {
				t.Errorf("Resent-From = %q", got)
			}
			if got := h.Get("Resent-To"); got != "support@helpdesk.example" {
				t.Errorf("Resent-To = %q", got)
			}
			if _, err := mail.ParseDate(h.Get("Resent-Date")); err != nil {
				t.Errorf("Resent-Date %q: %v", h.Get("Resent-Date"), err)
			}
			if id := h.Get("Resent-Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@mailtriage\.test>$`).MatchString(id) {
				t.Errorf("Resent-Message-ID = %q", id)
			}
		})
	}
}

func TestAttachMode(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, func(c *Config) { c.Mode = ModeAttach })
	v := cleanVerdict()
	v.Subject = "Grüße\r\nBcc: victim@example.org"
	v.Reasons = []string{"no encryption found", "Received: TLS on every hop"}
	if err := forward(t, f, v, true, original); err != nil {
		t.Fatalf("Forward: %v", err)
	}
	m, err := message.Read(bytes.NewReader(sink.Messages()[0].Data))
	if err != nil {
		t.Fatalf("parse forwarded message: %v", err)
	}
	if got := m.Header.Get("Bcc"); got != "" {
		t.Errorf("Bcc injected: %q", got)
	}
	subject, err := m.Header.Text("Subject")
	if err != nil || subject != "[mailtriage] Grüße Bcc: victim@example.org" {
		t.Errorf("Subject = %q (%v)", subject, err)
	}
	for k, want := range map[string]string{"From": "triage@example.com", "To": "support@helpdesk.example",
		HeaderEncryption: "none", HeaderReleased: "yes", HeaderThread: "<root@customer.example>"} {
		if got := m.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	mr := m.MultipartReader()
	if mr == nil {
		t.Fatal("not multipart")
	}
	var types []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		ct, _, _ := p.Header.ContentType()
		types = append(types, ct)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("read %s part: %v", ct, err)
		}
		switch ct {
		case "text/plain":
			for _, want := range []string{"Encryption:", "Relay:", "Released:", "no encryption found", "Grüße Bcc:"} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("summary lacks %q:\n%s", want, body)
				}
			}
		case "message/rfc822":
			if string(body) != original {
				t.Errorf("attached original:\n got %q\nwant %q", body, original)
			}
		}
	}
	if strings.Join(types, ",") != "text/plain,message/rfc822" {
		t.Errorf("parts = %v", types)
	}
}

// heloRejected is Postfix's reply text of reject_non_fqdn_helo_hostname.
const heloRejected = "<localhost>: Helo command rejected: need fully-qualified hostname"

// TestFaults: a refusal of the session (EHLO, our sender, 421, a protocol
// refusal at RCPT) is KindSession and temporary, so the poller pauses and
// leaves the message alone; only a refusal about the message is permanent.
func TestFaults(t *testing.T) {
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n", 4096)
	tests := []struct {
		name      string
		fault     smtpsink.Fault
		kind      Kind
		code      int
		temporary bool
		conns     int // connections after the failed and a successful forward
	}{
		{"421 at MAIL", smtpsink.Fault{Reject: smtpsink.StageMail, Code: 421, Times: 1}, KindSession, 421, true, 2},
		{"421 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 421, Times: 1}, KindSession, 421, true, 2},
		{"504 to EHLO", smtpsink.Fault{Reject: smtpsink.StageEHLO, Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: heloRejected, Times: 1}, KindSession, 504, true, 2},
		{"421 to EHLO", smtpsink.Fault{Reject: smtpsink.StageEHLO, Code: 421, Times: 1}, KindSession, 421, true, 2},
		{"504 Helo rejected at RCPT (delayed)", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: heloRejected, Times: 1}, KindSession, 504, true, 2},
		{"452 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 452, Times: 1}, KindTemporary, 452, true, 1},
		{"552 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 552, Enhanced: smtp.EnhancedCode{5, 2, 2}, Times: 1}, KindTemporary, 552, true, 1},
		{"550 at RCPT", smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550, Enhanced: smtp.EnhancedCode{5, 1, 1}, Times: 1}, KindRejected, 550, false, 1},
		{"550 at MAIL", smtpsink.Fault{Reject: smtpsink.StageMail, Code: 550, Times: 1}, KindSession, 550, true, 2},
		{"552 after DATA", smtpsink.Fault{Reject: smtpsink.StageData, Code: 552, Times: 1}, KindRejected, 552, false, 1},
		{"451 after DATA", smtpsink.Fault{Reject: smtpsink.StageData, Code: 451, Times: 1}, KindTemporary, 451, true, 1},
		{"550 5.4.5 quota after DATA", smtpsink.Fault{Reject: smtpsink.StageData, Code: 550, Enhanced: smtp.EnhancedCode{5, 4, 5}, Text: "Daily user sending quota exceeded.", Times: 1}, KindSession, 550, true, 2},
		{"dropped in DATA", smtpsink.Fault{DropAfter: 1000, Times: 1}, KindConnect, 0, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			f := newForwarder(t, sink, nil)
			sink.SetFault(tt.fault)
			err := forward(t, f, cleanVerdict(), false, big)
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Forward = %v, want *Error", err)
			}
			if fe.Kind != tt.kind || fe.Code != tt.code || fe.Temporary() != tt.temporary {
				t.Errorf("error %v: kind %s code %d temporary %v, want %s %d %v", fe, fe.Kind, fe.Code, fe.Temporary(), tt.kind, tt.code, tt.temporary)
			}
			if tt.code != 0 && !strings.Contains(fe.Message, cmp.Or(tt.fault.Text, "injected fault")) {
				t.Errorf("Message = %q, want the server's reply text", fe.Message)
			}
			if sink.Count() != 0 {
				t.Fatalf("sink accepted %d messages despite the fault", sink.Count())
			}
			if err := forward(t, f, cleanVerdict(), false, big); err != nil {
				t.Fatalf("Forward after the fault: %v", err)
			}
			if sink.Count() != 1 {
				t.Errorf("sink has %d messages, want 1", sink.Count())
			}
			if got := sink.Connections(); got != tt.conns {
				t.Errorf("connections = %d, want %d", got, tt.conns)
			}
		})
	}
}

func TestSizeLimit(t *testing.T) {
	sink := startSink(t, smtpsink.Options{MaxMessageBytes: 10000})
	f := newForwarder(t, sink, nil)
	msg := "Subject: big\r\n\r\n" + strings.Repeat("x", 20000) + "\r\n"
	err := forward(t, f, cleanVerdict(), false, msg)
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindSize || fe.Temporary() {
		t.Fatalf("Forward = %v, want a permanent size error", err)
	}
	if n := sink.DataCommands(); n != 0 {
		t.Errorf("DATA was sent %d times", n)
	}
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("small message after the size error: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
		ok    bool
	}{
		{"slow within the timeout", 40 * time.Millisecond, true},
		{"slower than the timeout", 500 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			sink.SetFault(smtpsink.Fault{Delay: tt.delay})
			f := newForwarder(t, sink, func(c *Config) { c.Timeout = 300 * time.Millisecond })
			start := time.Now()
			err := forward(t, f, cleanVerdict(), false, original)
			if tt.ok {
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || !fe.Temporary() {
				t.Fatalf("Forward = %v, want a temporary error", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("gave up after %v; the timeout is 300ms", d)
			}
		})
	}
}

func TestContextCancelled(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	sink.SetFault(smtpsink.Fault{Delay: 2 * time.Second})
	f := newForwarder(t, sink, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := forwardBody(ctx, f, cleanVerdict(), false, bytesBody(original))
	var fe *Error
	if !errors.As(err, &fe) || !fe.Temporary() {
		t.Fatalf("Forward = %v, want a temporary error", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("returned %v after cancellation", d)
	}
}

// failingReader yields n octets of short lines, then an error, like an IMAP
// literal cut off.
type failingReader struct{ n, off int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, errors.New("imap connection reset")
	}
	const line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"
	n := 0
	for n < len(p) && r.off < r.n {
		p[n] = line[r.off%len(line)]
		n++
		r.off++
	}
	return n, nil
}

func TestSourceFailureNeverCompletesData(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	err := forwardBody(context.Background(), f, cleanVerdict(), false,
		readerBody{size: 1 << 20, open: func() io.Reader { return &failingReader{n: 200 << 10} }})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindTemporary || !strings.Contains(err.Error(), "imap connection reset") {
		t.Fatalf("Forward = %v, want a temporary error naming the source failure", err)
	}
	if sink.Count() != 0 {
		t.Fatalf("the server accepted a truncated message")
	}
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward after the source failure: %v", err)
	}
}

func TestTLS(t *testing.T) {
	tests := []struct {
		name     string
		sinkTLS  tlsmode.Mode
		fwdTLS   tlsmode.Mode
		trust    bool
		wantKind Kind // "" = success
	}{
		{"STARTTLS with a private root", tlsmode.StartTLS, tlsmode.StartTLS, true, ""},
		{"implicit TLS with a private root", tlsmode.Implicit, tlsmode.Implicit, true, ""},
		{"STARTTLS required, not offered", tlsmode.None, tlsmode.StartTLS, false, KindTLS},
		{"STARTTLS, untrusted certificate", tlsmode.StartTLS, tlsmode.StartTLS, false, KindTLS},
		{"implicit TLS, untrusted certificate", tlsmode.Implicit, tlsmode.Implicit, false, KindTLS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{TLS: tt.sinkTLS})
			f := newForwarder(t, sink, func(c *Config) {
				c.TLS, c.InsecurePlaintext = tt.fwdTLS, false
				if tt.trust {
					c.RootCAs = sink.RootCAs()
				}
			})
			err := forward(t, f, cleanVerdict(), false, original)
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				if sink.Count() != 1 {
					t.Errorf("sink has %d messages", sink.Count())
				}
				// Our name, not "localhost", also before STARTTLS.
				hellos, want := sink.Hellos(), 1
				if tt.fwdTLS == tlsmode.StartTLS {
					want = 2
				}
				if len(hellos) != want || slices.ContainsFunc(hellos, func(h string) bool { return h != "mailtriage.test" }) {
					t.Errorf("EHLO names %q, want mailtriage.test in each of %d sessions", hellos, want)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Kind != tt.wantKind {
				t.Fatalf("Forward = %v, want kind %s", err, tt.wantKind)
			}
			if sink.Count() != 0 {
				t.Errorf("message sent despite the TLS failure")
			}
		})
	}
}

// TestAuthEchoWithheld: a server whose AUTH refusal quotes the client's
// response (base64 of "\x00user\x00password", of the XOAUTH2 string, ...)
// gets it into no error and no log line; the code stays.
func TestAuthEchoWithheld(t *testing.T) {
	const token = "tok-echoed-Wz93kq"
	refusal := smtpsink.Fault{Reject: smtpsink.StageAuth, Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 8}, Text: "authentication failed: %s"}
	challenge := smtpsink.Fault{Reject: smtpsink.StageAuth, Code: 334, Text: `{"status":"invalid_token %s","schemes":"bearer"}`}
	for _, tc := range []struct {
		name  string
		mech  credential.Mechanism
		fault smtpsink.Fault
	}{
		{"PLAIN refused", credential.Plain, refusal},
		{"XOAUTH2 refused", credential.XOAuth2, refusal},
		{"OAUTHBEARER refused", credential.OAuthBearer, refusal},
		{"OAUTHBEARER error challenge", credential.OAuthBearer, challenge},
	} {
		mech := tc.mech
		t.Run(tc.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{TLS: tlsmode.StartTLS, Username: "triage", Password: token})
			sink.SetFault(tc.fault)
			var logged strings.Builder
			cfg := Config{
				Address: sink.Addr(), TLS: tlsmode.StartTLS, RootCAs: sink.RootCAs(), From: "triage@example.com",
				To: []string{"support@helpdesk.example"}, Hostname: "mailtriage.test", Timeout: 5 * time.Second,
				Auth: &credential.Auth{Mechanism: mech, Username: "triage", Secret: credential.Static(secret.New(token))},
			}
			f, err := New(cfg, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = forward(t, f, cleanVerdict(), false, original)
			var fe *Error
			if !errors.As(err, &fe) || fe.Kind != KindAuth || !fe.Temporary() || tc.fault.Code == 535 && fe.Code != 535 {
				t.Fatalf("Forward = %v, want a temporary auth error (code 535 for a refusal)", err)
			}
			text := fmt.Sprintf("%v %+v %#v %v %s", err, fe, fe, errors.Unwrap(err), logged.String())
			if strings.Contains(text, "authentication failed: ") || strings.Contains(text, "invalid_token ") {
				t.Errorf("the server's text is in the error: %s", text)
			}
			for _, word := range strings.FieldsFunc(text, func(r rune) bool {
				return !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", r)
			}) {
				decoded, _ := base64.StdEncoding.DecodeString(word)
				if strings.Contains(word, token) || strings.Contains(string(decoded), token) {
					t.Errorf("the credential reached the error or log in %q: %s", word, text)
				}
			}
		})
	}
}

func TestAuth(t *testing.T) {
	const password = "correct horse battery staple"
	tests := []struct {
		name     string
		mech     credential.Mechanism
		password string
		wantKind Kind
	}{
		{"PLAIN", credential.Plain, password, ""},
		{"XOAUTH2", credential.XOAuth2, password, ""},
		{"OAUTHBEARER", credential.OAuthBearer, password, ""},
		{"wrong password", credential.Plain, "hunter2-wrong-password", KindAuth},
		{"wrong XOAUTH2 token", credential.XOAuth2, "hunter2-wrong-token", KindAuth},
		{"wrong OAUTHBEARER token", credential.OAuthBearer, "hunter2-wrong-token", KindAuth},
		{"mechanism not offered", credential.Login, password, KindAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{TLS: tlsmode.StartTLS, Username: "triage", Password: password})
			f := newForwarder(t, sink, func(c *Config) {
				c.TLS, c.InsecurePlaintext, c.RootCAs = tlsmode.StartTLS, false, sink.RootCAs()
				c.Auth = &credential.Auth{Mechanism: tt.mech, Username: "triage", Secret: credential.Static(secret.New(tt.password))}
			})
			err := forward(t, f, cleanVerdict(), false, original)
			if tt.wantKind == "" {
				if err != nil {
					t.Fatalf("Forward: %v", err)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Kind != tt.wantKind || !fe.Temporary() {
				t.Fatalf("Forward = %v, want a temporary %s error", err, tt.wantKind)
			}
			if text := fmt.Sprintf("%v %+v %#v", err, fe, fe); strings.Contains(text, tt.password) {
				t.Errorf("error text leaks the password: %s", text)
			}
		})
	}
}

func TestOneConnectionForMany(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	for i := range 50 {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i)
		if err := forward(t, f, cleanVerdict(), false, msg); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if sink.Count() != 50 || sink.Connections() != 1 {
		t.Errorf("%d messages over %d connections, want 50 over 1", sink.Count(), sink.Connections())
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward after Close: %v", err)
	}
	if sink.Connections() != 2 {
		t.Errorf("connections after Close and Forward = %d, want 2", sink.Connections())
	}
}

func TestReconnectAfterServerClosedIdleSession(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatal(err)
	}
	f.idle[0].c.NetConn().Close() // as if the server had timed the idle session out
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward on a dead session: %v", err)
	}
	if sink.Count() != 2 || sink.Connections() != 2 {
		t.Errorf("%d messages over %d connections, want 2 over 2", sink.Count(), sink.Connections())
	}
}

func TestReconnectAfter421OnReusedSession(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatal(err)
	}
	sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageMail, Code: 421, Times: 1})
	if err := forward(t, f, cleanVerdict(), false, original); err != nil {
		t.Fatalf("Forward after 421 on the reused session: %v", err)
	}
	if sink.Count() != 2 || sink.Connections() != 2 {
		t.Errorf("%d messages over %d connections, want 2 over 2", sink.Count(), sink.Connections())
	}
}

func TestCheck(t *testing.T) {
	sink := startSink(t, smtpsink.Options{})
	f := newForwarder(t, sink, nil)
	if hello, err := f.Check(context.Background()); err != nil || hello != "mailtriage.test" {
		t.Fatalf("Check = %q, %v; want the EHLO name mailtriage.test", hello, err)
	}
	sink.SetFault(smtpsink.Fault{Reject: smtpsink.StageRcpt, Code: 550})
	_, err := f.Check(context.Background())
	var fe *Error
	if !errors.As(err, &fe) || fe.Code != 550 {
		t.Fatalf("Check with RCPT refused = %v", err)
	}
	if sink.Count() != 0 {
		t.Errorf("Check sent a message")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{Address: "smtp.example.com:587", From: "a@example.com", To: []string{"b@example.com"}}
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no port", func(c *Config) { c.Address = "smtp.example.com" }, "host:port"},
		{"plain text without consent", func(c *Config) { c.TLS = tlsmode.None }, "insecure_plaintext"},
		{"unknown tls", func(c *Config) { c.TLS = "ssl" }, "want implicit"},
		{"unknown mode", func(c *Config) { c.Mode = "bounce" }, "want redirect"},
		{"from with CRLF", func(c *Config) { c.From = "a@example.com\r\nRCPT TO:<x@y>" }, "not a mail address"},
		{"no recipient", func(c *Config) { c.To = nil }, "no recipient"},
		{"bad recipient", func(c *Config) { c.To = []string{"nobody"} }, "not a mail address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.edit(&cfg)
			_, err := New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error with %q", err, tt.want)
			}
		})
	}
	if _, err := New(good, nil); err != nil {
		t.Errorf("New(good) = %v", err)
	}
}

// scriptedServer accepts one SMTP connection on loopback, greets, and
// answers the client's lines with replies, in order.
func scriptedServer(t *testing.T, replies ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		io.WriteString(c, "220 scripted.test ESMTP\r\n")
		for _, reply := range replies {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			io.WriteString(c, reply) // in one write, however many lines
		}
		r.ReadString('\n')
	}()
	return ln.Addr().String()
}

// TestSTARTTLSRefused: plain text that follows the STARTTLS reply must not
// be taken as the server's first words over TLS (CVE-2011-0411), and a
// server that knows only HELO offers no STARTTLS; both are TLS failures.
func TestSTARTTLSRefused(t *testing.T) {
	tests := []struct {
		name    string
		replies []string
		want    string
	}{
		{"plain text after the STARTTLS reply", []string{"250-scripted.test\r\n250 STARTTLS\r\n", "220 go ahead\r\n250 injected\r\n"},
			"plain text followed the STARTTLS reply"},
		{"EHLO unknown", []string{"502 5.5.2 Error: command not recognized\r\n"}, "refuses EHLO"},
		{"STARTTLS not offered", []string{"250-scripted.test\r\n250 8BITMIME\r\n"}, "does not offer STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := New(Config{
				Address: scriptedServer(t, tt.replies...), TLS: tlsmode.StartTLS, From: "triage@example.com",
				To: []string{"support@helpdesk.example"}, Hostname: "mailtriage.test", Timeout: 5 * time.Second,
			}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = forward(t, f, cleanVerdict(), false, original)
			var fe *Error
			if !errors.As(err, &fe) || fe.Kind != KindTLS || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Forward = %v, want a TLS error saying %q", err, tt.want)
			}
		})
	}
}

// TestRedirect: Redirect sends in redirect mode whatever Config.Mode says,
// our fields first and as given, then the Resent-* block, then the message
// with its own X-Mailtriage-* fields renamed and the rest unchanged.
func TestRedirect(t *testing.T) {
	const ours = "X-Mailtriage-Send-Test: yes\r\n"
	const msg = "From: customer@example.org\r\nX-Mailtriage-Send-Test: forged\r\nSubject: hi\r\n\r\nbody\r\n"
	for _, mode := range []string{ModeRedirect, ModeAttach} {
		t.Run(mode, func(t *testing.T) {
			sink := startSink(t, smtpsink.Options{})
			f := newForwarder(t, sink, func(c *Config) { c.Mode = mode })
			if err := f.Redirect(t.Context(), ours, []byte(msg)); err != nil {
				t.Fatalf("Redirect: %v", err)
			}
			got := sink.Messages()
			if len(got) != 1 {
				t.Fatalf("sink has %d messages, want 1", len(got))
			}
			if m := got[0]; m.From != "triage@example.com" || !slices.Equal(m.To, []string{"support@helpdesk.example"}) {
				t.Errorf("envelope %s -> %v", m.From, m.To)
			}
			added, rest := split(t, got[0].Data)
			if len(added) != 5 || added[0]+"\r\n" != ours || !strings.HasPrefix(added[1], "Resent-From: triage@example.com") {
				t.Errorf("fields above the message = %q, want ours, then the Resent-* block", added)
			}
			if want := strings.Replace(msg, "X-Mailtriage-Send-Test: forged", "X-Original-Mailtriage-Send-Test: forged", 1); string(rest) != want {
				t.Errorf("message = %q, want %q", rest, want)
			}
		})
	}
}
