package smtpclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// server is a scripted SMTP server on loopback: it answers each command
// line with answer's reply, and reads a BDAT chunk or DATA content whole.
// hold makes it answer nothing after EHLO until it has read that many more
// commands, so
// a client that waits for a reply before it sends on deadlocks.
type server struct {
	ehlo   string // the EHLO reply lines after the first
	hold   int
	answer func(cmd string) string // "" for the default replies

	mu       sync.Mutex
	commands []string
	early    []string // with hold 0: commands that came before the reply to the one before
	messages []string
}

func (s *server) start(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return l.Addr().String()
}

func (s *server) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprint(c, "220 scripted.test ESMTP\r\n")
	var held []string
	var body strings.Builder
	data := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		if data {
			if cmd == "." {
				data = false
				s.note("", body.String())
				body.Reset()
				held = s.reply(c, held, "250 2.0.0 queued")
				continue
			}
			body.WriteString(strings.TrimPrefix(cmd, ".") + "\r\n")
			continue
		}
		s.mu.Lock()
		s.commands = append(s.commands, cmd)
		n := len(s.commands)
		s.mu.Unlock()
		if s.hold == 0 && cmd != "QUIT" && !strings.HasPrefix(strings.ToUpper(cmd), "BDAT") {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := r.Peek(1); err == nil {
				s.mu.Lock()
				s.early = append(s.early, cmd)
				s.mu.Unlock()
			}
			c.SetReadDeadline(time.Time{})
		}
		reply := s.defaultReply(cmd)
		if s.answer != nil {
			if a := s.answer(cmd); a != "" {
				reply = a
			}
		}
		upper := strings.ToUpper(cmd)
		if strings.HasPrefix(upper, "BDAT ") {
			f := strings.Fields(cmd)
			size, _ := strconv.Atoi(f[1])
			chunk := make([]byte, size)
			io.ReadFull(r, chunk)
			body.Write(chunk)
			if len(f) > 2 {
				s.note("", body.String())
				body.Reset()
			}
		}
		if upper == "DATA" && strings.HasPrefix(reply, "354") {
			data = true
		}
		if n <= s.hold && !strings.HasPrefix(upper, "EHLO") {
			held = append(held, reply)
			continue
		}
		held = s.reply(c, held, reply)
		if upper == "QUIT" {
			return
		}
	}
}

// reply writes the held replies and r.
func (s *server) reply(c net.Conn, held []string, r string) []string {
	for _, h := range append(held, r) {
		fmt.Fprint(c, h+"\r\n")
	}
	return nil
}

func (s *server) note(_, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages = append(s.messages, msg)
}

func (s *server) defaultReply(cmd string) string {
	switch u := strings.ToUpper(cmd); {
	case strings.HasPrefix(u, "EHLO"):
		return "250-scripted.test\r\n" + s.ehlo
	case u == "DATA":
		return "354 go ahead"
	case u == "QUIT":
		return "221 2.0.0 bye"
	}
	return "250 2.0.0 ok"
}

func (s *server) snapshot() (commands, early, messages []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...), append([]string(nil), s.early...), append([]string(nil), s.messages...)
}

func dial(t *testing.T, addr string) *Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), raw, Options{Hello: "client.test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tx(i int, to ...string) *Tx {
	if len(to) == 0 {
		to = []string{"support@helpdesk.test"}
	}
	return &Tx{From: "triage@example.test", To: to, Tag: i, Content: func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "Subject: %d\n\n.body %d\n", i, i)
		return err
	}}
}

// sendAll sends n transactions without waiting, then waits for all.
func sendAll(t *testing.T, c *Conn, txs ...*Tx) map[int]Done {
	t.Helper()
	ctx := context.Background()
	var done []Done
	for _, x := range txs {
		done = append(done, c.Send(ctx, x)...)
	}
	done = append(done, c.Receive(ctx, c.InFlight())...)
	out := make(map[int]Done)
	for _, d := range done {
		out[d.Tx.Tag.(int)] = d
	}
	if len(out) != len(txs) || c.InFlight() != 0 {
		t.Fatalf("%d outcomes for %d transactions, %d in flight", len(out), len(txs), c.InFlight())
	}
	return out
}

// TestPipelinesAcrossTransactions: with PIPELINING and CHUNKING the client
// sends three whole transactions before it needs a reply; a server that
// answers nothing until then would deadlock a client that waits.
func TestPipelinesAcrossTransactions(t *testing.T) {
	for _, ext := range []string{"250-PIPELINING\r\n250 CHUNKING", "250-CHUNKING\r\n250 PIPELINING"} {
		s := &server{ehlo: ext, hold: 1 + 3*3 + 2 - 1} // after EHLO: (MAIL RCPT BDAT) x3 and the RSETs before the 2nd and 3rd, the last of them answered
		c := dial(t, s.start(t))
		for i, d := range sendAll(t, c, tx(1), tx(2), tx(3)) {
			if d.Err != nil {
				t.Errorf("transaction %d: %v", i, d.Err)
			}
		}
		cmds, _, msgs := s.snapshot()
		want := "EHLO client.test|MAIL FROM:<triage@example.test>|RCPT TO:<support@helpdesk.test>|BDAT 23 LAST|RSET|MAIL FROM:<triage@example.test>"
		if got := strings.Join(cmds, "|"); !strings.HasPrefix(got, want) {
			t.Errorf("commands %s, want them to start %s", got, want)
		}
		if len(msgs) != 3 || msgs[0] != "Subject: 1\r\n\r\n.body 1\r\n" {
			t.Errorf("messages %q", msgs)
		}
	}
}

// TestWaitsWithoutPipelining: without PIPELINING no command goes before
// the reply to the one before (RFC 2920 §3.1 is opt-in); DATA without
// CHUNKING, dot-stuffed.
func TestWaitsWithoutPipelining(t *testing.T) {
	for _, ext := range []string{"250 8BITMIME", "250 CHUNKING"} {
		s := &server{ehlo: ext}
		c := dial(t, s.start(t))
		for i, d := range sendAll(t, c, tx(1), tx(2)) {
			if d.Err != nil {
				t.Errorf("%s: transaction %d: %v", ext, i, d.Err)
			}
		}
		_, early, msgs := s.snapshot()
		if len(early) > 0 {
			t.Errorf("%s: commands sent before the reply to the one before: %q", ext, early)
		}
		if len(msgs) != 2 || msgs[1] != "Subject: 2\r\n\r\n.body 2\r\n" {
			t.Errorf("%s: messages %q", ext, msgs)
		}
	}
}

// TestOutcomes: each transaction's outcome is the reply of its first
// failed command, and the next one still goes (after RSET).
func TestOutcomes(t *testing.T) {
	tests := []struct {
		name, ext string
	}{
		{"pipelining and chunking", "250-PIPELINING\r\n250 CHUNKING"},
		{"pipelining, DATA", "250 PIPELINING"},
		{"neither", "250 SIZE 1000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{ehlo: tt.ext, answer: func(cmd string) string {
				switch {
				case strings.Contains(cmd, "<refused@"):
					return "550 5.1.1 no such user"
				case strings.Contains(cmd, "<busy@"):
					return "451 4.3.0 try later"
				}
				return ""
			}}
			c := dial(t, s.start(t))
			got := sendAll(t, c,
				tx(1),
				tx(2, "refused@helpdesk.test"),
				tx(3, "support@helpdesk.test", "refused@helpdesk.test"),
				tx(4, "busy@helpdesk.test"),
				tx(5))
			checkErr := func(i, code int, secode string) {
				t.Helper()
				var e *Error
				switch {
				case code == 0 && got[i].Err != nil:
					t.Errorf("transaction %d: %v, want it taken", i, got[i].Err)
				case code != 0 && (!errors.As(got[i].Err, &e) || e.Code != code || e.Secode != secode || !strings.HasPrefix(e.Command, "RCPT")):
					t.Errorf("transaction %d: %v, want %d %s to RCPT", i, got[i].Err, code, secode)
				}
			}
			checkErr(1, 0, "")
			checkErr(2, 550, "5.1.1")
			checkErr(3, 0, "")
			checkErr(4, 451, "4.3.0")
			checkErr(5, 0, "")
			if len(got[3].Refused) != 1 || got[3].Refused[0].Code != 550 {
				t.Errorf("transaction 3: refused %v, want the one recipient", got[3].Refused)
			}
			if _, _, msgs := s.snapshot(); len(msgs) < 3 {
				t.Errorf("%d messages reached the server, want at least 3", len(msgs))
			}
		})
	}
}

// TestClosingReply: a 421 ends the session; what was in flight behind it
// fails with it, and the session is unusable.
func TestClosingReply(t *testing.T) {
	n := 0
	s := &server{ehlo: "250-PIPELINING\r\n250 CHUNKING", answer: func(cmd string) string {
		if strings.HasPrefix(cmd, "MAIL") {
			if n++; n == 2 {
				return "421 4.7.0 Try again later, closing connection"
			}
		}
		return ""
	}}
	c := dial(t, s.start(t))
	got := sendAll(t, c, tx(1), tx(2), tx(3))
	var e *Error
	if got[1].Err != nil || !errors.As(got[2].Err, &e) || e.Code != 421 || !errors.As(got[3].Err, &e) || e.Code != 421 {
		t.Fatalf("outcomes %v, %v, %v; want taken, 421, 421", got[1].Err, got[2].Err, got[3].Err)
	}
	if c.Err() == nil {
		t.Errorf("session usable after 421")
	}
}

// TestSourceFailure: a message whose source fails is never completed, and
// the outcomes owed before it are still read.
func TestSourceFailure(t *testing.T) {
	for _, ext := range []string{"250-PIPELINING\r\n250 CHUNKING", "250 PIPELINING"} {
		s := &server{ehlo: ext}
		c := dial(t, s.start(t))
		broken := errors.New("disk gone")
		bad := &Tx{From: "a@example.test", To: []string{"b@example.test"}, Tag: 2, Content: func(w io.Writer) error {
			io.WriteString(w, "Subject: half\r\n\r\n")
			return broken
		}}
		got := sendAll(t, c, tx(1), bad)
		var e *Error
		if got[1].Err != nil || !errors.As(got[2].Err, &e) || e.Command != "message source" || !errors.Is(got[2].Err, broken) {
			t.Fatalf("%s: outcomes %v, %v; want taken, then the source's failure", ext, got[1].Err, got[2].Err)
		}
		time.Sleep(50 * time.Millisecond) // the server sees the close
		if _, _, msgs := s.snapshot(); len(msgs) != 1 {
			t.Errorf("%s: %d messages completed, want 1", ext, len(msgs))
		}
	}
}

func TestReplyParsing(t *testing.T) {
	tests := []struct {
		in, secode, line string
		code             int
		bad              bool
	}{
		{in: "250 ok\r\n", code: 250, line: "ok"},
		{in: "550-5.7.1 first\r\n550 5.7.1 second\r\n", code: 550, secode: "5.7.1", line: "first second"},
		{in: "451 4.7.500 Server busy\r\n", code: 451, secode: "4.7.500", line: "Server busy"},
		{in: "550 4.1.1 class differs\r\n", code: 550, line: "4.1.1 class differs"},
		{in: "250\r\n", code: 250},
		{in: "25 short\r\n", bad: true},
		{in: "250-a\r\n251 b\r\n", bad: true},
		{in: "999 x\r\n", bad: true},
		{in: "250 ok\x1b[31m\r\n", code: 250, line: "ok [31m"},
	}
	for _, tt := range tests {
		c := &Conn{r: bufio.NewReader(strings.NewReader(tt.in))}
		r, err := c.readReply()
		if (err != nil) != tt.bad {
			t.Errorf("%q: error %v", tt.in, err)
			continue
		}
		if tt.bad {
			continue
		}
		e := r.err("X")
		if e.Code != tt.code || e.Secode != tt.secode || e.Line != tt.line {
			t.Errorf("%q: %d %q %q, want %d %q %q", tt.in, e.Code, e.Secode, e.Line, tt.code, tt.secode, tt.line)
		}
	}
}

func FuzzReply(f *testing.F) {
	f.Add([]byte("250-a\r\n250 b\r\n"))
	f.Add([]byte("550 5.7.1 x\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &Conn{r: bufio.NewReader(strings.NewReader(string(in)))}
		r, err := c.readReply()
		if err == nil && (r.code < 200 || r.code > 599 || len(r.lines) == 0) {
			t.Fatalf("%q: code %d, %d lines", in, r.code, len(r.lines))
		}
	})
}
