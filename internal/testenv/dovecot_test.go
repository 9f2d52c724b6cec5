package testenv

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

const harnessMessage = "From: a@example.com\r\nTo: b@example.com\r\nSubject: harness\r\nMessage-ID: <h1@example.com>\r\n\r\nbody\r\n"

func appendMessage(t *testing.T, c *imapclient.Client, folder, raw string) {
	t.Helper()
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write([]byte(raw)); err != nil {
		t.Fatalf("APPEND to %s: %v", folder, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND to %s: %v", folder, err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("APPEND to %s: %v", folder, err)
	}
}

// folderState selects folder read-only and returns its UIDVALIDITY and the
// flags of each message by UID.
func folderState(t *testing.T, c *imapclient.Client, folder string) (uint32, map[imap.UID][]imap.Flag) {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE %s: %v", folder, err)
	}
	flags := map[imap.UID][]imap.Flag{}
	if sel.NumMessages > 0 {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			t.Fatalf("FETCH FLAGS in %s: %v", folder, err)
		}
		for _, m := range msgs {
			flags[m.UID] = m.Flags
		}
	}
	return sel.UIDValidity, flags
}

func TestDovecotHarness(t *testing.T) {
	d := StartDovecot(t)
	start := time.Now()

	// Verification against the harness CA works and against the system
	// roots fails: the certificate really is checked.
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", d.Addr, &tls.Config{}); err == nil {
		t.Errorf("TLS to %s verified against the system roots; want an unknown-authority error", d.Addr)
	}
	c := d.Dial(t, d.User, d.Password)
	if !c.Caps().Has(imap.CapMove) || !c.Caps().Has(imap.CapUIDPlus) || !c.Caps().Has(imap.CapIdle) {
		t.Errorf("capabilities %v lack MOVE, UIDPLUS or IDLE", c.Caps())
	}
	if err := c.Create("Triage/Review", nil).Wait(); err != nil {
		t.Fatalf("CREATE Triage/Review: %v", err)
	}
	appendMessage(t, c, "INBOX", harnessMessage)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	if sel.NumMessages != 1 || !slices.Contains(sel.PermanentFlags, imap.FlagWildcard) {
		t.Fatalf("SELECT INBOX: %d messages, PERMANENTFLAGS %v; want 1 and \\*", sel.NumMessages, sel.PermanentFlags)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{"$Forwarded", imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatalf("UID STORE: %v", err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT: %v", err)
	}

	// A second session, over STARTTLS, sees the keyword.
	plain, err := imapclient.DialStartTLS(d.PlainAddr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: d.RootCAs}})
	if err != nil {
		t.Fatalf("STARTTLS to %s: %v", d.PlainAddr, err)
	}
	defer plain.Close()
	if err := plain.Login(d.User, d.Password).Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	validity, flags := folderState(t, plain, "INBOX")
	if got := flags[1]; !slices.Contains(got, "$Forwarded") || !slices.Contains(got, imap.FlagSeen) {
		t.Errorf("flags of UID 1 = %v, want $Forwarded and \\Seen", got)
	}
	if err := plain.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}

	// Loopback is a trusted network: plaintext login works on PlainAddr,
	// which tests of tls: none rely on.
	insecure, err := imapclient.DialInsecure(d.PlainAddr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", d.PlainAddr, err)
	}
	if err := insecure.Login(d.User, d.Password).Wait(); err != nil {
		t.Errorf("plaintext LOGIN from loopback: %v", err)
	}
	insecure.Close()

	// The message is on disk in the Maildir, with the keyword letter.
	cur, err := filepath.Glob(filepath.Join(d.FolderPath(d.User, "INBOX"), "cur", "*"))
	if err != nil || len(cur) != 1 || !strings.Contains(filepath.Base(cur[0]), ":2,") {
		t.Errorf("Maildir cur/ holds %v (err %v); want one message with flags", cur, err)
	}
	if _, err := os.Stat(filepath.Join(d.FolderPath(d.User, "Triage/Review"), "dovecot-uidlist")); err != nil {
		t.Errorf("Triage/Review is not at %s: %v", d.FolderPath(d.User, "Triage/Review"), err)
	}

	// A UIDVALIDITY reset gives a new UIDVALIDITY and keeps the message
	// and its flags, also across a restart.
	d.ResetUIDValidity(d.User, "INBOX")
	d.Restart()
	c2 := d.Dial(t, d.User, d.Password)
	newValidity, newFlags := folderState(t, c2, "INBOX")
	if newValidity == validity {
		t.Errorf("UIDVALIDITY after reset = %d, unchanged", newValidity)
	}
	if len(newFlags) != 1 || !slices.Contains(newFlags[1], "$Forwarded") {
		t.Errorf("after reset: flags by UID %v, want UID 1 with $Forwarded", newFlags)
	}
	// Another reset right away still changes it (no second-granularity tie).
	if err := c2.Logout().Wait(); err != nil {
		t.Fatalf("LOGOUT: %v", err)
	}
	d.ResetUIDValidity(d.User, "INBOX")
	c3 := d.Dial(t, d.User, d.Password)
	if again, _ := folderState(t, c3, "INBOX"); again == newValidity || again == validity {
		t.Errorf("UIDVALIDITY after a second reset = %d, want a value other than %d and %d", again, validity, newValidity)
	}

	// A second account added while running logs in.
	d.AddUser("second@example.test", "second-pw")
	d.Dial(t, "second@example.test", "second-pw")
	t.Logf("harness exercised in %v", time.Since(start))
}

// TestDovecotHiddenCapabilities: hidden capabilities are not advertised
// after login, the others are.
func TestDovecotHiddenCapabilities(t *testing.T) {
	d := StartDovecotWith(t, DovecotOptions{HideCapabilities: []string{"MOVE", "UIDPLUS"}})
	c := d.Dial(t, d.User, d.Password)
	caps := c.Caps()
	if caps.Has(imap.CapMove) || caps.Has(imap.CapUIDPlus) {
		t.Errorf("capabilities %v still advertise MOVE or UIDPLUS", caps)
	}
	if !caps.Has(imap.CapIdle) || !caps.Has(imap.CapIMAP4rev1) {
		t.Errorf("capabilities %v lack IDLE or IMAP4rev1", caps)
	}
}

// TestDovecotDeliver: messages written into the Maildir show up over IMAP,
// in INBOX and in a folder Deliver creates, in order, with their bytes.
func TestDovecotDeliver(t *testing.T) {
	d := StartDovecot(t)
	msg := func(n int) []byte {
		return []byte(fmt.Sprintf("From: a@example.com\nSubject: delivered %d\nMessage-ID: <d%d@example.com>\n\nbody %d\n", n, n, n))
	}
	var inbox [][]byte
	var want []int
	for n := range 25 {
		inbox = append(inbox, msg(n))
		want = append(want, n)
	}
	d.Deliver(d.User, "INBOX", inbox...)
	d.Deliver(d.User, "Archive/2026", msg(100))
	c := d.Dial(t, d.User, d.Password)
	for folder, want := range map[string][]int{"INBOX": want, "Archive/2026": {100}} {
		sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatalf("EXAMINE %s: %v", folder, err)
		}
		if int(sel.NumMessages) != len(want) {
			t.Fatalf("%s holds %d messages, want %d", folder, sel.NumMessages, len(want))
		}
		body := &imap.FetchItemBodySection{Peek: true}
		bufs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: sel.NumMessages}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil {
			t.Fatalf("FETCH %s: %v", folder, err)
		}
		for i, b := range bufs {
			got := strings.ReplaceAll(string(b.FindBodySection(body)), "\r\n", "\n")
			if got != string(msg(want[i])) {
				t.Errorf("%s uid %d = %q, want %q", folder, b.UID, got, msg(want[i]))
			}
		}
	}
}

// TestDovecotWaitIdle: WaitIdle sees a session enter IDLE.
func TestDovecotWaitIdle(t *testing.T) {
	d := StartDovecot(t)
	c := d.Dial(t, d.User, d.Password)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	d.WaitIdle(d.User, 1, 5*time.Second)
	if err := idle.Close(); err != nil {
		t.Fatalf("DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
}
