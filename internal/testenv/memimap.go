package testenv

import (
	"io"
	"log"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/credential"
)

// MemIMAP serves go-imap's in-process server (imapmemserver) on a loopback
// port with one user and an empty INBOX, and returns a client logged in
// with INBOX selected; both end with the test. It is the fast IMAP peer for
// tests of what a server reports (BODYSTRUCTURE, partial fetches); Dovecot
// (StartDovecot) is the real one.
func MemIMAP(t testing.TB) *imapclient.Client {
	t.Helper()
	const user, password = "test", "test-password"
	mem, _ := memUser(t, user, password)
	addr := serveIMAP(t, &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("testenv: dial in-process IMAP server: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("testenv: login: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("testenv: select INBOX: %v", err)
	}
	return c
}

// Append stores msg in folder over c and returns its UID (the server must
// answer APPENDUID, RFC 4315, as imapmemserver and Dovecot do).
func Append(t testing.TB, c *imapclient.Client, folder string, msg []byte) imap.UID {
	t.Helper()
	cmd := c.Append(folder, int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		t.Fatalf("testenv: append to %s: %v", folder, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("testenv: append to %s: %v", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("testenv: append to %s: %v", folder, err)
	}
	if data.UID == 0 {
		t.Fatalf("testenv: append to %s: the server gave no APPENDUID", folder)
	}
	return data.UID
}

// OAuthIMAP serves go-imap's in-process server on a loopback port in
// plaintext (a config's tls: none with insecure_plaintext) with one user,
// username, and an empty INBOX. The only way in is AUTHENTICATE XOAUTH2 or
// OAUTHBEARER (RFC 7628) with a token valid accepts: an issuer's check
// such as OAuth2Server.Valid. It returns the address and the user, to
// append and inspect mail; the server stops with the test.
func OAuthIMAP(t testing.TB, username string, valid func(token string) bool) (string, *imapmemserver.User) {
	t.Helper()
	password := "oauth-only-" + randomToken() // never sent: no LOGIN, no PLAIN
	mem, u := memUser(t, username, password)
	addr := serveIMAP(t, &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return bearerSession{mem.NewSession(), password, valid}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapLoginDisabled: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	return addr, u
}

// memUser is an in-process server with one user and an empty INBOX.
func memUser(t testing.TB, username, password string) (*imapmemserver.Server, *imapmemserver.User) {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(username, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatalf("testenv: create INBOX: %v", err)
	}
	mem.AddUser(u)
	return mem, u
}

// serveIMAP serves an in-process IMAP server on a free loopback port until
// the test ends and returns its address.
func serveIMAP(t testing.TB, opt *imapserver.Options) string {
	t.Helper()
	srv := imapserver.New(opt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen on loopback: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// bearerSession logs a session in with a bearer token only.
type bearerSession struct {
	imapserver.Session
	password string
	valid    func(token string) bool
}

func (s bearerSession) Login(string, string) error { return imapserver.ErrAuthFailed }

func (s bearerSession) AuthenticateMechanisms() []string {
	return []string{"XOAUTH2", sasl.OAuthBearer}
}

func (s bearerSession) Authenticate(mech string) (sasl.Server, error) {
	login := func(username, token string) bool {
		return s.valid(token) && s.Session.Login(username, s.password) == nil
	}
	switch mech {
	case "XOAUTH2":
		return credential.XOAuth2Server(func(username, token string) error {
			if !login(username, token) {
				return imapserver.ErrAuthFailed
			}
			return nil
		}), nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if !login(o.Username, o.Token) {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		}), nil
	}
	return nil, imapserver.ErrAuthFailed
}
