// Package smtpclient is the forwarder's SMTP client: one session per Conn,
// with several mail transactions in flight on it.
//
// It speaks RFC 5321 with the extensions a submission server or an MX of
// the field offers: PIPELINING (RFC 2920) within a transaction and across
// transactions — the next transaction's RSET, MAIL and RCPT follow the
// previous end of data without waiting for its reply —, CHUNKING (RFC 3030
// BDAT) when offered, so that no transaction waits for a 354, STARTTLS (RFC
// 3207), AUTH (RFC 4954) through any go-sasl client, SIZE (RFC 1870),
// 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) only for a transaction that asks
// for it, and ENHANCEDSTATUSCODES (RFC 2034) in its errors. Without
// PIPELINING every command waits for its reply, as RFC 5321 requires.
//
// It exists because no library fits: go-smtp's client waits for every
// reply, and mox's smtpclient has one message in flight, no BDAT and no
// OAuth mechanisms. Errors have mox's shape (Error).
//
// A Conn is not safe for concurrent use: one goroutine drives it, and the
// server's replies are read only when the caller asks for outcomes
// (Receive) or the window of PipelineDepth transactions is full, so the
// caller chooses when to wait.
package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// Extensions is what the server's EHLO reply offers.
type Extensions struct {
	Pipelining, Chunking, EightBitMIME, SMTPUTF8, Enhanced, StartTLS bool
	Size                                                             int64    // SIZE's limit; 0 when none is announced
	Auth                                                             []string // the SASL mechanisms, upper case
}

// Has reports whether mechanism is among Auth.
func (e Extensions) Has(mechanism string) bool {
	for _, m := range e.Auth {
		if strings.EqualFold(m, mechanism) {
			return true
		}
	}
	return false
}

// Options say how to open a session.
type Options struct {
	Hello   string        // the EHLO name
	Timeout time.Duration // for every read and write; a minute when 0
	// TLS, when set, secures the session with STARTTLS after the first EHLO.
	TLS *tls.Config
	// Opportunistic goes on in plain text when the server offers no
	// STARTTLS (an MX without a policy that requires TLS).
	Opportunistic bool
}

// Conn is one SMTP session.
type Conn struct {
	dc      *deadlineConn
	conn    net.Conn // dc, or TLS over it
	r       *bufio.Reader
	w       *bufio.Writer
	ext     Extensions
	secured bool // STARTTLS succeeded
	hello   string

	owed   []owed // replies not yet read, in the order of the commands
	flight []*Tx  // transactions whose outcome is not yet known, oldest first
	reset  bool   // the next MAIL needs a RSET before it
	err    error  // the session is unusable: every later call fails with it
	data   *dataWriter
	chunk  chunker
	peek   chan struct{} // Ready's: closed once a reply's first octet is in; nil when no peek runs
}

// New runs the start of a session on conn: the greeting, EHLO, and with
// opt.TLS STARTTLS and EHLO again. On an error the caller closes conn.
// Errors are *Error values whose Command names the step; a failed TLS
// handshake is Command "STARTTLS" with Err set.
func New(ctx context.Context, conn net.Conn, opt Options) (*Conn, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = time.Minute
	}
	dc := &deadlineConn{Conn: conn, timeout: opt.Timeout}
	c := &Conn{dc: dc, conn: dc, hello: opt.Hello, data: newDataWriter(chunkSize)}
	c.r = bufio.NewReaderSize(dc, 4<<10)
	c.w = bufio.NewWriterSize(dc, 64<<10)
	c.chunk.c = c
	release := dc.bind(ctx)
	defer release()
	if _, err := c.reply("greeting", 220); err != nil {
		return nil, err
	}
	if err := c.ehlo(opt.TLS == nil || opt.Opportunistic); err != nil {
		return nil, err
	}
	if opt.TLS == nil {
		return c, nil
	}
	if !c.ext.StartTLS {
		if opt.Opportunistic {
			return c, nil
		}
		return nil, &Error{Command: "STARTTLS", Err: errors.New("the server does not offer STARTTLS")}
	}
	if _, err := c.command("STARTTLS", "STARTTLS", 220); err != nil {
		return nil, err
	}
	if n := c.r.Buffered(); n > 0 {
		// Plain text after the STARTTLS reply would be taken as if it came
		// over TLS (the STARTTLS command injection of CVE-2011-0411).
		return nil, &Error{Command: "STARTTLS", Err: fmt.Errorf("%d octets of plain text followed the STARTTLS reply", n)}
	}
	tc := tls.Client(dc, opt.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, &Error{Command: "STARTTLS", Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	c.conn, c.secured = tc, true
	c.r.Reset(tc)
	c.w.Reset(tc)
	if err := c.ehlo(false); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Command = EHLOOverTLS
		}
		return nil, err
	}
	return c, nil
}

// EHLOOverTLS is the Command of an Error of the EHLO after STARTTLS.
const EHLOOverTLS = "EHLO over TLS"

// Extensions is what the server offers (after STARTTLS, what it offers
// over TLS).
func (c *Conn) Extensions() Extensions { return c.ext }

// Secured reports whether STARTTLS secured the session.
func (c *Conn) Secured() bool { return c.secured }

// Hello is the name given in EHLO.
func (c *Conn) Hello() string { return c.hello }

// NetConn is the connection the session runs on, under TLS if any.
func (c *Conn) NetConn() net.Conn { return c.dc.Conn }

// LocalAddr is the client's end of the connection.
func (c *Conn) LocalAddr() net.Addr { return c.dc.LocalAddr() }

// Err is the failure that made the session unusable, nil while it works.
func (c *Conn) Err() error { return c.err }

// ehlo sends EHLO and reads the extensions from the reply (RFC 5321
// §4.1.1.1). A server that answers 500 or 502 knows only HELO: it has no
// extensions, and gets HELO when helo allows; else it offers no STARTTLS.
func (c *Conn) ehlo(helo bool) error {
	r, err := c.command("EHLO", "EHLO "+c.hello, 250)
	var refused *Error
	if errors.As(err, &refused) && (refused.Code == 500 || refused.Code == 502) {
		c.ext = Extensions{}
		if !helo {
			return &Error{Command: "STARTTLS", Err: fmt.Errorf("the server refuses EHLO (%d %s), so it offers no STARTTLS", refused.Code, refused.Line)}
		}
		_, err = c.command("HELO", "HELO "+c.hello, 250)
		return err
	}
	if err != nil {
		return err
	}
	c.ext = parseExtensions(r.lines[1:])
	return nil
}

func parseExtensions(lines []string) Extensions {
	var e Extensions
	for _, l := range lines {
		f := strings.Fields(strings.ToUpper(l))
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "PIPELINING":
			e.Pipelining = true
		case "CHUNKING":
			e.Chunking = true
		case "8BITMIME":
			e.EightBitMIME = true
		case "SMTPUTF8":
			e.SMTPUTF8 = true
		case "ENHANCEDSTATUSCODES":
			e.Enhanced = true
		case "STARTTLS":
			e.StartTLS = true
		case "SIZE":
			if len(f) > 1 {
				e.Size, _ = strconv.ParseInt(f[1], 10, 64)
			}
		case "AUTH":
			e.Auth = append(e.Auth, f[1:]...)
		}
	}
	return e
}

// Auth authenticates with client (RFC 4954). The server's text of a refusal
// is kept in the Error; the caller withholds it where it may echo the
// credential.
func (c *Conn) Auth(ctx context.Context, client sasl.Client) error {
	release := c.dc.bind(ctx)
	defer release()
	mech, ir, err := client.Start()
	if err != nil {
		return &Error{Command: "AUTH", Err: err}
	}
	line := "AUTH " + mech
	if ir != nil {
		line += " " + encodeSASL(ir)
	}
	for {
		r, err := c.command("AUTH", line, 0)
		if err != nil {
			return err
		}
		switch {
		case r.code == 235:
			return nil
		case r.code != 334:
			return r.err("AUTH")
		}
		challenge, derr := base64.StdEncoding.DecodeString(strings.Join(r.lines, ""))
		if derr != nil {
			return c.fail(&Error{Command: "AUTH", Err: fmt.Errorf("challenge not base64: %w", derr)})
		}
		resp, err := client.Next(challenge)
		if err != nil {
			// Cancel the exchange (RFC 4954 §4) and read the server's 501.
			if _, cerr := c.command("AUTH", "*", 0); cerr != nil {
				return cerr
			}
			return &Error{Command: "AUTH", Err: err}
		}
		line = base64.StdEncoding.EncodeToString(resp)
	}
}

// encodeSASL is an initial response as AUTH carries it: "=" when empty.
func encodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// Probe has the server accept from and each of to (MAIL and RCPT, each
// waiting for its reply) and ends the transaction with RSET: what a session
// check needs without sending a message. The first refusal is returned.
func (c *Conn) Probe(ctx context.Context, from string, to []string) error {
	release := c.dc.bind(ctx)
	defer release()
	if _, err := c.command("MAIL FROM:<"+from+">", "MAIL FROM:<"+from+">", 250); err != nil {
		return err
	}
	for _, rcpt := range to {
		if _, err := c.command("RCPT TO:<"+rcpt+">", "RCPT TO:<"+rcpt+">", 250); err != nil {
			return err
		}
	}
	_, err := c.command("RSET", "RSET", 250)
	return err
}

// Quit ends the session with QUIT once the transactions in flight are
// answered (their outcomes are returned), and closes the connection.
func (c *Conn) Quit(ctx context.Context) ([]Done, error) {
	done := c.Receive(ctx, len(c.flight))
	if c.err != nil {
		c.Close()
		return done, c.err
	}
	release := c.dc.bind(ctx)
	defer release()
	_, err := c.command("QUIT", "QUIT", 221)
	c.Close()
	return done, err
}

// Close closes the connection without QUIT. Transactions in flight stay
// unanswered: whether the server took them is unknown.
func (c *Conn) Close() error {
	if c.err == nil {
		c.err = &Error{Command: "QUIT", Err: net.ErrClosed}
	}
	return c.conn.Close()
}

// reply is one server reply: its code and text lines (without code and
// enhanced code), and the enhanced code.
type reply struct {
	code   int
	secode string
	lines  []string
}

// err is r as the *Error of command.
func (r reply) err(command string) *Error {
	return &Error{Permanent: r.code >= 500, Code: r.code, Secode: r.secode, Command: command,
		Line: mailheader.Sanitize(strings.Join(r.lines, " "))}
}

// maxReplyLines bounds a reply, so that a server cannot make one endless.
const maxReplyLines = 100

// Ready returns a channel that is closed once the server's next reply can
// be read (or the connection failed), for a caller that waits for that or
// for something else, such as its next message. What is buffered is sent
// first. The Conn's own reads wait for it.
func (c *Conn) Ready() <-chan struct{} {
	if c.peek == nil {
		c.peek = make(chan struct{})
		c.flush()
		if c.err != nil {
			close(c.peek)
			return c.peek
		}
		go func(done chan struct{}) {
			c.r.Peek(1)
			close(done)
		}(c.peek)
	}
	return c.peek
}

// readReply reads one reply (RFC 5321 §4.2: "250-first", ..., "250 last").
func (c *Conn) readReply() (reply, error) {
	if c.peek != nil {
		<-c.peek // the reader is ours again
		c.peek = nil
	}
	var r reply
	for i := 0; ; i++ {
		line, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			return r, errors.New("reply line longer than 4096 octets")
		}
		if err != nil {
			return r, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 || (len(s) > 3 && s[3] != ' ' && s[3] != '-') {
			return r, fmt.Errorf("malformed reply line %q", mailheader.Sanitize(s))
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || code < 200 || code > 599 || (i > 0 && code != r.code) {
			return r, fmt.Errorf("malformed reply line %q", mailheader.Sanitize(s))
		}
		r.code = code
		text := ""
		if len(s) > 4 {
			text = s[4:]
		}
		if i == 0 || r.secode == "" {
			if sc, rest, ok := enhancedCode(code, text); ok {
				r.secode, text = sc, rest
			}
		} else if _, rest, ok := enhancedCode(code, text); ok {
			text = rest
		}
		r.lines = append(r.lines, text)
		if len(s) == 3 || s[3] == ' ' {
			return r, nil
		}
		if i >= maxReplyLines {
			return r, errors.New("reply of more than 100 lines")
		}
	}
}

// enhancedCode splits "5.7.1 text" (RFC 3463 §2), whose class must be the
// reply code's.
func enhancedCode(code int, text string) (secode, rest string, ok bool) {
	sc, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(sc, ".")
	if len(parts) != 3 || len(sc) > 11 || parts[0] != strconv.Itoa(code/100) {
		return "", text, false
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", text, false
		}
	}
	return sc, rest, true
}

// command sends one command outside a transaction and reads its reply,
// which must have the code want (0: any code, for the caller to judge).
func (c *Conn) command(name, line string, want int) (reply, error) {
	if c.err != nil {
		return reply{}, c.err
	}
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return reply{}, c.fail(&Error{Command: name, Err: err})
	}
	if err := c.w.Flush(); err != nil {
		return reply{}, c.fail(&Error{Command: name, Err: err})
	}
	return c.reply(name, want)
}

// reply reads a reply to name, which must have the code want (0: any).
func (c *Conn) reply(name string, want int) (reply, error) {
	r, err := c.readReply()
	if err != nil {
		return r, c.fail(&Error{Command: name, Err: err})
	}
	if r.code == 421 {
		// RFC 5321 §3.8: the server closes the session.
		return r, c.fail(r.err(name))
	}
	if want != 0 && r.code != want && !(want == 250 && r.code/100 == 2) {
		return r, r.err(name)
	}
	return r, nil
}

// fail makes the session unusable with err and returns it.
func (c *Conn) fail(err *Error) *Error {
	if c.err == nil {
		c.err = err
	}
	return err
}
