package poller

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// oauthClock is the clock of the OAuth2 client and of its server: tests
// move it, and may let the server's run ahead.
type oauthClock struct {
	mu    sync.Mutex
	now   time.Time
	ahead time.Duration // server minus client
}

func (c *oauthClock) client() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *oauthClock) server() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now.Add(c.ahead) }
func (c *oauthClock) move(d, ahead time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.ahead += ahead
}

// clockForwarder moves the clock before the first message it forwards in
// each cycle: time passing inside a cycle.
type clockForwarder struct {
	Forwarder
	once func()
}

func (f *clockForwarder) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	h := &hookForwarder{fw: f.Forwarder, before: func(forwarder.Job) {
		if f.once != nil {
			f.once()
			f.once = nil
		}
	}}
	h.Deliver(ctx, jobs, results)
}

// Cycles logging in to IMAP (OAUTHBEARER) and SMTP (XOAUTH2) with tokens
// from a local authorization server that rotates its refresh tokens, both
// servers checking each token with it. IMAP and SMTP share one refresh
// token file, as a Microsoft login for both scopes does.
func TestOAuth2Cycles(t *testing.T) {
	const user = testUser
	for _, tc := range []struct {
		name string
		// between runs after the first cycle and before the second; during
		// runs inside the second cycle, before its first forward.
		between, during func(c *oauthClock, srv *testenv.OAuth2Server)
		wantErr         []string // "" = the second cycle succeeds
		is              error
	}{
		{name: "the SMTP token expires mid-cycle and is refreshed",
			between: func(c *oauthClock, _ *testenv.OAuth2Server) { c.move(30*time.Minute, 0) },
			during:  func(c *oauthClock, _ *testenv.OAuth2Server) { c.move(45*time.Minute, 0) }},
		{name: "the server's clock jumps ahead of ours: the refused token is replaced at login",
			between: func(c *oauthClock, _ *testenv.OAuth2Server) { c.move(50*time.Minute, 15*time.Minute) }},
		{name: "the refresh token is revoked",
			between: func(c *oauthClock, srv *testenv.OAuth2Server) { c.move(2*time.Hour, 0); srv.Revoke() },
			wantErr: []string{"mailbox support", "mailtriage login --config mailtriage.yaml --mailbox support"},
			is:      credential.ErrRefreshRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &oauthClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
			srv := testenv.StartOAuth2(t, testenv.OAuth2Options{ClientID: "mailtriage", Rotate: true, Clock: clock.server})
			rtFile := filepath.Join(t.TempDir(), "refresh-token")
			if err := credential.WriteRefreshToken(rtFile, srv.IssueRefreshToken()); err != nil {
				t.Fatal(err)
			}
			getter := func(scope string) *credential.OAuth2Getter {
				return credential.NewOAuth2(credential.OAuth2{
					Mailbox: "support", LoginCommand: "mailtriage login --config mailtriage.yaml --mailbox support",
					Flow: credential.FlowRefreshToken, ClientID: "mailtriage", TokenURL: srv.TokenURL,
					Scopes: []string{scope, "offline_access"}, RefreshTokenFile: rtFile, Clock: clock.client,
				})
			}
			e := newEnv(t, envOptions{oauthValid: srv.Valid})
			var logs bytes.Buffer
			e.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			sink, err := smtpsink.Start(t.Context(), smtpsink.Options{Username: user, Verify: func(_, token string) bool { return srv.Valid(token) }})
			if err != nil {
				t.Fatal(err)
			}
			fw, err := forwarder.New(forwarder.Config{
				Address: sink.Addr(), TLS: tlsmode.None, InsecurePlaintext: true,
				Auth: &credential.Auth{Mechanism: credential.XOAuth2, Username: user, Secret: getter("https://outlook.office365.com/SMTP.Send")},
				From: "triage@example.net", To: []string{"helpdesk@example.zendesk.com"}, Timeout: 5 * time.Second,
			}, e.log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fw.Close() })
			cf := &clockForwarder{Forwarder: fw}
			imapGetter := getter("https://outlook.office365.com/IMAP.AccessAsUser.All")
			p := e.poller(cf, func(mb *Mailbox) {
				mb.IMAP.Auth = credential.Auth{Mechanism: credential.OAuthBearer, Username: user, Secret: imapGetter}
			})

			e.appendMsg("INBOX", cleanMessage("oauth-1"))
			if rep := e.cycle(p); rep.Counts.Forwarded != 1 {
				t.Fatalf("first cycle: %+v", rep.Counts)
			}
			tc.between(clock, srv)
			if tc.during != nil {
				cf.once = func() { tc.during(clock, srv) }
			}
			e.appendMsg("INBOX", cleanMessage("oauth-2"))
			e.appendMsg("INBOX", cleanMessage("oauth-3"))
			rep, err := p.Cycle(t.Context())
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("second cycle failed: %v", err)
			case tc.wantErr == nil && (rep.Counts.Forwarded != 2 || sink.Count() != 3):
				t.Fatalf("second cycle: %+v, sink has %d; want 2 more forwarded", rep.Counts, sink.Count())
			case tc.wantErr != nil && !errors.Is(err, tc.is):
				t.Fatalf("second cycle: %v, want %v", err, tc.is)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, tok := range srv.Tokens() {
				if strings.Contains(logs.String(), tok) || err != nil && strings.Contains(err.Error(), tok) {
					t.Fatalf("a token reached the log or the error")
				}
			}
		})
	}
}
