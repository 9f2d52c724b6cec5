package smtpsink

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

func start(t *testing.T, opt Options) *Sink {
	t.Helper()
	s, err := Start(context.Background(), opt)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Sink) *smtp.Client {
	t.Helper()
	var (
		c   *smtp.Client
		err error
	)
	cfg := &tls.Config{RootCAs: s.RootCAs()}
	switch s.opt.TLS {
	case tlsmode.Implicit:
		c, err = smtp.DialTLS(s.Addr(), cfg)
	case tlsmode.StartTLS:
		c, err = smtp.DialStartTLS(s.Addr(), cfg)
	default:
		c, err = smtp.Dial(s.Addr())
	}
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const msg = "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"

func send(c *smtp.Client, body string) error {
	return c.SendMail("from@example.com", []string{"a@example.com", "b@example.com"}, strings.NewReader(body))
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestRecords(t *testing.T) {
	for _, mode := range []tlsmode.Mode{tlsmode.None, tlsmode.StartTLS, tlsmode.Implicit} {
		t.Run(string(mode), func(t *testing.T) {
			s := start(t, Options{TLS: mode})
			c := dial(t, s)
			for range 2 {
				if err := send(c, msg); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			if _, ok := c.TLSConnectionState(); ok != (mode != tlsmode.None) {
				t.Errorf("TLS = %v in mode %s", ok, mode)
			}
			ms := s.Messages()
			if s.Count() != 2 || len(ms) != 2 || s.Connections() != 1 {
				t.Fatalf("count %d, %d messages, %d connections", s.Count(), len(ms), s.Connections())
			}
			m := ms[1]
			if m.From != "from@example.com" || strings.Join(m.To, ",") != "a@example.com,b@example.com" {
				t.Errorf("envelope %q -> %q", m.From, m.To)
			}
			if string(m.Data) != msg || m.Size != int64(len(msg)) || m.SHA256 != sha256.Sum256([]byte(msg)) || !m.Body8Bit || m.Connection != 1 {
				t.Errorf("message = %+v", m)
			}
		})
	}
}

func TestDiscardBodies(t *testing.T) {
	s := start(t, Options{DiscardBodies: true})
	if err := send(dial(t, s), msg); err != nil {
		t.Fatal(err)
	}
	m := s.Messages()[0]
	if m.Data != nil || m.Size != int64(len(msg)) || m.SHA256 != sha256.Sum256([]byte(msg)) {
		t.Errorf("message = %+v", m)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		code  int // reply code of the first send; 0 = a connection error
	}{
		{"421 at MAIL", Fault{Reject: StageMail, Code: 421, Times: 1}, 421},
		{"452 at RCPT", Fault{Reject: StageRcpt, Code: 452, Times: 1}, 452},
		{"550 at RCPT", Fault{Reject: StageRcpt, Code: 550, Times: 1}, 550},
		{"552 at DATA", Fault{Reject: StageData, Code: 552, Times: 1}, 552},
		{"drop in DATA", Fault{DropAfter: 5, Times: 1}, 0},
		{"504 to EHLO", Fault{Reject: StageEHLO, Code: 504, Enhanced: smtp.EnhancedCode{5, 5, 2}, Text: "Helo command rejected: need fully-qualified hostname", Times: 1}, 504},
		{"554 5.7.1 to EHLO", Fault{Reject: StageEHLO, Code: 554, Enhanced: smtp.EnhancedCode{5, 7, 1}, Text: "Client host rejected: Access denied", Times: 1}, 554},
		{"552 5.2.2 at RCPT", Fault{Reject: StageRcpt, Code: 552, Enhanced: smtp.EnhancedCode{5, 2, 2}, Text: "mailbox full", Times: 1}, 552},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{})
			s.SetFault(tt.fault)
			err := send(dial(t, s), msg)
			if err == nil || code(err) != tt.code {
				t.Fatalf("send = %v, want code %d", err, tt.code)
			}
			var se *smtp.SMTPError
			if tt.fault.Text != "" && (!errors.As(err, &se) || se.Message != tt.fault.Text || se.EnhancedCode != tt.fault.Enhanced) {
				t.Errorf("reply %v, want %v %s", err, tt.fault.Enhanced, tt.fault.Text)
			}
			if s.Count() != 0 {
				t.Errorf("a faulted message was recorded")
			}
			// Times: 1 — the fault is gone for the next message.
			if err := send(dial(t, s), msg); err != nil {
				t.Fatalf("send after the fault: %v", err)
			}
			if s.Count() != 1 {
				t.Errorf("count = %d", s.Count())
			}
		})
	}
}

func TestDelay(t *testing.T) {
	s := start(t, Options{})
	s.SetFault(Fault{Delay: 50 * time.Millisecond})
	begin := time.Now()
	if err := send(dial(t, s), msg); err != nil {
		t.Fatal(err)
	}
	// EHLO, MAIL, two RCPT and DATA each wait.
	if d := time.Since(begin); d < 250*time.Millisecond {
		t.Errorf("took %v, want at least 250ms", d)
	}
}

func TestSizeLimit(t *testing.T) {
	s := start(t, Options{MaxMessageBytes: 100})
	c := dial(t, s)
	if n, ok := c.MaxMessageSize(); !ok || n != 100 {
		t.Errorf("SIZE = %d, %v", n, ok)
	}
	if err := send(c, "Subject: x\r\n\r\n"+strings.Repeat("y", 200)+"\r\n"); code(err) != 552 {
		t.Errorf("over-size send = %v, want 552", err)
	}
	if s.Count() != 0 {
		t.Errorf("over-size message recorded")
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name     string
		password string
		authCode int // 0 = accepted
	}{
		{"right password", "pw", 0},
		{"wrong password", "nope", 535},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{TLS: tlsmode.StartTLS, Username: "u", Password: "pw"})
			c := dial(t, s)
			if code(send(c, msg)) != 502 {
				t.Fatalf("MAIL before AUTH was not refused")
			}
			err := c.Auth(sasl.NewPlainClient("", "u", tt.password))
			if code(err) != tt.authCode {
				t.Fatalf("Auth = %v, want code %d", err, tt.authCode)
			}
			if tt.authCode == 0 {
				if err := send(c, msg); err != nil {
					t.Fatalf("send after AUTH: %v", err)
				}
			}
		})
	}
}

// TestAuthEcho: the AUTH fault answers a correct response with its reply,
// quoting the response in base64 where the text says %s.
func TestAuthEcho(t *testing.T) {
	s := start(t, Options{TLS: tlsmode.StartTLS, Username: "u", Password: "pw"})
	s.SetFault(Fault{Reject: StageAuth, Code: 535, Enhanced: smtp.EnhancedCode{5, 7, 8}, Text: "bad credentials %s", Times: 1})
	err := dial(t, s).Auth(sasl.NewPlainClient("", "u", "pw"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 || se.Message != "bad credentials AHUAcHc=" {
		t.Fatalf("Auth = %v, want 535 quoting base64(\\x00u\\x00pw)", err)
	}
	if err := dial(t, s).Auth(sasl.NewPlainClient("", "u", "pw")); err != nil {
		t.Fatalf("Auth after the fault: %v", err)
	}
}

func TestContextEndsSink(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !greets(s.Addr()) {
		t.Fatal("sink does not greet")
	}
	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if !greets(s.Addr()) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("sink still greets after its context ended")
}

// greets reports whether an SMTP greeting comes from addr. (A bare TCP dial
// is no test: on loopback a dial to a closed port can connect to itself.)
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.HasPrefix(line, "220 ")
}

// TestCloseTwiceAtOnce: Close from the test's cleanup racing the end of the
// context (go-smtp's Server.Close panics when called twice at once).
func TestCloseTwiceAtOnce(t *testing.T) {
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := Start(ctx, Options{})
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 2)
		go func() { errs <- s.Close() }()
		cancel()
		go func() { errs <- s.Close() }()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if greets(s.Addr()) {
			t.Fatal("sink still greets after Close")
		}
	}
}

// TestSendAsDenied: with SendAsDenied, a header From other than the
// authenticated user is refused at the end of DATA with Exchange Online's
// 554 5.2.252, and nothing is recorded; the user's own From passes.
func TestSendAsDenied(t *testing.T) {
	tests := []struct {
		name   string
		header string
		code   int // 0 = accepted
	}{
		{"own address", "From: U@example.com\r\n", 0},
		{"own address with a display name", "From: Support <u@example.com>\r\n", 0},
		{"foreign address", "From: customer@example.org\r\n", 554},
		{"no From field", "", 554},
		{"unparseable From", "From: <<\r\n", 554},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{Username: "u@example.com", Password: "pw", SendAsDenied: true})
			c := dial(t, s)
			if err := c.Auth(sasl.NewPlainClient("", "u@example.com", "pw")); err != nil {
				t.Fatalf("Auth: %v", err)
			}
			err := send(c, tt.header+msg)
			if code(err) != tt.code {
				t.Fatalf("send = %v, want code %d", err, tt.code)
			}
			var se *smtp.SMTPError
			if tt.code != 0 && (!errors.As(err, &se) || se.EnhancedCode != (smtp.EnhancedCode{5, 2, 252}) || !strings.Contains(se.Message, "SendAsDenied")) {
				t.Errorf("refusal = %v, want 5.2.252 SendAsDenied", err)
			}
			want := 0
			if tt.code == 0 {
				want = 1
			}
			if s.Count() != want {
				t.Errorf("recorded %d messages, want %d", s.Count(), want)
			}
		})
	}
}
