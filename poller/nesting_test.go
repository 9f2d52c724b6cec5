package poller

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// scanAll runs a fresh guard over stream, chunk octets at a time, and
// reports whether it tripped.
func scanAll(stream []byte, chunk int) bool {
	g := &nestingGuard{}
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		if g.scan(stream[:n]) != nil {
			return true
		}
		stream = stream[n:]
	}
	return false
}

func TestNestingGuard(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + strings.Repeat(")", n) }
	past := deep(maxNesting + 1)
	opens := strings.Repeat("(", maxNesting+1) // would trip, were they counted
	tests := []struct {
		name   string
		stream string
		trips  bool
	}{
		{"an ordinary FETCH", `* 1 FETCH (UID 7 FLAGS (\Seen) BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 1 NIL NIL NIL NIL)("application" "pdf" NIL NIL NIL "base64" 100 NIL NIL NIL NIL) "mixed"))` + "\r\n", false},
		{"nesting at the bound", "* 1 FETCH " + deep(maxNesting) + "\r\n", false},
		{"nesting past the bound", "* 1 FETCH " + past + "\r\n", true},
		{"3 million deep", "* 1 FETCH (UID 1 BODYSTRUCTURE " + strings.Repeat("(", 3_000_000), true},
		{"depth counts per response", strings.Repeat("* 1 FETCH "+strings.Repeat("(", maxNesting/2+1)+"\r\n", 5), false},
		{"parentheses in a quoted string", `* 1 FETCH (ENVELOPE ("` + opens + `"))` + "\r\n", false},
		{"an escaped quote keeps the string open", `* 1 FETCH (X "a\"` + opens + `")` + "\r\n", false},
		{"parentheses in a literal", "* 1 FETCH (BODY[HEADER] {" + fmt.Sprint(len(opens)) + "}\r\n" + opens + ")\r\n", false},
		{"nesting after a literal counts", "* 1 FETCH (BODY[HEADER] {3}\r\nabc " + past + ")\r\n", true},
		{"an empty literal", "* 1 FETCH (X {0}\r\n " + past + ")\r\n", true},
		{"a brace that opens no literal", "* 1 FETCH (X {a} " + past + ")\r\n", true},
		{"free text after OK", "* OK [ALERT] " + opens + "\r\n", false},
		{"free text of a tagged NO", "A12 NO " + opens + "\r\n", false},
		{"a literal-looking brace in free text is no literal", "* OK {200}\r\n* 1 FETCH " + past + "\r\n", true},
		{"continuation text", "+ " + opens + "\r\n", false},
		{"data after free text counts", "* OK " + opens + "\r\n* 2 FETCH " + past + "\r\n", true},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 4096, 1 << 30} {
			if got := scanAll([]byte(tt.stream), chunk); got != tt.trips {
				t.Errorf("%s (read %d octets at a time): tripped %v, want %v", tt.name, chunk, got, tt.trips)
			}
		}
	}
}

// FuzzNestingGuard: whatever the server sends, the guard never panics and
// decides the same however the stream is split into reads.
func FuzzNestingGuard(f *testing.F) {
	for _, seed := range []string{
		"* 1 FETCH (UID 1 BODYSTRUCTURE ((\"text\" \"plain\" NIL NIL NIL \"7bit\" 1 1) \"mixed\"))\r\n",
		"* OK [CAPABILITY IMAP4rev1] (((\r\n",
		"* 1 FETCH (BODY[] {5}\r\n((((()\r\n",
		"* 1 FETCH (X \"a\\\"(\" {2}\r\n((" + strings.Repeat("(", 200) + "\r\n",
		"+ {3}\r\n(((\r\n",
	} {
		f.Add([]byte(seed), uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := scanAll(stream, len(stream)+1)
		if split := scanAll(stream, int(chunk)+1); split != whole {
			t.Fatalf("tripped %v in one read, %v in reads of %d", whole, split, int(chunk)+1)
		}
	})
}

// A server whose BODYSTRUCTURE is nested 3 million deep (go-imap's
// recursive reader dies of a stack overflow there) fails the cycle with
// ErrNestingTooDeep and the worker lives on; the message is flagged
// $Unparseable and moved to review over a new session, so the next cycle
// gets past it.
func TestDeepBodyStructureSetAside(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := &deepIMAP{depth: 3_000_000, uid: 7}
	addr := srv.start(t)
	p := e.poller(nil, func(mb *Mailbox) {
		mb.IMAP = IMAP{
			Address: addr, TLS: tlsmode.None, InsecurePlaintext: true,
			Auth:        credential.Auth{Mechanism: credential.Plain, Username: testUser, Secret: credential.Static(secret.New(testPassword))},
			DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, BodyTimeout: 10 * time.Second,
		}
		mb.ReleaseFolder = ""
	})
	rep, err := p.Cycle(t.Context())
	if !errors.Is(err, ErrNestingTooDeep) {
		t.Fatalf("cycle against a 3-million-deep BODYSTRUCTURE returned %v, want ErrNestingTooDeep", err)
	}
	for _, want := range []string{`UID STORE 7 +FLAGS.SILENT ($Unparseable \Flagged)`, `UID MOVE 7 "Triage/Review"`} {
		if !slices.Contains(srv.seen(), want) {
			t.Errorf("the server never got %q; it got %q", want, srv.seen())
		}
	}
	if len(rep.Entries) != 1 || rep.Entries[0].Action != EntryFlagged || rep.Entries[0].UID != 7 || rep.Counts.Flagged != 1 {
		t.Errorf("report = %+v, want uid 7 flagged", rep)
	}
	if _, err := p.Cycle(t.Context()); err != nil {
		t.Errorf("the cycle after the message was set aside: %v", err)
	}
	if n := e.sink.Count(); n != 0 {
		t.Errorf("helpdesk received %d messages", n)
	}
}

// deepIMAP is a plaintext IMAP server on loopback whose INBOX holds one
// message (UID uid) with a BODYSTRUCTURE opened depth times; it takes
// STORE and MOVE of it, after which INBOX is empty.
type deepIMAP struct {
	depth int
	uid   int

	mu    sync.Mutex
	cmds  []string // STORE and MOVE commands, without their tags
	moved bool
}

func (d *deepIMAP) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.cmds)
}

func (d *deepIMAP) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go d.serve(c)
		}
	}()
	return ln.Addr().String()
}

func (d *deepIMAP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	w := bufio.NewWriter(c)
	defer w.Flush()
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\r\n", args...) }
	say("* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] fake server ready")
	w.Flush()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
		upper := strings.ToUpper(cmd)
		d.mu.Lock()
		moved := d.moved
		if strings.HasPrefix(upper, "UID STORE") || strings.HasPrefix(upper, "UID MOVE") {
			d.cmds = append(d.cmds, cmd)
			d.moved = d.moved || strings.HasPrefix(upper, "UID MOVE")
		}
		d.mu.Unlock()
		switch {
		case strings.HasPrefix(upper, "CAPABILITY"):
			say("* CAPABILITY IMAP4rev1 MOVE UIDPLUS")
		case strings.HasPrefix(upper, "SELECT"), strings.HasPrefix(upper, "EXAMINE"):
			n := 1
			if moved {
				n = 0
			}
			say("* %d EXISTS", n)
			say(`* FLAGS (\Seen \Flagged)`)
			say(`* OK [PERMANENTFLAGS (\Seen \Flagged \*)] ok`)
			say(`* OK [UIDVALIDITY 1] ok`)
			say(`* OK [UIDNEXT %d] ok`, d.uid+1)
		case strings.HasPrefix(upper, "STATUS"):
			say(`* STATUS INBOX (UIDNEXT %d UIDVALIDITY 1)`, d.uid+1)
		case strings.HasPrefix(upper, "LIST"):
			say(`* LIST () "/" Triage/Review`)
		case strings.HasPrefix(upper, "UID SEARCH"):
			if moved {
				say("* SEARCH")
			} else {
				say("* SEARCH %d", d.uid)
			}
		case strings.HasPrefix(upper, "FETCH 1 (UID)"):
			say("* 1 FETCH (UID %d)", d.uid)
		case strings.HasPrefix(upper, "UID FETCH") && strings.Contains(upper, "BODYSTRUCTURE"):
			var b bytes.Buffer
			fmt.Fprintf(&b, "* 1 FETCH (UID %d FLAGS () RFC822.SIZE 100 BODYSTRUCTURE ", d.uid)
			b.WriteString(strings.Repeat("(", d.depth))
			w.Write(b.Bytes())
			w.Flush()
			return
		case strings.HasPrefix(upper, "LOGOUT"):
			say("* BYE bye")
		}
		say("%s OK done", tag)
		w.Flush()
	}
}

// Our own STARTTLS exchange (startTLS): it refuses what a client must not
// go on with, before any TLS.
func TestStartTLSExchange(t *testing.T) {
	tests := []struct {
		name     string
		greeting string
		reply    string // to STARTTLS, in one write
		wantErr  string
	}{
		{"a plaintext command injected behind the OK", "* OK ready\r\n", "T1 OK begin\r\n* 1 EXISTS\r\n", "in the clear after its OK"},
		{"STARTTLS refused", "* OK ready\r\n", "T1 NO not here\r\n", "STARTTLS refused"},
		{"a greeting that is not OK", "* BYE go away\r\n", "", "not OK"},
		{"a greeting line without end", "* OK " + strings.Repeat("x", maxGreetingLine+10), "", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				defer server.Close()
				if _, err := io.WriteString(server, tt.greeting); err != nil || tt.reply == "" {
					return
				}
				if _, err := bufio.NewReader(server).ReadString('\n'); err != nil {
					return
				}
				io.WriteString(server, tt.reply)
			}()
			client.SetDeadline(time.Now().Add(5 * time.Second))
			_, err := startTLS(t.Context(), client, &tls.Config{ServerName: "127.0.0.1"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("startTLS = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
