// Package smtpsink is an SMTP server on the loopback interface that records
// the messages it accepts, for tests and for `mailtriage demo`.
//
// It speaks ESMTP through github.com/emersion/go-smtp (RFC 5321) with
// 8BITMIME (RFC 6152), SIZE (RFC 1870), SMTPUTF8 (RFC 6531), STARTTLS
// (RFC 3207) or implicit TLS (RFC 8314) with a self-signed certificate it
// generates, and AUTH (RFC 4954) with PLAIN (RFC 4616), OAUTHBEARER
// (RFC 7628) and XOAUTH2, PIPELINING (RFC 2920) and CHUNKING (RFC 3030).
// Faults can be injected while it runs: a reply (code, enhanced code,
// text) for EHLO, AUTH, MAIL, RCPT or the end of data, a connection dropped
// in the middle of a message (DATA or BDAT), a delay before every reply.
// With Options.SendAsDenied it refuses a header From other than the
// authenticated user, as Exchange Online does.
//
// It plays servers of the field: without PIPELINING or CHUNKING
// (Options.HidePipelining, Options.HideChunking), with a rate limit
// (Options.RateLimit), refusing service at connect (Options.Greeting554).
// It follows the dialogue on the wire and records what a client did
// wrong there (Sink.Violations) and how it used the server (Sink.Stats:
// connections at once, commands pipelined, BDAT, RSET).
//
// It never relays anything, never listens beyond loopback and never holds
// more than MaxMessageBytes of one message in memory.
package smtpsink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// DefaultMaxMessageBytes is the SIZE limit when Options.MaxMessageBytes is 0.
const DefaultMaxMessageBytes = 64 << 20

// Options configure a sink.
type Options struct {
	TLS             tlsmode.Mode                       // tlsmode.None (default), tlsmode.StartTLS or tlsmode.Implicit
	Username        string                             // when set, AUTH PLAIN, XOAUTH2 and OAUTHBEARER are offered and required before MAIL
	Password        string                             // the password, or the token for XOAUTH2 and OAUTHBEARER
	Verify          func(username, secret string) bool // when set, decides AUTH instead of Password (a token checked with its issuer)
	MaxMessageBytes int64                              // SIZE limit advertised and enforced; DefaultMaxMessageBytes when 0
	DiscardBodies   bool                               // record size and SHA-256 only, not the bytes (for big messages)
	SMTPUTF8        bool                               // advertise SMTPUTF8
	Timeout         time.Duration                      // read and write timeout per command; 1 minute when 0
	Cert            *selfsigned.Cert                   // the TLS certificate; nil: a fresh one for localhost
	Listen          string                             // a loopback host:port to listen on; "127.0.0.1:0" when empty
	// SendAsDenied refuses, at the end of DATA, a message whose header From
	// is not Username, as Exchange Online refuses a From the mailbox may not
	// send as: 554 5.2.252 SendAsDenied (sendAsDenied). It reads the kept
	// bytes: not with DiscardBodies.
	SendAsDenied bool
	// HidePipelining leaves PIPELINING (RFC 2920) out of the EHLO reply,
	// as a server without the extension answers. A client must then wait
	// for each reply before it sends the next command (RFC 2920 §2, RFC
	// 5321 §4.1.1): a command that arrives while a reply to an earlier one
	// is still owed is a violation, "connection 2: MAIL sent before the
	// reply to RCPT". Not with tlsmode.StartTLS (after STARTTLS the wire
	// is encrypted; Start refuses the combination).
	HidePipelining bool
	// HideChunking leaves CHUNKING (RFC 3030) out of the EHLO reply. A
	// BDAT command is then refused with 502 5.5.1, as a server without
	// BDAT refuses an unimplemented command (RFC 5321 §4.2.4), its chunk
	// still read and dropped so the dialogue stays in step; each BDAT is a
	// violation, "connection 1: BDAT without CHUNKING". The refusal ends
	// the transaction (go-smtp forgets MAIL and RCPT). Not with
	// tlsmode.StartTLS.
	HideChunking bool
	// RateLimit throttles message submission across all connections.
	RateLimit RateLimit
	// Greeting554 answers every connection with "554 <domain> No SMTP
	// service here" instead of the 220 greeting (RFC 5321 §3.1), then
	// "503 Bad sequence of commands" to every command but QUIT, which it
	// answers with 221 and closes; it closes too when the client leaves or
	// is silent for Timeout. No session is started: Hellos stays empty.
	Greeting554 bool
}

// RateLimit refuses a mail transaction at MAIL FROM while N messages have
// been accepted in the last Per, on any connection, counting as accepted
// too the transactions already past MAIL FROM and not yet ended (pipelined
// or on other connections): so no window of Per ever holds more than N
// accepted messages. A message counts from its accept time, the end of
// its data, and leaves the window Per later. The zero RateLimit (N == 0)
// limits nothing.
//
// The default reply is 450 4.7.0 with Exchange's wording, "Message
// submission rate for this client has exceeded the configured limit"
// (Exchange Server answers it with 421 4.4.2 when a receive connector's
// MessageRateLimit per minute is exceeded). Gmail's throttling replies
// (support.google.com/a/answer/3726730) are "421 4.7.0 Try again later,
// closing connection." and "450 4.2.1 The user you are trying to contact
// is receiving mail at a rate that prevents additional messages from
// being delivered. ...". With Code 421 the sink closes the connection
// after the reply, as RFC 5321 §3.8 has a server do.
type RateLimit struct {
	N        int               // messages accepted at most in any window of Per; 0: no limit
	Per      time.Duration     // the window; must be > 0 when N > 0
	Code     int               // reply code of a refusal; 450 when 0
	Enhanced smtp.EnhancedCode // RFC 3463 code of the reply; Code's class with .7.0 when zero
	Text     string            // reply text; DefaultRateText when empty
}

// DefaultRateText is the text of a RateLimit refusal, Exchange's wording.
const DefaultRateText = "Message submission rate for this client has exceeded the configured limit"

// Stats count how clients used the sink since Start or Reset.
//
// The counts that come from the wire (BDATCommands, RSETCommands,
// MaxPipelined, Violations) stop at STARTTLS on a tlsmode.StartTLS
// connection: after it the wire is encrypted. With tlsmode.Implicit the
// sink reads inside TLS and they are complete.
type Stats struct {
	Connections   int // connections accepted
	MaxConcurrent int // the most connections open at once
	Transactions  int // MAIL FROM commands accepted: mail transactions begun (RFC 5321 §3.3)
	DATACommands  int // DATA commands answered with 354, as DataCommands
	BDATCommands  int // BDAT commands received (RFC 3030), one per chunk, refused ones included
	RSETCommands  int // RSET commands received
	// MaxPipelined is the largest number of replies a client was owed on
	// one connection when a command arrived, that command's included: 1
	// for a client that waits for every reply, 3 for MAIL, RCPT and DATA
	// sent at once, 5 for the end of data (which is owed a reply too),
	// RSET, MAIL, RCPT and DATA at once.
	MaxPipelined int
	RateRefusals int // transactions refused by RateLimit
	Violations   int // protocol violations, as Sink.Violations lists them
}

// sendAsDenied is the reply of Options.SendAsDenied, worded as Exchange
// Online's (learn.microsoft.com/en-us/exchange/troubleshoot/email-delivery/ndr/non-delivery-reports-in-exchange-online).
func sendAsDenied(user, from string) *smtp.SMTPError {
	return &smtp.SMTPError{
		Code:         554,
		EnhancedCode: smtp.EnhancedCode{5, 2, 252},
		Message:      fmt.Sprintf("SendAsDenied; %s not allowed to send as %s; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied", user, from),
	}
}

// Stage is the SMTP command a fault applies to.
type Stage string

// The stages a reply code can be injected at.
const (
	StageEHLO Stage = "EHLO" // the first EHLO of a connection (and the one after STARTTLS)
	StageAuth Stage = "AUTH" // the end of a successful AUTH exchange: the server's text may echo the client's response
	StageMail Stage = "MAIL"
	StageRcpt Stage = "RCPT"
	StageData Stage = "DATA" // the end of data: the reply to DATA's content, or to BDAT LAST
)

// Fault is an injected failure. The zero Fault injects nothing.
type Fault struct {
	Reject    Stage             // command answered with Code instead of success
	Code      int               // reply code for Reject: 421, 452, 504, 550, 552, ...
	Enhanced  smtp.EnhancedCode // RFC 3463 code of the reply; Code's class with .0.0 when zero
	Text      string            // reply text; "injected fault at STAGE" when empty, "%s" is the client's SASL response (AUTH)
	DropAfter int64             // >0: close the connection, without a reply, after reading this many octets of a message (DATA, or BDAT chunks, also in a chunk's middle)
	Delay     time.Duration     // wait before answering MAIL, RCPT, DATA and the first EHLO
	Times     int               // how many rejections or drops happen before the fault clears; 0 = no limit
}

// Message is one accepted message.
type Message struct {
	From       string   // envelope sender
	To         []string // envelope recipients
	Data       []byte   // the message as received (dot-unstuffed); nil with DiscardBodies
	Size       int64    // octets received
	SHA256     [sha256.Size]byte
	UTF8       bool  // MAIL had SMTPUTF8
	Body8Bit   bool  // MAIL had BODY=8BITMIME
	DeclSize   int64 // MAIL's SIZE= parameter, 0 when absent
	Connection int   // number of the connection it came on, from 1
}

// Sink is a running SMTP server. Its methods are safe for concurrent use.
type Sink struct {
	opt      Options
	server   *smtp.Server
	listener net.Listener
	pool     *x509.CertPool
	done     chan error

	closeOnce sync.Once // go-smtp's Server.Close panics when called twice at once
	closeErr  error

	mu         sync.Mutex
	messages   []Message
	count      int
	dataCmds   int
	conns      map[string]int // remote address -> connection number, from 1
	hellos     []string       // the EHLO names, one per session (STARTTLS starts a second)
	fault      Fault
	stats      Stats
	violations []string              // the first maxViolations
	accepted   []time.Time           // accept times of the messages in RateLimit's window
	reserved   int                   // transactions past MAIL FROM under RateLimit, not yet ended
	open       map[net.Conn]struct{} // the connections open now, as accepted (Greeting554's too, which go-smtp does not see)
}

// maxViolations bounds the violations kept; Stats.Violations counts them all.
const maxViolations = 1000

// Start listens on a free port of 127.0.0.1 and serves until Close or until
// ctx ends.
func Start(ctx context.Context, opt Options) (*Sink, error) {
	if opt.MaxMessageBytes == 0 {
		opt.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opt.Timeout == 0 {
		opt.Timeout = time.Minute
	}
	if (opt.HidePipelining || opt.HideChunking) && opt.TLS == tlsmode.StartTLS {
		return nil, errors.New("smtpsink: HidePipelining and HideChunking need TLS none or implicit: after STARTTLS the EHLO reply is encrypted on the wire")
	}
	if rl := &opt.RateLimit; rl.N != 0 {
		if rl.N < 0 || rl.Per <= 0 {
			return nil, fmt.Errorf("smtpsink: RateLimit %d per %v: want N > 0 and Per > 0", rl.N, rl.Per)
		}
		if rl.Code == 0 {
			rl.Code = 450
		}
		if rl.Enhanced == (smtp.EnhancedCode{}) {
			rl.Enhanced = smtp.EnhancedCode{rl.Code / 100, 7, 0}
		}
		if rl.Text == "" {
			rl.Text = DefaultRateText
		}
	}
	s := &Sink{opt: opt, done: make(chan error, 1), conns: make(map[string]int), open: make(map[net.Conn]struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.localhost"
	srv.MaxMessageBytes = opt.MaxMessageBytes
	srv.MaxRecipients = 100
	srv.ReadTimeout = opt.Timeout
	srv.WriteTimeout = opt.Timeout
	srv.EnableSMTPUTF8 = opt.SMTPUTF8
	srv.ErrorLog = log.New(io.Discard, "", 0)

	if opt.Listen == "" {
		opt.Listen = "127.0.0.1:0"
	}
	if host, _, err := net.SplitHostPort(opt.Listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return nil, fmt.Errorf("smtpsink: listen %q: want a loopback IP address and port", opt.Listen)
	}
	var lc net.ListenConfig
	tcp, err := lc.Listen(ctx, "tcp", opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("smtpsink: listen on %s: %w", opt.Listen, err)
	}
	var l net.Listener = tcp
	switch opt.TLS {
	case "", tlsmode.None:
		srv.AllowInsecureAuth = true
	case tlsmode.StartTLS, tlsmode.Implicit:
		cert := opt.Cert
		if cert == nil {
			if cert, err = selfsigned.Loopback("mailtriage smtpsink"); err != nil {
				tcp.Close()
				return nil, fmt.Errorf("smtpsink: %w", err)
			}
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		s.pool = cert.RootCAs
		if opt.TLS == tlsmode.Implicit {
			// The sink follows the dialogue inside TLS: go-smtp is given
			// the plaintext side, and told that AUTH is safe on it.
			l = tls.NewListener(tcp, cfg)
			srv.AllowInsecureAuth = true
		} else {
			srv.TLSConfig = cfg
		}
	default:
		tcp.Close()
		return nil, fmt.Errorf("smtpsink: unknown TLS mode %q", opt.TLS)
	}
	l = &countingListener{Listener: l, sink: s}
	s.server, s.listener = srv, l
	go func() { s.done <- srv.Serve(l) }()
	context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string { return s.listener.Addr().String() }

// RootCAs holds the sink's self-signed certificate; nil without TLS.
func (s *Sink) RootCAs() *x509.CertPool { return s.pool }

// Messages returns a copy of the accepted messages, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Count is the number of accepted messages.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// DataCommands is the number of DATA commands the sink answered with 354,
// whether or not the message was then accepted.
func (s *Sink) DataCommands() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dataCmds
}

// Connections is the number of connections accepted so far.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.Connections
}

// Stats returns the counts since Start or the last Reset.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.DATACommands = s.dataCmds
	return st
}

// Violations are the protocol violations clients committed, oldest first,
// each naming its connection (numbered as Message.Connection), the first
// 1000 of them:
//
//   - with HidePipelining, a command sent while a reply to an earlier one
//     was owed: "connection 2: MAIL sent before the reply to RCPT";
//   - with HideChunking, "connection 1: BDAT without CHUNKING";
//   - always, anything sent before the reply to a command that must end a
//     pipelined group (RFC 2920 §3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT,
//     NOOP; STARTTLS and AUTH, extensions' commands, too; and before the
//     greeting): "connection 1: message content sent before the reply to
//     DATA", "connection 3: MAIL sent before the reply to EHLO".
//
// A violation is only seen when the sink read the octets before it wrote
// the reply; one right at the moment of the reply can go unseen, but a
// client that waits for its replies is never reported.
func (s *Sink) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.violations)
}

// Hellos are the names clients gave in EHLO, one per session: a STARTTLS
// connection has two, before and after TLS.
func (s *Sink) Hellos() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hellos)
}

// SetFault replaces the injected fault; Fault{} clears it.
func (s *Sink) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Reset forgets the recorded messages, counters, stats, violations and the
// messages in RateLimit's window.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages, s.count, s.dataCmds, s.hellos = nil, 0, 0, nil
	s.stats, s.violations, s.accepted = Stats{MaxConcurrent: len(s.open)}, nil, nil
	clear(s.conns)
}

// Close stops the server and closes every connection. It may be called
// more than once, also concurrently with the end of Start's context.
//
// The connections are closed here, under go-smtp, and go-smtp is then
// shut down, waiting for its handlers to see them closed: go-smtp's own
// Close closes a connection while its handler may still be reading a BDAT
// chunk, and clears the chunk's pipe unsynchronized (a data race).
func (s *Sink) Close() error {
	s.closeOnce.Do(func() {
		err := s.listener.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if serr := s.server.Shutdown(ctx); errors.Is(serr, context.DeadlineExceeded) {
			s.server.Close()
		}
		if serr := <-s.done; err == nil && serr != nil && !errors.Is(serr, net.ErrClosed) && !errors.Is(serr, smtp.ErrServerClosed) {
			err = serr
		}
		if err != nil {
			s.closeErr = fmt.Errorf("smtpsink: close %s: %w", s.Addr(), err)
		}
	})
	return s.closeErr
}

// delay returns the configured delay.
func (s *Sink) delay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault.Delay
}

// trigger returns the reply of a fault that rejects at stage, consuming one
// of its Times, or nil.
func (s *Sink) trigger(stage Stage) *smtp.SMTPError {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f.Reject != stage || f.Code == 0 {
		return nil
	}
	s.consume()
	if f.Enhanced == (smtp.EnhancedCode{}) {
		f.Enhanced = smtp.EnhancedCode{f.Code / 100, 0, 0}
	}
	if f.Text == "" {
		f.Text = "injected fault at " + string(stage)
	}
	return &smtp.SMTPError{Code: f.Code, EnhancedCode: f.Enhanced, Message: f.Text}
}

// dropAfter returns the DATA drop point and consumes one of its Times.
func (s *Sink) dropAfter() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.fault.DropAfter
	if n > 0 {
		s.consume()
	}
	return n
}

// consume counts one use of the fault; s.mu is held.
func (s *Sink) consume() {
	if s.fault.Times == 0 {
		return
	}
	s.fault.Times--
	if s.fault.Times == 0 {
		s.fault = Fault{Delay: s.fault.Delay}
	}
}

// violation records a protocol violation.
func (s *Sink) violation(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Violations++
	if len(s.violations) < maxViolations {
		s.violations = append(s.violations, v)
	}
}

// tally changes the stats with f.
func (s *Sink) tally(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// pipelined notes a command that arrived when n replies were owed, its own
// included.
func (s *Sink) pipelined(n int) {
	s.tally(func(st *Stats) { st.MaxPipelined = max(st.MaxPipelined, n) })
}

// opened numbers a new connection c and counts it open.
func (s *Sink) opened(c net.Conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Connections++
	n := s.stats.Connections // numbered in order, a reused client port too
	s.conns[c.RemoteAddr().String()] = n
	s.open[c] = struct{}{}
	s.stats.MaxConcurrent = max(s.stats.MaxConcurrent, len(s.open))
	return n
}

// closed counts the connection c closed.
func (s *Sink) closed(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
}

// countingListener numbers the connections it accepts and gives go-smtp
// each as a wireConn, or answers it with 554 itself (Options.Greeting554).
type countingListener struct {
	net.Listener
	sink *Sink
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.sink.opened(c)
		if !l.sink.opt.Greeting554 {
			return newWireConn(c, l.sink, n), nil
		}
		go l.sink.refuse(c)
	}
}

// refuse answers c as Options.Greeting554 says.
func (s *Sink) refuse(c net.Conn) {
	defer func() {
		c.Close()
		s.closed(c)
	}()
	c.SetDeadline(time.Now().Add(s.opt.Timeout))
	if _, err := fmt.Fprintf(c, "554 %s No SMTP service here\r\n", s.server.Domain); err != nil {
		return
	}
	lines := bufio.NewScanner(c)
	for lines.Scan() {
		c.SetDeadline(time.Now().Add(s.opt.Timeout))
		if strings.EqualFold(strings.TrimSpace(lines.Text()), "QUIT") {
			io.WriteString(c, "221 Bye\r\n")
			return
		}
		if _, err := io.WriteString(c, "503 Bad sequence of commands\r\n"); err != nil {
			return
		}
	}
}

// newSession starts a session: on the first EHLO, and again after STARTTLS.
func (s *Sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	time.Sleep(s.delay())
	if e := s.trigger(StageEHLO); e != nil {
		return nil, e
	}
	s.mu.Lock()
	n := s.conns[c.Conn().RemoteAddr().String()]
	s.hellos = append(s.hellos, c.Hostname())
	s.mu.Unlock()
	w, _ := c.Conn().(*wireConn)
	if tc, ok := c.Conn().(*tls.Conn); ok { // after STARTTLS
		w, _ = tc.NetConn().(*wireConn)
	}
	return &session{sink: s, conn: c, wire: w, number: n}, nil
}

// session is one SMTP connection's transaction state.
type session struct {
	sink     *Sink
	conn     *smtp.Conn
	wire     *wireConn
	number   int
	authed   bool
	msg      Message
	reserved bool // holds one of RateLimit's places; under sink.mu
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.sink.opt.Username == "" {
		return nil
	}
	return []string{sasl.Plain, xoauth2, sasl.OAuthBearer}
}

// xoauth2 is the mechanism of Gmail and Microsoft 365, which go-sasl lacks.
const xoauth2 = "XOAUTH2"

// check accepts the configured user and password (or token) and marks the
// session authenticated.
func (ss *session) check(username, password string) bool {
	ok := username == ss.sink.opt.Username && password == ss.sink.opt.Password
	if v := ss.sink.opt.Verify; v != nil {
		ok = username == ss.sink.opt.Username && v(username, password)
	}
	if !ok {
		return false
	}
	ss.authed = true
	return true
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	srv, err := ss.mechanism(mech)
	if err != nil {
		return nil, err
	}
	return &echoingServer{Server: srv, sink: ss.sink}, nil
}

// echoingServer answers the client's response with the AUTH fault's reply
// when there is one, its text quoting the response as a careless server's
// does; with Code 334 the reply is an error challenge (RFC 7628 §3.2.2),
// after which the exchange fails.
type echoingServer struct {
	sasl.Server
	sink       *Sink
	challenged bool
}

func (e *echoingServer) Next(response []byte) ([]byte, bool, error) {
	if e.challenged {
		return nil, false, smtp.ErrAuthFailed
	}
	if response != nil {
		if r := e.sink.trigger(StageAuth); r != nil {
			if strings.Contains(r.Message, "%s") {
				r.Message = fmt.Sprintf(r.Message, base64.StdEncoding.EncodeToString(response))
			}
			if r.Code == 334 {
				e.challenged = true
				return []byte(r.Message), false, nil
			}
			return nil, false, r
		}
	}
	return e.Server.Next(response)
}

// mechanism returns the SASL server of mech.
func (ss *session) mechanism(mech string) (sasl.Server, error) {
	if ss.sink.opt.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if (identity != "" && identity != username) || !ss.check(username, password) {
				return smtp.ErrAuthFailed
			}
			return nil
		}), nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if !ss.check(o.Username, o.Token) {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		}), nil
	case xoauth2:
		return credential.XOAuth2Server(func(username, token string) error {
			if !ss.check(username, token) {
				return smtp.ErrAuthFailed
			}
			return nil
		}), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	time.Sleep(ss.sink.delay())
	if ss.sink.opt.Username != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if e := ss.sink.trigger(StageMail); e != nil {
		return e
	}
	if e := ss.sink.reserve(ss); e != nil {
		if e.Code == 421 && ss.wire != nil {
			ss.wire.closeAfterReply()
		}
		return e
	}
	ss.sink.tally(func(st *Stats) { st.Transactions++ })
	ss.msg = Message{From: from, Connection: ss.number}
	if opts != nil {
		ss.msg.UTF8 = opts.UTF8
		ss.msg.Body8Bit = opts.Body == smtp.Body8BitMIME
		ss.msg.DeclSize = opts.Size
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	time.Sleep(ss.sink.delay())
	if e := ss.sink.trigger(StageRcpt); e != nil {
		return e
	}
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

// errNoBDAT refuses BDAT with Options.HideChunking, in go-smtp's words for
// a command it does not implement.
var errNoBDAT = &smtp.SMTPError{Code: 502, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "BDAT command not implemented"}

// Data takes a message: after DATA's 354, or the chunks of BDAT, which
// go-smtp pipes to r, the reply to the chunk it is reading being the
// error Data returns early, and to BDAT LAST the error it returns at the
// end.
func (ss *session) Data(r io.Reader) error {
	_, bdat := r.(*io.PipeReader)
	if bdat && ss.sink.opt.HideChunking {
		return errNoBDAT // go-smtp drops the rest of the chunk
	}
	if !bdat {
		ss.sink.mu.Lock()
		ss.sink.dataCmds++
		ss.sink.mu.Unlock()
	}
	time.Sleep(ss.sink.delay())
	if n := ss.sink.dropAfter(); n > 0 {
		// Read part of the message, then hang up without a reply.
		io.CopyN(io.Discard, r, n)
		ss.conn.Conn().Close()
		return errors.New("smtpsink: connection dropped by fault injection")
	}
	rec := recorder{h: sha256.New(), keep: !ss.sink.opt.DiscardBodies}
	if _, err := io.Copy(&rec, r); err != nil {
		return err // go-smtp answers ErrDataTooLarge with 552
	}
	if e := ss.sink.trigger(StageData); e != nil {
		return e
	}
	if from := headerFrom(rec.data); ss.sink.opt.SendAsDenied && !strings.EqualFold(from, ss.sink.opt.Username) {
		return sendAsDenied(ss.sink.opt.Username, from)
	}
	m := ss.msg
	m.Data, m.Size = rec.data, rec.n
	copy(m.SHA256[:], rec.h.Sum(nil))
	ss.sink.mu.Lock()
	ss.sink.messages = append(ss.sink.messages, m)
	ss.sink.count++
	if ss.reserved {
		ss.reserved = false
		ss.sink.reserved--
		ss.sink.accepted = append(ss.sink.accepted, time.Now())
	}
	ss.sink.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.msg = Message{}
	ss.sink.release(ss)
}

func (ss *session) Logout() error {
	ss.sink.release(ss)
	return nil
}

// reserve takes one of RateLimit's places for the transaction ss begins,
// or returns the refusal when there is none.
func (s *Sink) reserve(ss *session) *smtp.SMTPError {
	rl := s.opt.RateLimit
	if rl.N == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.reserved { // a second MAIL in the transaction
		return nil
	}
	now := time.Now()
	i := 0
	for i < len(s.accepted) && now.Sub(s.accepted[i]) >= rl.Per {
		i++
	}
	s.accepted = s.accepted[i:]
	if len(s.accepted)+s.reserved >= rl.N {
		s.stats.RateRefusals++
		return &smtp.SMTPError{Code: rl.Code, EnhancedCode: rl.Enhanced, Message: rl.Text}
	}
	s.reserved++
	ss.reserved = true
	return nil
}

// release gives back the place of a transaction that ended unaccepted.
func (s *Sink) release(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss.reserved {
		ss.reserved = false
		s.reserved--
	}
}

// headerFrom is the address of the From field of msg, "" when it has
// none or it does not parse.
func headerFrom(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	a, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		return ""
	}
	return a.Address
}

// recorder counts, hashes and optionally keeps what it is written.
type recorder struct {
	h    hash.Hash
	keep bool
	data []byte
	n    int64
}

func (r *recorder) Write(p []byte) (int, error) {
	r.h.Write(p)
	r.n += int64(len(p))
	if r.keep {
		r.data = append(r.data, p...)
	}
	return len(p), nil
}
