package testenv

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

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
