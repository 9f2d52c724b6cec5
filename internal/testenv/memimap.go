package testenv

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// MemIMAP serves go-imap's in-process server (imapmemserver) on a loopback
// port with one user and an empty INBOX, and returns a client logged in
// with INBOX selected; both end with the test. It is the fast IMAP peer for
// tests of what a server reports (BODYSTRUCTURE, partial fetches); Dovecot
// (StartDovecot) is the real one.
func MemIMAP(t testing.TB) *imapclient.Client {
	t.Helper()
	const user, password = "test", "test-password"
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatalf("testenv: create INBOX: %v", err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: listen on loopback: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatalf("testenv: dial in-process IMAP server: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Close()
		_ = srv.Close()
		<-done
	})
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
