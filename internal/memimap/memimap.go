// Package memimap serves go-imap's in-memory IMAP server (imapmemserver) on
// a free 127.0.0.1 port: the IMAP server of `mailtriage demo` and of the
// tests that need a fast one (internal/testenv.MemIMAP wraps it for them;
// Dovecot, testenv.StartDovecot, is the real one). It speaks implicit TLS,
// STARTTLS or plaintext, holds users with folders, and can hide what
// imapmemserver would offer, so that a client's fallbacks run: capabilities
// (MOVE, UIDPLUS, NAMESPACE, IDLE, …) and keywords (PERMANENTFLAGS without
// "\*", RFC 9051 7.1).
//
// A hidden MOVE, UIDPLUS or NAMESPACE is not offered at all; capabilities
// go-imap's server always announces (IDLE, UNSELECT, ENABLE, …) are taken
// out of its CAPABILITY lists on the way to the client and still work, as
// with Dovecot's harness (testenv.DovecotOptions.HideCapabilities). It never
// listens beyond the loopback interface.
package memimap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// offered are the capabilities beyond IMAP4rev1 that imapmemserver
// implements and the server offers unless hidden.
var offered = []imap.Cap{imap.CapUIDPlus, imap.CapMove, imap.CapNamespace}

// Options shape the server.
type Options struct {
	// TLS is the server's certificate configuration: implicit TLS, or
	// STARTTLS on a plaintext port when StartTLS is set. Nil: plaintext,
	// with logins allowed.
	TLS      *tls.Config
	StartTLS bool
	// Hide are capabilities the client must not see (imap.CapMove,
	// imap.CapUIDPlus, imap.CapNamespace, imap.CapIdle, …). Capabilities
	// other than MOVE, UIDPLUS and NAMESPACE are hidden in the CAPABILITY
	// lists the server writes, which is not possible under STARTTLS (the
	// server encrypts the connection itself).
	Hide []imap.Cap
	// NoKeywords makes SELECT answer PERMANENTFLAGS with \Seen, \Flagged
	// and \Deleted only, no "\*": the server takes no keywords.
	NoKeywords bool
	// Session, when set, wraps each session (to count commands, to add a
	// SASL mechanism).
	Session func(imapserver.Session) imapserver.Session
}

// Server is a running in-memory IMAP server.
type Server struct {
	// Addr is the host:port it listens on.
	Addr string

	mem  *imapmemserver.Server
	srv  *imapserver.Server
	done chan error
}

// Start listens on a free loopback port and serves until Close.
func Start(ctx context.Context, opt Options) (*Server, error) {
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	for _, c := range offered {
		if !slices.Contains(opt.Hide, c) {
			caps[c] = struct{}{}
		}
	}
	var filtered []string
	for _, c := range opt.Hide {
		if !slices.Contains(offered, c) {
			filtered = append(filtered, string(c))
		}
	}
	if len(filtered) > 0 && opt.StartTLS {
		return nil, fmt.Errorf("memimap: cannot hide %v under STARTTLS", filtered)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("memimap: listen on loopback: %w", err)
	}
	s := &Server{Addr: ln.Addr().String(), mem: imapmemserver.New(), done: make(chan error, 1)}
	srvOpt := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			var sess imapserver.Session = s.mem.NewSession()
			if opt.NoKeywords {
				sess = systemFlagsSession{sess}
			}
			if opt.Session != nil {
				sess = opt.Session(sess)
			}
			return sess, nil, nil
		},
		Caps:         caps,
		Logger:       log.New(io.Discard, "", 0),
		InsecureAuth: opt.TLS == nil,
	}
	switch {
	case opt.TLS != nil && opt.StartTLS:
		srvOpt.TLSConfig = opt.TLS
	case opt.TLS != nil && len(filtered) > 0:
		// The filter must see the plaintext, so TLS ends here, below it;
		// go-imap's server then cannot tell the connection is encrypted.
		srvOpt.InsecureAuth = true
		ln = tls.NewListener(ln, opt.TLS)
	case opt.TLS != nil:
		srvOpt.TLSConfig = opt.TLS
		ln = tls.NewListener(ln, opt.TLS)
	}
	if len(filtered) > 0 {
		ln = &hidingListener{Listener: ln, hide: filtered}
	}
	s.srv = imapserver.New(srvOpt)
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// AddUser adds an account with an empty INBOX and returns it, for seeding
// its folders (User.Create, User.Append).
func (s *Server) AddUser(username, password string) (*imapmemserver.User, error) {
	u := imapmemserver.NewUser(username, password)
	if err := u.Create("INBOX", nil); err != nil {
		return nil, fmt.Errorf("memimap: create INBOX of %s: %w", username, err)
	}
	s.mem.AddUser(u)
	return u, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	if serr := <-s.done; serr != nil && !errors.Is(serr, net.ErrClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// systemFlagsSession answers SELECT with PERMANENTFLAGS that take no
// keywords, and keeps the MOVE and NAMESPACE of the session it wraps.
type systemFlagsSession struct{ imapserver.Session }

func (s systemFlagsSession) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	data, err := s.Session.Select(mailbox, options)
	if data != nil {
		data.PermanentFlags = []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagDeleted}
	}
	return data, err
}

func (s systemFlagsSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	return s.Session.(imapserver.SessionMove).Move(w, numSet, dest)
}

func (s systemFlagsSession) Namespace() (*imap.NamespaceData, error) {
	return s.Session.(imapserver.SessionNamespace).Namespace()
}

// hidingListener hands out connections whose CAPABILITY lists leave hide out.
type hidingListener struct {
	net.Listener
	hide []string
}

func (l *hidingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &hidingConn{Conn: c, w: &capFilter{w: c, hide: l.hide}}, nil
}

type hidingConn struct {
	net.Conn
	w *capFilter
}

func (c *hidingConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// capFilter passes what the server writes through, line by line, taking
// the hidden capabilities out of "* CAPABILITY …" lines and "[CAPABILITY
// …]" response codes (RFC 9051 7.2.2, 7.1). Literals ({n} at a line's end,
// RFC 9051 4.3) pass untouched, so message data is never rewritten.
type capFilter struct {
	w       io.Writer
	hide    []string
	line    []byte
	literal int64 // octets of a literal still to pass
}

func (f *capFilter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if f.literal > 0 {
			k := int(min(f.literal, int64(len(p))))
			if _, err := f.w.Write(p[:k]); err != nil {
				return 0, err
			}
			f.literal -= int64(k)
			p = p[k:]
			continue
		}
		i := slices.Index(p, '\n')
		if i < 0 {
			f.line = append(f.line, p...)
			break
		}
		f.line = append(f.line, p[:i+1]...)
		p = p[i+1:]
		line := f.hideCaps(f.line)
		f.literal = literalSize(line)
		if _, err := f.w.Write(line); err != nil {
			return 0, err
		}
		f.line = f.line[:0]
	}
	return n, nil
}

// hideCaps returns line without the hidden capabilities when it lists
// capabilities: "* CAPABILITY …", or a greeting or tagged "OK [CAPABILITY
// …]".
func (f *capFilter) hideCaps(line []byte) []byte {
	s := string(line)
	var start, end int
	if rest, ok := strings.CutPrefix(s, "* CAPABILITY "); ok {
		start, end = len(s)-len(rest), len(strings.TrimRight(s, "\r\n"))
	} else if i := strings.Index(s, " OK [CAPABILITY "); i >= 0 && !strings.Contains(s[:i], " ") {
		start = i + len(" OK [CAPABILITY ")
		j := strings.IndexByte(s[start:], ']')
		if j < 0 {
			return line
		}
		end = start + j
	} else {
		return line
	}
	var kept []string
	for _, c := range strings.Fields(s[start:end]) {
		if !slices.ContainsFunc(f.hide, func(h string) bool { return strings.EqualFold(h, c) }) {
			kept = append(kept, c)
		}
	}
	return []byte(s[:start] + strings.Join(kept, " ") + s[end:])
}

// literalSize is n when line ends with a literal's announcement "{n}",
// "{n+}" or "~{n}" (RFC 9051 4.3, RFC 7888, RFC 3516), else 0.
func literalSize(line []byte) int64 {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasSuffix(s, "}") {
		return 0
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0
	}
	var n int64
	for _, r := range strings.TrimSuffix(s[i+1:len(s)-1], "+") {
		if r < '0' || r > '9' || n > 1<<40 {
			return 0
		}
		n = n*10 + int64(r-'0')
	}
	return n
}
