package poller

import (
	"context"
	"log/slog"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// Session is a logged-in IMAP session opened the poller's way (TLS modes,
// certificate checks, login mechanisms, a deadline on every command), for
// another stage that talks IMAP: the IMAP forward route. Its methods are
// not safe for concurrent use.
type Session struct{ c *conn }

// Dial connects and logs in as cfg says; zero timeouts and TLS mode get the
// defaults New gives a mailbox. A nil logger logs nothing.
func Dial(ctx context.Context, cfg IMAP, log *slog.Logger) (*Session, error) {
	if cfg.TLS == "" {
		cfg.TLS = tlsmode.Implicit
	}
	setDefault(&cfg.DialTimeout, DefaultDialTimeout)
	setDefault(&cfg.CommandTimeout, DefaultCommandTimeout)
	setDefault(&cfg.BodyTimeout, DefaultBodyTimeout)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := (&Poller{mb: Mailbox{IMAP: cfg}, log: log}).dial(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &Session{c: c}, nil
}

// Client is the session's client, for commands run through Do or Stream.
func (s *Session) Client() *imapclient.Client { return s.c.c }

// Caps are the capabilities the server announced after login.
func (s *Session) Caps() imap.CapSet { return s.c.caps }

// Do runs one command exchange under the command timeout; when it passes,
// or ctx ends, the connection is closed.
func (s *Session) Do(ctx context.Context, f func() error) error { return s.c.do(ctx, f) }

// Stream is Do under the body timeout, for a command that carries a message.
func (s *Session) Stream(ctx context.Context, f func() error) error {
	return s.c.within(ctx, s.c.body, f)
}

// Select opens folder, read-only (EXAMINE) when readOnly.
func (s *Session) Select(ctx context.Context, folder string, readOnly bool) (*imap.SelectData, error) {
	return s.c.selectFolder(ctx, folder, readOnly)
}

// Broken reports whether the connection has died.
func (s *Session) Broken() bool { return s.c.broken() }

// Close closes the connection without LOGOUT.
func (s *Session) Close() error { return s.c.c.Close() }

// Logout ends the session politely and closes the connection.
func (s *Session) Logout(ctx context.Context) { s.c.logout(ctx) }
