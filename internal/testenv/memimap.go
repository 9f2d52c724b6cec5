package testenv

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/memimap"
)

// StartMemIMAP starts the in-process IMAP server (internal/memimap: go-imap's
// imapmemserver, with what opt hides) and stops it when the test ends. It
// is the fast IMAP peer for tests; Dovecot (StartDovecot) is the real one.
func StartMemIMAP(t testing.TB, opt memimap.Options) *memimap.Server {
	t.Helper()
	s, err := memimap.Start(t.Context(), opt)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testenv: close in-process IMAP server: %v", err)
		}
	})
	return s
}

// MemIMAP starts the in-process IMAP server in plaintext with one user and
// an empty INBOX, and returns a client logged in with INBOX selected; both
// end with the test. It suits tests of what a server reports
// (BODYSTRUCTURE, partial fetches).
func MemIMAP(t testing.TB) *imapclient.Client {
	t.Helper()
	const user, password = "test", "test-password"
	s := StartMemIMAP(t, memimap.Options{})
	if _, err := s.AddUser(user, password); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	c, err := imapclient.DialInsecure(s.Addr, nil)
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
	srv := StartMemIMAP(t, memimap.Options{
		// The wrapper hides the session's NAMESPACE and MOVE methods, so
		// the server must not offer them.
		Hide:    []imap.Cap{imap.CapMove, imap.CapNamespace},
		Session: func(s imapserver.Session) imapserver.Session { return bearerSession{s, password, valid} },
	})
	u, err := srv.AddUser(username, password)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return srv.Addr, u
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
