package smtpsink

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// wire is a client that writes protocol lines by hand: unlike go-smtp's
// client it can pipeline, send BDAT and misbehave.
type wire struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// open connects to s without reading the greeting.
func open(t *testing.T, s *Sink) *wire {
	t.Helper()
	var (
		c   net.Conn
		err error
	)
	if s.opt.TLS == tlsmode.Implicit {
		c, err = tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.RootCAs()})
	} else {
		c, err = net.Dial("tcp", s.Addr())
	}
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &wire{t: t, c: c, r: bufio.NewReader(c)}
}

// connect connects to s and reads the greeting.
func connect(t *testing.T, s *Sink) *wire {
	t.Helper()
	w := open(t, s)
	w.expect(220)
	return w
}

// send writes text in one write: what it holds arrives together.
func (w *wire) send(text ...string) {
	w.t.Helper()
	if _, err := w.c.Write([]byte(strings.Join(text, ""))); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// reply reads one reply, all its lines.
func (w *wire) reply() (int, []string, error) {
	var lines []string
	for {
		l, err := w.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			code, err := strconv.Atoi(l[:min(3, len(l))])
			return code, lines, err
		}
	}
}

// expect reads one reply for each code and returns the last one's lines.
func (w *wire) expect(codes ...int) []string {
	w.t.Helper()
	var lines []string
	for _, want := range codes {
		code, l, err := w.reply()
		if err != nil || code != want {
			w.t.Fatalf("reply %q, %v; want %d", l, err, want)
		}
		lines = l
	}
	return lines
}

// do sends a command and expects its reply.
func (w *wire) do(cmd string, code int) []string {
	w.t.Helper()
	w.send(cmd + "\r\n")
	return w.expect(code)
}

// closed expects the server to have closed the connection without a reply.
func (w *wire) closed() {
	w.t.Helper()
	code, l, err := w.reply()
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		w.t.Fatalf("reply %d %q, %v; want the connection closed", code, l, err)
	}
}

const (
	content = "Subject: hi\r\n\r\nbody\r\n.\r\n" // DATA's content with its end
	mailTo  = "MAIL FROM:<from@example.com>\r\nRCPT TO:<to@example.com>\r\n"
)

// TestEHLOCapabilities: HidePipelining and HideChunking take their keyword
// out of the EHLO reply, which stays well formed, on the second EHLO too.
func TestEHLOCapabilities(t *testing.T) {
	tests := []struct {
		name                 string
		opt                  Options
		pipelining, chunking bool
	}{
		{"default", Options{}, true, true},
		{"HidePipelining", Options{HidePipelining: true}, false, true},
		{"HideChunking", Options{HideChunking: true}, true, false},
		{"both", Options{HidePipelining: true, HideChunking: true}, false, false},
		{"both, implicit TLS", Options{TLS: tlsmode.Implicit, HidePipelining: true, HideChunking: true}, false, false},
		{"default, implicit TLS", Options{TLS: tlsmode.Implicit}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.opt)
			w := connect(t, s)
			for range 2 {
				lines := w.do("EHLO client.example", 250)
				for i, l := range lines {
					if sep := l[3]; (i < len(lines)-1) != (sep == '-') {
						t.Errorf("line %d of %d is %q", i+1, len(lines), l)
					}
				}
				has := func(kw string) bool {
					return slices.ContainsFunc(lines, func(l string) bool { return strings.EqualFold(l[4:], kw) })
				}
				if has("PIPELINING") != tt.pipelining || has("CHUNKING") != tt.chunking || !has("8BITMIME") || !has("ENHANCEDSTATUSCODES") {
					t.Errorf("EHLO reply %q", lines)
				}
			}
			w.do("QUIT", 221)
		})
	}
}

func TestHideNeedsNoSTARTTLS(t *testing.T) {
	for _, opt := range []Options{{TLS: tlsmode.StartTLS, HidePipelining: true}, {TLS: tlsmode.StartTLS, HideChunking: true}} {
		if s, err := Start(t.Context(), opt); err == nil {
			s.Close()
			t.Errorf("Start(%+v) did not refuse", opt)
		}
	}
}

// TestPipelining: a client that pipelines is seen (MaxPipelined) and,
// with HidePipelining, reported; a command that must end a group reported
// always; a client that waits for every reply never.
func TestPipelining(t *testing.T) {
	tests := []struct {
		name   string
		tls    tlsmode.Mode
		script func(w *wire)
		max    int      // Stats.MaxPipelined
		always []string // violations with PIPELINING advertised
		hidden []string // violations with HidePipelining
	}{
		{
			name: "waits for every reply",
			script: func(w *wire) {
				w.do("MAIL FROM:<from@example.com>", 250)
				w.do("RCPT TO:<to@example.com>", 250)
				w.do("DATA", 354)
				w.send(content)
				w.expect(250)
				w.do("RSET", 250)
				w.do("NOOP", 250)
			},
			max: 1,
		},
		{
			name: "pipelines a transaction",
			script: func(w *wire) {
				w.send(mailTo, "RCPT TO:<cc@example.com>\r\n", "DATA\r\n")
				w.expect(250, 250, 250, 354)
				w.send(content)
				w.expect(250)
			},
			max: 4,
			hidden: []string{
				"connection 1: RCPT sent before the reply to MAIL",
				"connection 1: RCPT sent before the reply to RCPT",
				"connection 1: DATA sent before the reply to RCPT",
			},
		},
		{
			name: "pipelines a transaction, implicit TLS",
			tls:  tlsmode.Implicit,
			script: func(w *wire) {
				w.send(mailTo, "DATA\r\n")
				w.expect(250, 250, 354)
				w.send(content)
				w.expect(250)
			},
			max: 3,
			hidden: []string{
				"connection 1: RCPT sent before the reply to MAIL",
				"connection 1: DATA sent before the reply to RCPT",
			},
		},
		{
			name: "pipelines across transactions",
			script: func(w *wire) {
				w.send(mailTo, "DATA\r\n")
				w.expect(250, 250, 354)
				w.send(content, "RSET\r\n", mailTo, "DATA\r\n")
				w.expect(250, 250, 250, 250, 354)
				w.send(content, "QUIT\r\n")
				w.expect(250, 221)
			},
			max: 5,
			hidden: []string{
				"connection 1: RCPT sent before the reply to MAIL",
				"connection 1: DATA sent before the reply to RCPT",
				"connection 1: RSET sent before the reply to the end of data",
				"connection 1: MAIL sent before the reply to RSET",
				"connection 1: RCPT sent before the reply to MAIL",
				"connection 1: DATA sent before the reply to RCPT",
				"connection 1: QUIT sent before the reply to the end of data",
			},
		},
		{
			name: "pipelines BDAT",
			script: func(w *wire) {
				w.send(mailTo, "BDAT 4\r\nSubj", "BDAT 15 LAST\r\nect: hi\r\n\r\nhi\r\n")
				w.expect(250, 250, 250, 250)
			},
			max: 4,
			hidden: []string{
				"connection 1: RCPT sent before the reply to MAIL",
				"connection 1: BDAT sent before the reply to RCPT",
				"connection 1: BDAT sent before the reply to BDAT",
			},
		},
		{
			name: "content before the 354",
			script: func(w *wire) {
				w.do("MAIL FROM:<from@example.com>", 250)
				w.do("RCPT TO:<to@example.com>", 250)
				w.send("DATA\r\n", content)
				w.expect(354, 250)
			},
			max:    1,
			always: []string{"connection 1: message content sent before the reply to DATA"},
			hidden: []string{"connection 1: message content sent before the reply to DATA"},
		},
		{
			name: "MAIL before the reply to EHLO",
			script: func(w *wire) {
				w.send("EHLO again.example\r\n", "MAIL FROM:<from@example.com>\r\n")
				w.expect(250, 250)
			},
			max:    2,
			always: []string{"connection 1: MAIL sent before the reply to EHLO"},
			hidden: []string{"connection 1: MAIL sent before the reply to EHLO"},
		},
		{
			name: "AUTH response lines are no commands",
			script: func(w *wire) {
				w.do("AUTH PLAIN", 334)
				w.do("AHUAcHc=", 235) // \0u\0pw
				w.do("MAIL FROM:<from@example.com>", 250)
			},
			max: 1,
		},
	}
	for _, tt := range tests {
		for _, hide := range []bool{false, true} {
			name := tt.name
			if hide {
				name += ", HidePipelining"
			}
			t.Run(name, func(t *testing.T) {
				s := start(t, Options{TLS: tt.tls, HidePipelining: hide, Username: "u", Password: "pw"})
				w := connect(t, s)
				w.do("EHLO client.example", 250)
				if !strings.HasPrefix(tt.name, "AUTH") {
					w.send("AUTH PLAIN AHUAcHc=\r\n")
					w.expect(235)
				}
				tt.script(w)
				want := tt.always
				if hide {
					want = tt.hidden
				}
				if got := s.Violations(); !slices.Equal(got, want) {
					t.Errorf("violations\n%q\nwant\n%q", got, want)
				}
				st := s.Stats()
				if st.MaxPipelined != tt.max || st.Violations != len(want) {
					t.Errorf("MaxPipelined %d, Violations %d; want %d, %d", st.MaxPipelined, st.Violations, tt.max, len(want))
				}
			})
		}
	}
}

// TestHideChunking: without CHUNKING every BDAT is refused with 502 5.5.1
// and reported, its chunk dropped: the next command is read as one, and
// the message can go by DATA.
func TestHideChunking(t *testing.T) {
	tests := []struct {
		name       string
		opt        Options
		code       int // reply to each BDAT
		violations []string
		messages   int
	}{
		{"CHUNKING offered", Options{}, 250, nil, 2},
		{"CHUNKING hidden", Options{HideChunking: true}, 502, []string{"connection 1: BDAT without CHUNKING", "connection 1: BDAT without CHUNKING"}, 1},
		{"CHUNKING hidden, implicit TLS", Options{TLS: tlsmode.Implicit, HideChunking: true}, 502, []string{"connection 1: BDAT without CHUNKING", "connection 1: BDAT without CHUNKING"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, tt.opt)
			w := connect(t, s)
			w.do("EHLO client.example", 250)
			w.do("MAIL FROM:<from@example.com>", 250)
			w.do("RCPT TO:<to@example.com>", 250)
			// The chunks look like commands: read as such, they would be
			// answered with 500 and the replies would be out of step.
			w.send("BDAT 6\r\nNOOP\r\n")
			r := w.expect(tt.code)
			if tt.code == 502 && !strings.HasPrefix(r[0], "502 5.5.1 ") {
				t.Errorf("reply %q, want 502 5.5.1", r)
			}
			w.send("BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\n")
			w.expect(tt.code)
			w.do("NOOP", 250)
			w.do("MAIL FROM:<from@example.com>", 250)
			w.do("RCPT TO:<to@example.com>", 250)
			w.do("DATA", 354)
			w.send(content)
			w.expect(250)
			if got := s.Violations(); !slices.Equal(got, tt.violations) {
				t.Errorf("violations %q, want %q", got, tt.violations)
			}
			if st := s.Stats(); st.BDATCommands != 2 || s.Count() != tt.messages {
				t.Errorf("%d BDAT, %d messages; want 2, %d", st.BDATCommands, s.Count(), tt.messages)
			}
			if tt.messages == 2 && string(s.Messages()[0].Data) != "NOOP\r\nSubject: x\r\n\r\nhi\r\n" {
				t.Errorf("BDAT message %q", s.Messages()[0].Data)
			}
		})
	}
}

// transaction sends one message over w, waiting for each reply, and
// returns the reply to MAIL.
func (w *wire) transaction() int {
	w.t.Helper()
	w.send("MAIL FROM:<from@example.com>\r\n")
	code, l, err := w.reply()
	if err != nil {
		w.t.Fatalf("MAIL: %v", err)
	}
	if code != 250 {
		if !strings.Contains(l[0], "rate") && !strings.Contains(l[0], "Try again later") {
			w.t.Errorf("refusal %q", l)
		}
		return code
	}
	w.do("RCPT TO:<to@example.com>", 250)
	w.do("DATA", 354)
	w.send(content)
	w.expect(250)
	return code
}

// TestRateLimit: the N+1th message in a window of Per is refused at MAIL
// FROM, across connections and counting transactions in flight; a message
// leaves the window Per after its accept time.
func TestRateLimit(t *testing.T) {
	tests := []struct {
		name   string
		limit  RateLimit
		script func(t *testing.T, s *Sink)
	}{
		{
			name:  "sliding window",
			limit: RateLimit{N: 2, Per: time.Second},
			script: func(t *testing.T, s *Sink) {
				w := connect(t, s)
				w.do("EHLO client.example", 250)
				if c := w.transaction(); c != 250 {
					t.Fatalf("first message: %d", c)
				}
				first := time.Now()
				time.Sleep(300 * time.Millisecond)
				if c := w.transaction(); c != 250 {
					t.Fatalf("second message: %d", c)
				}
				r := w.do("MAIL FROM:<from@example.com>", 450)
				if !strings.HasPrefix(r[0], "450 4.7.0 "+DefaultRateText) {
					t.Errorf("refusal %q", r)
				}
				// The first message leaves the window; the second is in it.
				time.Sleep(time.Until(first.Add(time.Second + 100*time.Millisecond)))
				if c := w.transaction(); c != 250 {
					t.Fatalf("message after the first left the window: %d", c)
				}
				if c := w.transaction(); c != 450 {
					t.Fatalf("third message in the window: %d", c)
				}
				if st := s.Stats(); s.Count() != 3 || st.RateRefusals != 2 || st.Transactions != 3 {
					t.Errorf("%d messages, stats %+v", s.Count(), st)
				}
			},
		},
		{
			name:  "transactions in flight on other connections",
			limit: RateLimit{N: 1, Per: time.Minute},
			script: func(t *testing.T, s *Sink) {
				a, b := connect(t, s), connect(t, s)
				a.do("EHLO a.example", 250)
				b.do("EHLO b.example", 250)
				a.do("MAIL FROM:<a@example.com>", 250)
				b.do("MAIL FROM:<b@example.com>", 450)
				a.do("RSET", 250) // gives the place back
				b.do("MAIL FROM:<b@example.com>", 250)
				a.do("MAIL FROM:<a@example.com>", 450)
				b.do("RCPT TO:<to@example.com>", 250)
				b.do("DATA", 354)
				b.send(content)
				b.expect(250)
				a.do("MAIL FROM:<a@example.com>", 450)
				if st := s.Stats(); s.Count() != 1 || st.RateRefusals != 3 {
					t.Errorf("%d messages, stats %+v", s.Count(), st)
				}
			},
		},
		{
			name:  "421 closes the connection",
			limit: RateLimit{N: 1, Per: time.Minute, Code: 421, Text: "Try again later, closing connection."},
			script: func(t *testing.T, s *Sink) {
				w := connect(t, s)
				w.do("EHLO client.example", 250)
				if c := w.transaction(); c != 250 {
					t.Fatalf("first message: %d", c)
				}
				if r := w.do("MAIL FROM:<from@example.com>", 421); r[0] != "421 4.7.0 Try again later, closing connection." {
					t.Errorf("refusal %q", r)
				}
				w.closed()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.script(t, start(t, Options{RateLimit: tt.limit}))
		})
	}
	if _, err := Start(t.Context(), Options{RateLimit: RateLimit{N: 1}}); err == nil {
		t.Error("Start took a RateLimit without Per")
	}
}

// TestBDATFaults: Fault's end-of-data reply answers BDAT LAST, and
// DropAfter closes the connection in the middle of a chunk, recording
// nothing; the next message after the fault goes through.
func TestBDATFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault Fault
		last  int // reply to BDAT LAST; 0: the connection closes before it
		first int // reply to the first chunk; 0: the connection closes in it
	}{
		{"451 to BDAT LAST", Fault{Reject: StageData, Code: 451, Times: 1}, 451, 250},
		{"554 5.7.1 to BDAT LAST", Fault{Reject: StageData, Code: 554, Enhanced: smtp.EnhancedCode{5, 7, 1}, Text: "Message rejected", Times: 1}, 554, 250},
		{"drop in the first chunk", Fault{DropAfter: 3, Times: 1}, 0, 0},
		{"drop in the last chunk", Fault{DropAfter: 9, Times: 1}, 0, 250},
		{"drop at the end", Fault{DropAfter: 1000, Times: 1}, 0, 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{})
			s.SetFault(tt.fault)
			w := connect(t, s)
			w.do("EHLO client.example", 250)
			w.do("MAIL FROM:<from@example.com>", 250)
			w.do("RCPT TO:<to@example.com>", 250)
			w.send("BDAT 6\r\nSubjec")
			if tt.first == 0 {
				w.closed()
			} else {
				w.expect(tt.first)
				w.send("BDAT 10 LAST\r\nt: x\r\n\r\nhi")
				if tt.last == 0 {
					w.closed()
				} else if r := w.expect(tt.last); tt.fault.Text != "" && r[0] != "554 5.7.1 Message rejected" {
					t.Errorf("reply %q", r)
				}
			}
			if s.Count() != 0 {
				t.Fatalf("a faulted message was recorded")
			}
			if tt.last == 0 {
				w = connect(t, s)
				w.do("EHLO client.example", 250)
			}
			w.send(mailTo, "BDAT 18 LAST\r\nSubject: x\r\n\r\nhi\r\n")
			w.expect(250, 250, 250)
			if s.Count() != 1 {
				t.Errorf("count = %d after the fault", s.Count())
			}
		})
	}
}

// TestStats: connections at once, transactions, DATA, BDAT and RSET.
func TestStats(t *testing.T) {
	s := start(t, Options{})
	ws := []*wire{connect(t, s), connect(t, s), connect(t, s)}
	for _, w := range ws {
		w.do("EHLO client.example", 250)
	}
	ws[0].do("RSET", 250)
	ws[0].do("RSET", 250)
	ws[1].transaction()
	ws[2].send(mailTo, "BDAT 5\r\nSubj:", "BDAT 8 LAST\r\n x\r\n\r\nhi")
	ws[2].expect(250, 250, 250, 250)
	want := Stats{Connections: 3, MaxConcurrent: 3, Transactions: 2, DATACommands: 1, BDATCommands: 2, RSETCommands: 2, MaxPipelined: 4}
	if st := s.Stats(); st != want {
		t.Errorf("stats\n%+v\nwant\n%+v", st, want)
	}
	if s.DataCommands() != 1 || s.Count() != 2 {
		t.Errorf("DataCommands %d, Count %d", s.DataCommands(), s.Count())
	}
	s.Reset()
	if st := s.Stats(); st != (Stats{MaxConcurrent: 3}) {
		t.Errorf("stats after Reset %+v", st)
	}
}

// TestGreeting554: the sink refuses service at connect, answers 503 until
// QUIT, then closes.
func TestGreeting554(t *testing.T) {
	tests := []struct {
		name     string
		commands []string
	}{
		{"QUIT at once", nil},
		{"EHLO, MAIL, then QUIT", []string{"EHLO client.example", "MAIL FROM:<from@example.com>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, Options{Greeting554: true})
			w := open(t, s)
			if r := w.expect(554); r[0] != "554 sink.localhost No SMTP service here" {
				t.Errorf("greeting %q", r)
			}
			for _, c := range tt.commands {
				w.do(c, 503)
			}
			w.do("QUIT", 221)
			w.closed()
			if len(s.Hellos()) != 0 || s.Stats().Connections != 1 {
				t.Errorf("hellos %q, stats %+v", s.Hellos(), s.Stats())
			}
		})
	}
}
