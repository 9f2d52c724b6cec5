package forwarder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/mailtriage/mailtriage/forwarder/smtpclient"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// session is one open SMTP session and what a transaction on it needs.
type session struct {
	addr   string // the host:port it is connected to
	c      *smtpclient.Conn
	rename *renamer // the sender's X-Mailtriage-* fields, reused message after message
	idle   time.Time
	reused bool // taken from the idle sessions: its first failure may be the server having closed it meanwhile
}

// maxIdle is how long an idle session is kept for the next cycle; past it
// a new one is opened (servers close idle sessions after a few minutes,
// RFC 5321 §4.5.3.2.7).
const maxIdle = time.Minute

// take returns an idle session, or opens one.
func (f *Forwarder) take(ctx context.Context) (*session, error) {
	f.mu.Lock()
	for len(f.idle) > 0 {
		s := f.idle[len(f.idle)-1]
		f.idle = f.idle[:len(f.idle)-1]
		if time.Since(s.idle) < maxIdle && s.c.Err() == nil {
			f.mu.Unlock()
			s.reused = true
			return s, nil
		}
		s.c.Close()
	}
	f.mu.Unlock()
	return f.dial(ctx)
}

// put keeps s for the next transaction when it is usable.
func (f *Forwarder) put(s *session) {
	if s.c.Err() != nil || s.c.InFlight() > 0 {
		s.c.Close()
		return
	}
	s.idle, s.reused = time.Now(), false
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idle = append(f.idle, s)
}

// dial opens, secures and authenticates a new session: to Address, or to
// the first of Route's hosts that takes it.
func (f *Forwarder) dial(ctx context.Context) (*session, error) {
	if f.cfg.Route == nil {
		return f.dialHop(ctx, Hop{Address: f.cfg.Address, ServerName: f.host, TLS: f.cfg.TLS})
	}
	hops, err := f.cfg.Route(ctx)
	if err != nil {
		return nil, err
	}
	var last *Error
	for _, h := range hops {
		s, err := f.dialHop(ctx, h)
		if err == nil {
			return s, nil
		}
		// A host that cannot be reached, fails TLS or refuses the session
		// (its greeting or EHLO answer) makes way for the next.
		if !errors.As(err, &last) || last.Kind != KindConnect && last.Kind != KindTLS && last.Kind != KindSession || ctx.Err() != nil {
			return nil, err
		}
		f.log.Info("smtp host unusable; trying the next", "host", h.Address, "error", err)
	}
	if last == nil {
		return nil, &Error{Op: "connect to " + f.cfg.Address, Kind: KindConnect, Err: errors.New("no host to try")}
	}
	return nil, last
}

// dialHop opens, secures and authenticates a session with h.
func (f *Forwarder) dialHop(ctx context.Context, h Hop) (*session, error) {
	at := " " + h.Address
	d := net.Dialer{Timeout: f.cfg.Timeout}
	raw, err := d.DialContext(ctx, "tcp", h.Address)
	if err != nil {
		return nil, fail("connect to"+at, phaseConnect, err)
	}
	c, ferr := f.open(ctx, raw, h)
	if ferr != nil {
		raw.Close()
		return nil, ferr
	}
	f.log.Debug("smtp session open", "host", h.Address, "tls", h.TLS, "secured", c.Secured(), "auth", f.cfg.Auth != nil, "ehlo", c.Hello(),
		"pipelining", c.Extensions().Pipelining, "chunking", c.Extensions().Chunking)
	return &session{addr: h.Address, c: c, rename: newRenamer()}, nil
}

// open runs TLS, the greeting, EHLO and AUTH on raw.
func (f *Forwarder) open(ctx context.Context, raw net.Conn, h Hop) (*smtpclient.Conn, *Error) {
	at := " " + h.Address
	tlsConfig := &tls.Config{ServerName: h.ServerName, RootCAs: f.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	opt := smtpclient.Options{Hello: ehloName(ctx, f.resolver, f.cfg.Hostname, raw.LocalAddr()), Timeout: f.cfg.Timeout}
	conn := raw
	switch h.TLS {
	case tlsmode.Implicit:
		tc := tls.Client(raw, tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return nil, fail("TLS handshake with"+at, phaseTLS, err)
		}
		conn = tc
	case tlsmode.StartTLS, tlsmode.Opportunistic:
		opt.TLS, opt.Opportunistic = tlsConfig, h.TLS == tlsmode.Opportunistic
	}
	c, err := smtpclient.New(ctx, conn, opt)
	if err != nil {
		return nil, f.sessionError(h.Address, err)
	}
	if err := f.auth(ctx, c, h.Address); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// sessionError classifies a failure of the start of a session at addr.
func (f *Forwarder) sessionError(addr string, err error) *Error {
	at := " " + addr
	var e *smtpclient.Error
	if !errors.As(err, &e) {
		return fail("session with"+at, phaseConnect, err)
	}
	switch e.Command {
	case "greeting":
		return fail("greeting of"+at, phaseConnect, err)
	case "STARTTLS":
		if e.Code == 0 && !isNetwork(e.Err) {
			return &Error{Op: "STARTTLS with" + at, Kind: KindTLS, Err: e.Err}
		}
		return fail("STARTTLS with"+at, phaseTLS, err)
	}
	if e.Command == smtpclient.EHLOOverTLS {
		return fail("EHLO to"+at, phaseTLS, err)
	}
	return fail(e.Command+" to"+at, phaseConnect, err)
}

// isNetwork reports whether err is a failure of the connection.
func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// auth authenticates with the configured mechanism, when there is one.
func (f *Forwarder) auth(ctx context.Context, c *smtpclient.Conn, addr string) *Error {
	if f.cfg.Auth == nil {
		return nil
	}
	a := f.cfg.Auth
	op := fmt.Sprintf("AUTH %s as %s at %s", orDefault(a.Mechanism, credential.Plain), a.Username, addr)
	mech := strings.ToUpper(string(orDefault(a.Mechanism, credential.Plain)))
	if !c.Extensions().Has(mech) {
		return &Error{Op: op, Kind: KindAuth, Err: fmt.Errorf("server offers AUTH %q, not %s", strings.Join(c.Extensions().Auth, " "), mech)}
	}
	r := f.authOnce(ctx, c)
	var refused *smtpclient.Error
	if inv, ok := a.Secret.(credential.Invalidator); ok && a.Mechanism.OAuth() && errors.As(r.presented, &refused) && refused.Code == 535 {
		// A token this host counts valid was refused (the server's clock
		// runs ahead, or it was revoked): once more with a fresh one.
		inv.Invalidate(r.token)
		r = f.authOnce(ctx, c)
	}
	if r.local != nil {
		return &Error{Op: op, Kind: KindAuth, Err: r.local}
	}
	if r.presented != nil {
		return fail(op, phaseAuth, withholdText(r.presented))
	}
	return nil
}

// authResult is one AUTH attempt: the token presented, and the failure to
// get it (local) or the server's refusal (presented).
type authResult struct {
	token            secret.Secret
	local, presented error
}

func (f *Forwarder) authOnce(ctx context.Context, c *smtpclient.Conn) authResult {
	a := f.cfg.Auth
	if a.Secret == nil {
		return authResult{local: credential.ErrNoSecret}
	}
	tok, err := a.Secret.Get(ctx)
	if err != nil {
		return authResult{local: fmt.Errorf("credential for %s: %w", a.Username, err)}
	}
	sc, err := a.Client(tok)
	if err != nil {
		return authResult{token: tok, local: err}
	}
	return authResult{token: tok, presented: c.Auth(ctx, sc)}
}

// withholdText keeps of an AUTH failure the reply code and the network
// error, not the server's text nor what the SASL client made of a challenge:
// either may quote the credential (credential.Withheld).
func withholdText(err error) error {
	var e *smtpclient.Error
	if !errors.As(err, &e) {
		return errors.New(credential.Withheld)
	}
	if e.Code != 0 {
		return &smtpclient.Error{Permanent: e.Permanent, Code: e.Code, Secode: e.Secode, Command: e.Command, Line: credential.Withheld}
	}
	if isNetwork(e.Err) {
		return e
	}
	return &smtpclient.Error{Command: e.Command, Err: errors.New(credential.Withheld)}
}

// Close ends the idle sessions with QUIT; the next Forward reconnects.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	var first error
	for _, s := range idle {
		ctx, cancel := context.WithTimeout(context.Background(), f.cfg.Timeout)
		if _, err := s.c.Quit(ctx); err != nil && first == nil {
			first = fail("QUIT at "+s.addr, phaseConnect, err)
		}
		cancel()
	}
	return first
}

// Check opens a separate session, authenticates, has the sender and every
// recipient accepted (MAIL and RCPT, no DATA), and quits. It is what
// `mailtriage check` runs; hello is the name it gave in EHLO, "" when it
// did not get that far.
func (f *Forwarder) Check(ctx context.Context) (hello string, err error) {
	s, err := f.dial(ctx)
	if err != nil {
		return "", err
	}
	defer s.c.Close()
	if err := s.c.Probe(ctx, f.cfg.From, f.cfg.To); err != nil {
		return s.c.Hello(), f.txError(s, err, false)
	}
	if _, err := s.c.Quit(ctx); err != nil {
		return s.c.Hello(), fail("QUIT at "+s.addr, phaseConnect, err)
	}
	return s.c.Hello(), nil
}
