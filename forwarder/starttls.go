package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/internal/mailheader"
)

// startTLS runs the plain-text start of a session on conn — the greeting,
// EHLO with our host name, STARTTLS (RFC 3207) — and returns the TLS
// connection for go-smtp to carry on with. go-smtp's own STARTTLS greets
// with "EHLO localhost" and keeps the TLS connection to itself, and DATA is
// written straight to that connection (dataWriter).
//
// go-smtp reads a greeting before its EHLO, and after STARTTLS a server
// sends none (RFC 3207 §4.2), so the returned connection first replays the
// greeting the server gave at connect.
//
// With opportunistic, a server that offers no STARTTLS gets the session in
// plain text: secured is false and the returned connection replays the
// greeting for go-smtp's own EHLO.
func startTLS(ctx context.Context, conn net.Conn, at, hostname string, config *tls.Config, opportunistic bool) (_ net.Conn, secured bool, _ *Error) {
	tp := textproto.NewConn(conn) // not closed: conn carries on under TLS
	_, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return nil, false, fail("greeting of"+at, phaseConnect, replyError(err))
	}
	ehlo, err := command(tp, 250, "EHLO "+hostname)
	var refused *textproto.Error
	offered := err == nil && hasExtension(ehlo, "STARTTLS")
	if opportunistic && !offered && (err == nil || errors.As(err, &refused) && (refused.Code == 500 || refused.Code == 502)) {
		return &greeted{Conn: conn, pending: []byte(replyLines(220, greeting))}, false, nil
	}
	if errors.As(err, &refused) && (refused.Code == 500 || refused.Code == 502) {
		// A server that knows only HELO has no extensions, STARTTLS included.
		return nil, false, &Error{Op: "STARTTLS with" + at, Kind: KindTLS,
			Err: fmt.Errorf("the server refuses EHLO (%d %s), so it offers no STARTTLS", refused.Code, mailheader.Sanitize(refused.Msg))}
	}
	if err != nil {
		return nil, false, fail("EHLO to"+at, phaseConnect, replyError(err))
	}
	if !offered {
		return nil, false, &Error{Op: "STARTTLS with" + at, Kind: KindTLS, Err: errors.New("the server does not offer STARTTLS")}
	}
	if _, err := command(tp, 220, "STARTTLS"); err != nil {
		return nil, false, fail("STARTTLS with"+at, phaseTLS, replyError(err))
	}
	if n := tp.R.Buffered(); n > 0 {
		// Plain text after the STARTTLS reply would be taken as if it came
		// over TLS (the STARTTLS command injection of CVE-2011-0411).
		return nil, false, &Error{Op: "STARTTLS with" + at, Kind: KindTLS,
			Err: fmt.Errorf("%d octets of plain text followed the STARTTLS reply", n)}
	}
	tc := tls.Client(conn, config)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, false, fail("TLS handshake with"+at, phaseTLS, err)
	}
	return &greeted{Conn: tc, pending: []byte(replyLines(220, greeting))}, true, nil
}

// command sends one command line and reads its reply, which must have the
// code expect.
func command(tp *textproto.Conn, expect int, line string) (string, error) {
	id, err := tp.Cmd("%s", line)
	if err != nil {
		return "", err
	}
	tp.StartResponse(id)
	defer tp.EndResponse(id)
	_, msg, err := tp.ReadResponse(expect)
	return msg, err
}

// replyError turns a textproto reply error into go-smtp's, which fail
// classifies by its code.
func replyError(err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	return err
}

// hasExtension reports whether an EHLO reply (its lines after the first)
// lists the extension keyword ext.
func hasExtension(ehlo, ext string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// replyLines writes a reply as the server sent it: "220-first" lines, then
// "220 last".
func replyLines(code int, msg string) string {
	lines := strings.Split(msg, "\n")
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "%d%s%s\r\n", code, sep, l)
	}
	return b.String()
}

// greeted is a connection whose first reads return pending, then the
// connection's own data.
type greeted struct {
	net.Conn
	pending []byte
}

func (g *greeted) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}
