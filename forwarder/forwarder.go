// Package forwarder hands clean mail to the helpdesk over SMTP.
//
// It streams each message from its source (the IMAP FETCH literal) into SMTP
// DATA through one 64 KiB buffer, on one connection reused from message to
// message, and prepends the annotation header fields of DESIGN.md §3. In
// redirect mode (the default) the original follows under the annotation and
// a Resent-* block (RFC 5322 §3.6.6); in attach mode a new message carries a
// short summary of the verdict and the original as a message/rfc822 part
// (RFC 2046 §5.2.1). In both, the sender's own X-Mailtriage-* fields are
// renamed X-Original-Mailtriage-* (ownfields.go), so that each of ours is
// there once and only ours.
//
// It follows RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS),
// RFC 4954 (AUTH), RFC 1870 (SIZE), RFC 6152 (8BITMIME) and RFC 6531
// (SMTPUTF8). It never sends over plain text unless told to, never skips
// certificate verification, never holds a whole message in memory, never
// changes the original except to end its lines in CRLF (a line ends at LF, as
// the analyzer reads it; a bare CR goes out as "?": dataWriter) and to rename
// the sender's X-Mailtriage-* fields, and never puts a credential in an error
// or a log line.
//
// Errors are *Error values whose Kind and Temporary method tell the caller
// whether to retry the message later or to flag it.
package forwarder

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/mailheader"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// Modes, as the configuration spells them.
const (
	ModeRedirect = "redirect"
	ModeAttach   = "attach"
)

// DefaultTimeout bounds every network wait when Config.Timeout is 0.
const DefaultTimeout = time.Minute

// DefaultConnections is Config.Connections when 0: what Exchange Online
// allows one mailbox (3 concurrent connections).
const DefaultConnections = 3

// PipelineDepth bounds the transactions in flight on one session: sent,
// their final reply not yet read (RFC 2920 §3.1). With Connections sessions
// at most Connections*PipelineDepth messages may have been accepted by the
// server and not yet reported to the caller: the duplicate window of a
// crash grows by that much.
const PipelineDepth = 8

// bufferSize is DATA's write size (dataWriter).
const bufferSize = 64 << 10

// Config says where and how to forward.
type Config struct {
	Address           string           // host:port
	TLS               tlsmode.Mode     // implicit | starttls (default) | none
	InsecurePlaintext bool             // required with TLS none
	RootCAs           *x509.CertPool   // nil: the system roots
	Auth              *credential.Auth // nil: no AUTH
	From              string           // envelope sender and Resent-From / From
	To                []string         // envelope recipients and Resent-To / To
	Mode              string           // redirect (default) | attach
	Hostname          string           // EHLO name and Message-ID domain; when empty, the machine's FQDN or an address literal (ehloName)
	Timeout           time.Duration    // for every read or write on the connection; DefaultTimeout when 0
	Connections       int              // sessions open at once (forward.smtp.connections); DefaultConnections when 0
	MaxPerMinute      int              // messages in any minute (forward.smtp.max_per_minute); 0: no limit
	MaxPerDay         int              // messages in any 24 hours (forward.smtp.max_per_day); 0: no limit

	// Route, when set, gives the hosts to try in order for each new
	// session instead of Address, which then only names the route in logs
	// and errors (the mx route, package forwarder/mx). A host that cannot
	// be connected to, greets or answers EHLO with an error, or fails TLS
	// is skipped for the next. Route's errors are returned as they are;
	// they should be *Error values.
	Route func(ctx context.Context) ([]Hop, error)
}

// Hop is one host a Route gives: where to connect, the name its
// certificate must carry, and how TLS is required there.
type Hop struct {
	Address    string       // host:port, an IP address or a name
	ServerName string       // verified against the certificate
	TLS        tlsmode.Mode // tlsmode.StartTLS, or tlsmode.Opportunistic: plain text when STARTTLS is not offered
}

// Forwarder sends messages over one SMTP session at a time. It is safe for
// concurrent use; forwards are serialized.
type Forwarder struct {
	cfg      Config
	host     string // server host name, for TLS verification
	log      *slog.Logger
	resolver resolver // for the EHLO name when none is configured

	mu   sync.Mutex
	sess *session // nil when not connected
}

// session is one open SMTP connection.
type session struct {
	addr   string // the host:port it is connected to
	client *smtp.Client
	hello  string // the name we gave in EHLO
	conn   *deadlineConn
	wire   net.Conn    // what go-smtp writes to: conn, or TLS over it
	data   *dataWriter // DATA's encoder, reused message after message
	rename *renamer    // the sender's X-Mailtriage-* fields, reused likewise
	dirty  bool        // a transaction was left open; RSET before the next
}

// New checks cfg and returns a Forwarder. It does not connect: the first
// Forward or Check does.
func New(cfg Config, log *slog.Logger) (*Forwarder, error) {
	host, _, err := net.SplitHostPort(cfg.Address)
	if cfg.Route == nil && (err != nil || host == "") {
		return nil, fmt.Errorf("forwarder: address %q: want host:port", cfg.Address)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = tlsmode.StartTLS
	case tlsmode.Implicit, tlsmode.StartTLS:
	case tlsmode.None:
		if !cfg.InsecurePlaintext {
			return nil, fmt.Errorf("forwarder: tls %q for %s needs insecure_plaintext: true", cfg.TLS, cfg.Address)
		}
	default:
		return nil, fmt.Errorf("forwarder: tls %q for %s: want implicit, starttls or none", cfg.TLS, cfg.Address)
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeRedirect
	case ModeRedirect, ModeAttach:
	default:
		return nil, fmt.Errorf("forwarder: mode %q: want redirect or attach", cfg.Mode)
	}
	if err := checkAddress("from", cfg.From); err != nil {
		return nil, err
	}
	if len(cfg.To) == 0 {
		return nil, errors.New("forwarder: to: no recipient")
	}
	for _, to := range cfg.To {
		if err := checkAddress("to", to); err != nil {
			return nil, err
		}
	}
	if cfg.Hostname != "" && !Qualified(cfg.Hostname) {
		return nil, fmt.Errorf("forwarder: ehlo name %q: want a fully qualified domain name", cfg.Hostname)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.To = append([]string(nil), cfg.To...)
	return &Forwarder{cfg: cfg, host: host, log: log.With("smtp", cfg.Address), resolver: net.DefaultResolver}, nil
}

// checkAddress rejects an empty address or one that would break an SMTP
// command line or a header field.
func checkAddress(key, addr string) error {
	if addr == "" || !strings.Contains(addr, "@") || mailheader.Sanitize(addr) != addr || strings.ContainsAny(addr, " <>,") {
		return fmt.Errorf("forwarder: %s: %q is not a mail address", key, addr)
	}
	return nil
}

// validHostname accepts letters, digits, dots and hyphens.
func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range h {
		if !(c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// Forward sends one message, read from body, with the annotation for v;
// released adds X-Mailtriage-Released: yes. size is the message's size in
// octets (RFC822.SIZE), used for the SIZE check; 0 when unknown. body is
// read once, as it is sent.
//
// The session stays open for the next call; after a completed transaction no
// RSET is needed (RFC 5321 §4.1.1.4), after an aborted one RSET precedes the
// next MAIL. A session found dead (or answering 421) before the message was
// started is reopened once; a failure after the body started flowing is
// returned, and the server never sees the final "." of a message that was
// not completely read. When Forward fails before DATA, body is left unread:
// the caller drains or discards it.
func (f *Forwarder) Forward(ctx context.Context, v analyzer.Verdict, released bool, size int64, body io.Reader) error {
	start := time.Now()
	env := envelope{from: f.cfg.From, to: f.cfg.To}
	n, err := f.transact(ctx, env, func(eightBit bool, idDomain string) content { return f.wrap(v, released, eightBit, idDomain) }, size, body)
	if err == nil {
		f.log.Debug("forwarded", "message_id", v.MessageID, "mode", f.cfg.Mode, "octets", n, "duration", time.Since(start))
	}
	return err
}

// Redirect sends msg to the configured recipients in redirect mode,
// whatever Config.Mode says: fields (complete header fields of ours, such
// as Annotation's, not renamed), the Resent-* block, then msg with its own
// X-Mailtriage-* fields renamed, as Forward sends an original. It is for a
// message of ours that must reach the helpdesk as a customer's would: the
// send test of `mailtriage check`. Errors are *Error values, as Forward's.
func (f *Forwarder) Redirect(ctx context.Context, fields string, msg []byte) error {
	env := envelope{from: f.cfg.From, to: f.cfg.To}
	_, err := f.transact(ctx, env, func(_ bool, idDomain string) content {
		return wrapping{header: fields + resent(f.cfg.From, f.cfg.To, idDomain, time.Now())}
	}, int64(len(msg)), bytes.NewReader(msg))
	return err
}

// Send sends msg, a complete message with its header, over the same
// session as Forward: from is the envelope sender ("" for the null
// reverse-path, RFC 5321 §4.5.5), to the recipients. Errors are *Error
// values, as Forward's.
func (f *Forwarder) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if from != "" {
		if err := checkAddress("from", from); err != nil {
			return err
		}
	}
	if len(to) == 0 {
		return errors.New("forwarder: send: no recipient")
	}
	for _, rcpt := range to {
		if err := checkAddress("to", rcpt); err != nil {
			return err
		}
	}
	_, err := f.transact(ctx, envelope{from: from, to: to}, func(bool, string) content { return whole{} }, int64(len(msg)), bytes.NewReader(msg))
	return err
}

// envelope is one transaction's MAIL FROM and RCPT TO.
type envelope struct {
	from string
	to   []string
}

// content is what a transaction puts around (or in place of) the body it
// reads: the wrapping of a forwarded original, or nothing for a message
// sent whole.
type content interface {
	overhead() int64
	write(w io.Writer, src io.Reader) error
}

// whole sends the body as it is.
type whole struct{}

func (whole) overhead() int64 { return 0 }
func (whole) write(w io.Writer, src io.Reader) error {
	_, err := io.Copy(w, src)
	return err
}

// transact runs one transaction on the open session, opening one when
// needed; compose gives the content once the server's 8BITMIME and the
// session's Message-ID domain are known.
// It returns the octets given to DATA.
func (f *Forwarder) transact(ctx context.Context, env envelope, compose func(eightBit bool, idDomain string) content, size int64, body io.Reader) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for attempt := 0; ; attempt++ {
		reused := f.sess != nil
		if !reused {
			s, err := f.dial(ctx)
			if err != nil {
				return 0, err
			}
			f.sess = s
		}
		started, n, err := f.send(ctx, f.sess, env, compose, size, body)
		if err == nil {
			return n, nil
		}
		if !err.connUsable() {
			f.drop()
		}
		if reused && !started && attempt == 0 && (err.Kind == KindConnect || err.Code == 421) {
			f.log.Info("smtp session closed by the server; reconnecting", "error", err)
			continue
		}
		return n, err
	}
}

// send runs one mail transaction on s. started reports whether body was
// touched; n counts the octets given to DATA.
func (f *Forwarder) send(ctx context.Context, s *session, env envelope, compose func(eightBit bool, idDomain string) content, size int64, body io.Reader) (started bool, n int64, err *Error) {
	release := s.conn.bind(ctx)
	defer release()
	at := " at " + s.addr
	c := s.client

	if s.dirty {
		if err := c.Reset(); err != nil {
			return false, 0, fail("RSET"+at, phaseMail, err)
		}
		s.dirty = false
	}

	eightBit, _ := c.Extension("8BITMIME")
	m := compose(eightBit, messageIDDomain(s.hello, f.cfg.From))
	total := m.overhead()
	if size > 0 {
		total += size
	}
	if limit, ok := c.MaxMessageSize(); ok && limit > 0 && size > 0 && total > int64(limit) {
		return false, 0, &Error{Op: "SIZE check" + at, Kind: KindSize,
			Message: fmt.Sprintf("message of %d octets exceeds the server's limit of %d", total, limit)}
	}

	opts := &smtp.MailOptions{}
	mailPhase := phaseMail
	if size > 0 {
		opts.Size, mailPhase = total, phaseMailSize
	}
	if ok, _ := c.Extension("SMTPUTF8"); ok {
		opts.UTF8 = true
	}
	if e := c.Mail(env.from, opts); e != nil {
		s.dirty = true
		return false, 0, fail("MAIL FROM <"+env.from+">"+at, mailPhase, e)
	}
	s.dirty = true
	for _, to := range env.to {
		if e := c.Rcpt(to, nil); e != nil {
			return false, 0, fail("RCPT TO <"+to+">"+at, phaseRcpt, e)
		}
	}
	w, e := c.Data()
	if e != nil {
		return false, 0, fail("DATA"+at, phaseRcpt, e)
	}

	// The content goes straight to the connection through the session's
	// encoder, not through w; w.Close then sends the end of data and reads
	// the reply (see dataWriter).
	src := &sourceReader{r: body}
	d := s.data
	d.reset(s.wire)
	s.rename.reset(src)
	e = m.write(d, s.rename)
	s.rename.reset(nil)
	if e == nil {
		e = d.finish()
	}
	if src.err != nil {
		// Never finish DATA for a message that was not read completely: the
		// caller's drop closes the connection without the final ".".
		return true, d.n, &Error{Op: "read message body for DATA" + at, Kind: KindTemporary, Err: src.err}
	}
	if e != nil {
		return true, d.n, fail("DATA"+at, phaseContent, e)
	}
	if e := w.Close(); e != nil {
		s.dirty = false
		return true, d.n, fail("end of DATA"+at, phaseContent, e)
	}
	s.dirty = false
	return true, d.n, nil
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
	dc := &deadlineConn{Conn: raw, timeout: f.cfg.Timeout}
	release := dc.bind(ctx)
	defer release()
	s, ferr := f.open(ctx, dc, h)
	if ferr != nil {
		raw.Close()
		return nil, ferr
	}
	return s, nil
}

// open runs the greeting, TLS, EHLO and AUTH on dc. dc enforces the
// timeouts, so go-smtp's own CommandTimeout and SubmissionTimeout do not
// matter.
func (f *Forwarder) open(ctx context.Context, dc *deadlineConn, h Hop) (*session, *Error) {
	at := " " + h.Address
	tlsConfig := &tls.Config{ServerName: h.ServerName, RootCAs: f.cfg.RootCAs, MinVersion: tls.VersionTLS12}
	var wire net.Conn = dc
	hello := ehloName(ctx, f.resolver, f.cfg.Hostname, dc.LocalAddr())
	helloPhase := phaseConnect
	switch h.TLS {
	case tlsmode.Implicit:
		tc := tls.Client(dc, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fail("TLS handshake with"+at, phaseTLS, err)
		}
		wire = tc
	case tlsmode.StartTLS, tlsmode.Opportunistic:
		tc, secured, err := startTLS(ctx, dc, at, hello, tlsConfig, h.TLS == tlsmode.Opportunistic)
		if err != nil {
			return nil, err
		}
		wire = tc
		if secured {
			helloPhase = phaseTLS
		}
	}
	c := smtp.NewClient(wire)
	if err := c.Hello(hello); err != nil {
		return nil, fail("EHLO to"+at, helloPhase, err)
	}
	if err := f.auth(ctx, c); err != nil {
		return nil, err
	}
	f.log.Debug("smtp session open", "host", h.Address, "tls", h.TLS, "auth", f.cfg.Auth != nil, "ehlo", hello)
	return &session{addr: h.Address, client: c, hello: hello, conn: dc, wire: wire, data: newDataWriter(bufferSize), rename: newRenamer()}, nil
}

// auth authenticates with the configured mechanism, when there is one.
func (f *Forwarder) auth(ctx context.Context, c *smtp.Client) *Error {
	if f.cfg.Auth == nil {
		return nil
	}
	a := f.cfg.Auth
	op := fmt.Sprintf("AUTH %s as %s at %s", orDefault(a.Mechanism, credential.Plain), a.Username, f.cfg.Address)
	mech := strings.ToUpper(string(orDefault(a.Mechanism, credential.Plain)))
	if !c.SupportsAuth(mech) {
		_, offered := c.Extension("AUTH")
		return &Error{Op: op, Kind: KindAuth, Err: fmt.Errorf("server offers AUTH %q, not %s", offered, mech)}
	}
	r := f.authOnce(ctx, c)
	var refused *smtp.SMTPError
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

func (f *Forwarder) authOnce(ctx context.Context, c *smtp.Client) authResult {
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
	return authResult{token: tok, presented: c.Auth(sc)}
}

// withholdText keeps of an AUTH failure the reply code and the network
// error, not the server's text nor what the SASL client made of a challenge:
// either may quote the credential (credential.Withheld).
func withholdText(err error) error {
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: credential.Withheld}
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return err
	}
	return errors.New(credential.Withheld)
}

// drop closes the current session without QUIT.
func (f *Forwarder) drop() {
	if f.sess != nil {
		f.sess.client.Close()
		f.sess = nil
	}
}

// Close ends the SMTP session with QUIT; the next Forward reconnects.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sess == nil {
		return nil
	}
	s := f.sess
	f.sess = nil
	if err := s.client.Quit(); err != nil {
		s.client.Close()
		return fail("QUIT at "+s.addr, phaseConnect, err)
	}
	return nil
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
	return s.hello, f.check(ctx, s)
}

// check runs the rest of Check on the new session s.
func (f *Forwarder) check(ctx context.Context, s *session) error {
	release := s.conn.bind(ctx)
	defer release()
	defer s.client.Close()
	at := " at " + s.addr
	if err := s.client.Mail(f.cfg.From, nil); err != nil {
		return fail("MAIL FROM <"+f.cfg.From+">"+at, phaseMail, err)
	}
	for _, to := range f.cfg.To {
		if err := s.client.Rcpt(to, nil); err != nil {
			return fail("RCPT TO <"+to+">"+at, phaseRcpt, err)
		}
	}
	if err := s.client.Quit(); err != nil {
		return fail("QUIT"+at, phaseConnect, err)
	}
	return nil
}
