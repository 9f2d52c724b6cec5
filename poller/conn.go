package poller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// Sentinel errors of the IMAP session.
var (
	// ErrPlaintext: TLS "none" without InsecurePlaintext.
	ErrPlaintext = errors.New("plaintext IMAP needs insecure_plaintext: true")
	// ErrNoMechanism: the server offers no way to log in with the configured mechanism.
	ErrNoMechanism = errors.New("server offers no matching login mechanism")
	// ErrGone: a message vanished between SEARCH and FETCH (another client expunged it).
	ErrGone = errors.New("message no longer in the folder")
)

// conn is one logged-in IMAP session. Every command runs under a deadline:
// when it passes, or the caller's context ends, the connection is closed,
// which fails the command in hand and every later one.
type conn struct {
	c       *imapclient.Client
	guard   *nestingGuard // what the client reads
	caps    imap.CapSet
	timeout time.Duration // per command
	body    time.Duration // per streamed body
}

// dial connects, checks the certificate (always), logs in and reads the
// capabilities. handler receives unsolicited updates (IDLE); it may be nil.
// An OAuth token the server refuses although this host counts it valid
// (the server's clock runs ahead, the grant was revoked) is handed back to
// its source, and the login tried once more on a new connection with a
// fresh token: go-sasl's OAUTHBEARER client leaves the refused
// AUTHENTICATE unanswered, so the first connection is done for.
func (p *Poller) dial(ctx context.Context, handler *imapclient.UnilateralDataHandler) (*conn, error) {
	c, presented, err := p.connect(ctx, handler)
	inv, ok := p.mb.IMAP.Auth.Secret.(credential.Invalidator)
	if err != nil && ok && p.mb.IMAP.Auth.Mechanism.OAuth() && tokenRefused(err) {
		p.log.Info("IMAP server refused the access token; fetching a new one", "server", p.mb.IMAP.Address)
		inv.Invalidate(presented)
		c, _, err = p.connect(ctx, handler)
	}
	return c, err
}

// tokenRefused reports whether a login failed on the credential itself: a
// NO to AUTHENTICATE, or an OAUTHBEARER error challenge (RFC 7628 §3.2.2).
func tokenRefused(err error) bool {
	var no *imap.Error
	var bearer *sasl.OAuthBearerError
	return errors.As(err, &bearer) || errors.As(err, &no) && no.Type == imap.StatusResponseTypeNo
}

// connect is one attempt of dial; it returns the secret the login
// presented.
func (p *Poller) connect(ctx context.Context, handler *imapclient.UnilateralDataHandler) (*conn, secret.Secret, error) {
	cfg := p.mb.IMAP
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, secret.Secret{}, fmt.Errorf("imap address %q: %w", cfg.Address, err)
	}
	if cfg.TLS == tlsmode.None && !cfg.InsecurePlaintext {
		return nil, secret.Secret{}, fmt.Errorf("connect to %s: %w", cfg.Address, ErrPlaintext)
	}
	serverName := cfg.ServerName
	if serverName == "" {
		serverName = host
	}
	opts := &imapclient.Options{
		TLSConfig: &tls.Config{
			RootCAs:    cfg.RootCAs,
			ServerName: serverName,
			MinVersion: tls.VersionTLS12,
		},
		UnilateralDataHandler: handler,
	}

	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(dctx, "tcp", cfg.Address)
	if err != nil {
		return nil, secret.Secret{}, fmt.Errorf("connect to %s: %w", cfg.Address, err)
	}
	stop := context.AfterFunc(dctx, func() { raw.Close() })
	var c *imapclient.Client
	var guard *nestingGuard
	switch cfg.TLS {
	case tlsmode.Implicit:
		tc := tls.Client(raw, opts.TLSConfig)
		if err = tc.HandshakeContext(dctx); err == nil {
			guard = guardNesting(tc)
			c = imapclient.New(guard, opts)
			err = c.WaitGreeting()
		}
	case tlsmode.StartTLS:
		var tc *tls.Conn
		if tc, err = startTLS(dctx, raw, opts.TLSConfig); err == nil {
			guard = guardNesting(afterStartTLS(tc))
			c = imapclient.New(guard, opts)
			err = c.WaitGreeting()
		}
	case tlsmode.None:
		guard = guardNesting(raw)
		c = imapclient.New(guard, opts)
		err = c.WaitGreeting()
	default:
		err = fmt.Errorf("unknown tls mode %q", cfg.TLS)
	}
	if !stop() {
		err = fmt.Errorf("%w (%w)", context.Cause(dctx), err)
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		raw.Close()
		return nil, secret.Secret{}, fmt.Errorf("connect to %s (%s): %w", cfg.Address, cfg.TLS, err)
	}

	s := &conn{c: c, guard: guard, timeout: cfg.CommandTimeout, body: cfg.BodyTimeout}
	presented, err := s.login(ctx, cfg.Auth)
	if err != nil {
		c.Close()
		return nil, presented, fmt.Errorf("log in to %s as %s: %w", cfg.Address, cfg.Auth.Username, err)
	}
	if err := s.do(ctx, func() error {
		s.caps = c.Caps()
		if s.caps == nil {
			return errors.New("no CAPABILITY answer")
		}
		return nil
	}); err != nil {
		c.Close()
		return nil, presented, fmt.Errorf("capabilities of %s: %w", cfg.Address, err)
	}
	return s, presented, nil
}

// do runs one command exchange under the command timeout.
func (s *conn) do(ctx context.Context, f func() error) error {
	return s.within(ctx, s.timeout, f)
}

// within runs f; if ctx ends or d passes first, the connection is closed so
// that f returns, and the context's cause is returned.
func (s *conn) within(ctx context.Context, d time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	err := f()
	if !stop() {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return nestingError(s.guard, err)
}

// login authenticates: PLAIN and LOGIN through AUTHENTICATE when the server
// offers the mechanism, else through the LOGIN command; XOAUTH2 and
// OAUTHBEARER only through AUTHENTICATE (RFC 4959 SASL-IR when offered).
// It returns the secret it presented.
func (s *conn) login(ctx context.Context, auth credential.Auth) (secret.Secret, error) {
	mech := auth.Mechanism
	if mech == "" {
		mech = credential.Plain
	}
	var caps imap.CapSet
	if err := s.do(ctx, func() error { caps = s.c.Caps(); return nil }); err != nil {
		return secret.Secret{}, err
	}
	offered := caps.Has(imap.AuthCap(strings.ToUpper(string(mech))))
	if !offered && (mech.OAuth() || caps.Has(imap.CapLoginDisabled)) {
		return secret.Secret{}, fmt.Errorf("%s: %w", strings.ToUpper(string(mech)), ErrNoMechanism)
	}
	if auth.Secret == nil {
		return secret.Secret{}, credential.ErrNoSecret
	}
	pw, err := auth.Secret.Get(ctx)
	if err != nil {
		return pw, fmt.Errorf("credential for %s: %w", auth.Username, err)
	}
	if !offered {
		return pw, s.do(ctx, func() error { return withholdText(s.c.Login(auth.Username, pw.Reveal()).Wait()) })
	}
	client, err := auth.Client(pw)
	if err != nil {
		return pw, err
	}
	return pw, s.do(ctx, func() error { return withholdText(s.c.Authenticate(client)) })
}

// oauthErrorCode is the shape of an RFC 6749 §5.2 error code.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// withholdText keeps of a refused login the server's response type and code
// (NO [AUTHENTICATIONFAILED]), an OAUTHBEARER error challenge's status when
// it has the shape of an error code (RFC 7628 §3.2.2) and a network error, not the
// server's text nor what else the SASL client made of a challenge: either
// may quote the credential (credential.Withheld).
func withholdText(err error) error {
	var ie *imap.Error
	var bearer *sasl.OAuthBearerError
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return &imap.Error{Type: ie.Type, Code: ie.Code, Text: credential.Withheld}
	case errors.As(err, &bearer):
		// The status is an RFC 6749 error code such as invalid_token; a
		// server may put anything in the other members.
		status := "invalid_token"
		if oauthErrorCode.MatchString(bearer.Status) {
			status = bearer.Status
		}
		return &sasl.OAuthBearerError{Status: status}
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return err
	}
	return errors.New(credential.Withheld)
}

// logout ends the session politely and closes the connection.
func (s *conn) logout(ctx context.Context) {
	_ = s.do(ctx, func() error { return s.c.Logout().Wait() })
	s.c.Close()
}

// selectFolder opens folder read-write (or read-only with EXAMINE).
func (s *conn) selectFolder(ctx context.Context, folder string, readOnly bool) (*imap.SelectData, error) {
	var data *imap.SelectData
	err := s.do(ctx, func() error {
		var err error
		data, err = s.c.Select(folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", folder, err)
	}
	return data, nil
}

// status returns folder's UIDVALIDITY and UIDNEXT without selecting it.
func (s *conn) status(ctx context.Context, folder string) (*imap.StatusData, error) {
	var data *imap.StatusData
	err := s.do(ctx, func() error {
		var err error
		data, err = s.c.Status(folder, &imap.StatusOptions{UIDNext: true, UIDValidity: true}).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", folder, err)
	}
	return data, nil
}

// exists reports whether folder is listed.
func (s *conn) exists(ctx context.Context, folder string) (bool, error) {
	var found bool
	err := s.do(ctx, func() error {
		list, err := s.c.List("", folder, nil).Collect()
		for _, l := range list {
			if l.Mailbox == folder && !slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) {
				found = true
			}
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("list %s: %w", folder, err)
	}
	return found, nil
}

// ensure creates folder when it is missing; it reports whether it created it.
func (s *conn) ensure(ctx context.Context, folder string) (bool, error) {
	ok, err := s.exists(ctx, folder)
	if err != nil || ok {
		return false, err
	}
	err = s.do(ctx, func() error { return s.c.Create(folder, nil).Wait() })
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeAlreadyExists {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create %s: %w", folder, err)
	}
	return true, nil
}

// search returns the UIDs of the selected folder above after, ascending.
func (s *conn) search(ctx context.Context, folder string, after uint32) ([]imap.UID, error) {
	var uids []imap.UID
	err := s.do(ctx, func() error {
		set := imap.UIDSet{imap.UIDRange{Start: imap.UID(after + 1), Stop: 0}}
		data, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
		if err != nil {
			return err
		}
		// "n:*" also matches the highest UID when it is below n (RFC 9051 6.4.4).
		for _, uid := range data.AllUIDs() {
			if uint32(uid) > after {
				uids = append(uids, uid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("search %s above uid %d: %w", folder, after, err)
	}
	slices.Sort(uids)
	return uids, nil
}

// fetch runs one FETCH whose results are small (facts, samples) and
// collects them.
func (s *conn) fetch(ctx context.Context, uids []imap.UID, opts *imap.FetchOptions) ([]*imapclient.FetchMessageBuffer, error) {
	var msgs []*imapclient.FetchMessageBuffer
	err := s.do(ctx, func() error {
		var err error
		msgs, err = s.c.Fetch(imap.UIDSetNum(uids...), opts).Collect()
		return err
	})
	return msgs, err
}

// uidOf returns the UID of message seq of the selected folder.
func (s *conn) uidOf(ctx context.Context, seq uint32) (imap.UID, error) {
	var uid imap.UID
	err := s.do(ctx, func() error {
		bufs, err := s.c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{UID: true}).Collect()
		for _, b := range bufs {
			if b.SeqNum == seq {
				uid = b.UID
			}
		}
		return err
	})
	if err == nil && uid == 0 {
		err = fmt.Errorf("no message %d: %w", seq, ErrGone)
	}
	return uid, err
}

// bodyStream is one UID FETCH BODY.PEEK[] of several messages, read one
// literal at a time: range over All, then ask Err, as with bufio.Scanner.
type bodyStream struct {
	s    *conn
	ctx  context.Context
	uids []imap.UID
	err  error
}

// streamBodies prepares the FETCH of the bodies of uids; it is sent when
// the loop over All starts.
func (s *conn) streamBodies(ctx context.Context, uids []imap.UID) *bodyStream {
	return &bodyStream{s: s, ctx: ctx, uids: uids}
}

// All yields each message's UID and literal as it arrives, never holding
// a body whole; a literal must be read before the next iteration, and
// leaving the loop early drains the rest unread. Each message gets the
// body timeout anew. The FETCH is drained even when the loop's body
// panics, so that the session stays usable (imapclient's reader waits for
// each literal to be consumed).
func (b *bodyStream) All() iter.Seq2[imap.UID, io.Reader] {
	return func(yield func(imap.UID, io.Reader) bool) {
		b.err = b.s.fetchBodies(b.ctx, b.uids, yield)
	}
}

// Err is the FETCH's error, once the loop over All is done.
func (b *bodyStream) Err() error { return b.err }

// fetchBodies runs the FETCH of a bodyStream, handing each literal to
// yield until it returns false.
func (s *conn) fetchBodies(ctx context.Context, uids []imap.UID, yield func(uid imap.UID, body io.Reader) bool) (err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(s.body, func() { cancel(context.DeadlineExceeded) })
	defer watchdog.Stop()
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	defer func() {
		if !stop() {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		err = nestingError(s.guard, err)
	}()

	cmd := s.c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{
		UID:         true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	defer func() {
		if cerr := cmd.Close(); err == nil {
			err = cerr
		}
	}()
	more := true
	for msg := cmd.Next(); msg != nil && more; msg = cmd.Next() {
		var uid imap.UID
		for item := msg.Next(); item != nil && more; item = msg.Next() {
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = item.UID
			case imapclient.FetchItemDataBodySection:
				if item.Literal != nil && uid != 0 {
					watchdog.Reset(s.body)
					more = yield(uid, item.Literal)
				}
			}
		}
	}
	return nil
}

// broken reports whether the connection has died.
func (s *conn) broken() bool {
	select {
	case <-s.c.Closed():
		return true
	default:
		return false
	}
}

// store adds flags to uids, silently.
func (s *conn) store(ctx context.Context, uids imap.UIDSet, flags []imap.Flag) error {
	if len(flags) == 0 || len(uids) == 0 {
		return nil
	}
	return s.do(ctx, func() error {
		return s.c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close()
	})
}

// expunge removes exactly uids (RFC 4315 UID EXPUNGE); callers check UIDPLUS.
func (s *conn) expunge(ctx context.Context, uids imap.UIDSet) error {
	return s.do(ctx, func() error { return s.c.UIDExpunge(uids).Close() })
}

// move moves uids to dest with MOVE; callers check the capability, since
// imapclient's own fallback ends in a plain EXPUNGE.
func (s *conn) move(ctx context.Context, uids imap.UIDSet, dest string) error {
	return s.do(ctx, func() error {
		_, err := s.c.Move(uids, dest).Wait()
		return err
	})
}

// copy copies uids to dest.
func (s *conn) copy(ctx context.Context, uids imap.UIDSet, dest string) error {
	return s.do(ctx, func() error {
		_, err := s.c.Copy(uids, dest).Wait()
		return err
	})
}

// partPath turns an IMAP part path ("1.2") into section numbers.
func partPath(path string) ([]int, error) {
	var part []int
	for _, f := range strings.Split(path, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad part path %q", path)
		}
		part = append(part, n)
	}
	return part, nil
}

// joinPath is the inverse of partPath.
func joinPath(part []int) string {
	fs := make([]string, len(part))
	for i, n := range part {
		fs[i] = strconv.Itoa(n)
	}
	return strings.Join(fs, ".")
}
