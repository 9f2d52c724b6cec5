package imaproute_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/forwarder/imaproute"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/poller"
)

// The helpdesk's account: a second account of the private Dovecot.
const (
	helpdeskUser     = "helpdesk@example.test"
	helpdeskPassword = "helpdesk-pass-never-logged"
)

// message is a customer's mail with every field a helpdesk threads and
// answers by.
func message(id string) []byte {
	return []byte("Return-Path: <alice@example.com>\r\n" +
		"From: Alice Example <alice@example.com>\r\n" +
		"To: support@example.test\r\n" +
		"Cc: Bob <bob@example.org>, carol@example.net\r\n" +
		"Subject: Printer on fire " + id + "\r\n" +
		"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n" +
		"Message-ID: <" + id + "@example.com>\r\n" +
		"In-Reply-To: <root-" + id + "@example.com>\r\n" +
		"References: <root-" + id + "@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello, the printer on floor 3 is on fire again.\r\n" +
		".a line starting with a dot\r\n")
}

// verdict classifies raw as the poller would.
func verdict(t testing.TB, raw []byte) analyzer.Verdict {
	t.Helper()
	m, err := analyzer.FromRaw(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse test message: %v", err)
	}
	return analyzer.New(nil).Classify(m, analyzer.DefaultPolicy())
}

// helpdesk starts Dovecot with the helpdesk's account and returns the
// route's login to it.
func helpdesk(t testing.TB) (*testenv.Dovecot, poller.IMAP) {
	t.Helper()
	dc := testenv.StartDovecot(t)
	dc.AddUser(helpdeskUser, helpdeskPassword)
	return dc, login(dc, helpdeskUser, helpdeskPassword)
}

func login(dc *testenv.Dovecot, user, password string) poller.IMAP {
	return poller.IMAP{
		Address: dc.Addr, TLS: tlsmode.Implicit, RootCAs: dc.RootCAs,
		Auth:        credential.Auth{Username: user, Secret: credential.Static(secret.New(password))},
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, BodyTimeout: 10 * time.Second,
	}
}

// withWrongPassword is acct with a password the server refuses.
func withWrongPassword(acct poller.IMAP) poller.IMAP {
	acct.Auth.Secret = credential.Static(secret.New("not-the-password"))
	return acct
}

func newRoute(t testing.TB, cfg imaproute.Config) *imaproute.Route {
	t.Helper()
	r, err := imaproute.New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("imaproute.New: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// copyInFolder is one message as the helpdesk sees it.
type copyInFolder struct {
	Flags []imap.Flag
	Raw   []byte
}

// folder reads every message of folder in the helpdesk's account.
func folder(t testing.TB, dc *testenv.Dovecot, user, password, name string) []copyInFolder {
	t.Helper()
	c := dc.Dial(t, user, password)
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s of %s: %v", name, user, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var seq imap.SeqSet
	seq.AddRange(1, 0)
	msgs, err := c.Fetch(seq, &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s of %s: %v", name, user, err)
	}
	out := make([]copyInFolder, len(msgs))
	for i, m := range msgs {
		out[i] = copyInFolder{Flags: m.Flags, Raw: m.FindBodySection(&imap.FetchItemBodySection{})}
	}
	return out
}

// createFolder creates a folder in the helpdesk's account, as its admin
// would: the route never does.
func createFolder(t testing.TB, dc *testenv.Dovecot, name string) {
	t.Helper()
	if err := dc.Dial(t, helpdeskUser, helpdeskPassword).Create(name, nil).Wait(); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// TestForwardAppendsUnseenOriginal: the copy is the annotation, the
// fingerprint field and the original byte for byte, without \Seen, in the
// configured folder.
func TestForwardAppendsUnseenOriginal(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	createFolder(t, dc, "Helpdesk/Intake")
	tests := []struct {
		name     string
		folder   string // "" is INBOX
		released bool
	}{
		{"inbox", "", false},
		{"subfolder", "Helpdesk/Intake", false},
		{"released", "", true},
	}
	appended := map[string]int{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := message("unseen-" + tc.name)
			v := verdict(t, raw)
			r := newRoute(t, imaproute.Config{IMAP: acct, Folder: tc.folder})
			if err := r.Forward(ctx, v, tc.released, int64(len(raw)), bytes.NewReader(raw)); err != nil {
				t.Fatalf("Forward: %v", err)
			}
			name := tc.folder
			if name == "" {
				name = "INBOX"
			}
			appended[name]++
			got := folder(t, dc, helpdeskUser, helpdeskPassword, name)
			if len(got) != appended[name] {
				t.Fatalf("%s holds %d messages, want %d", name, len(got), appended[name])
			}
			last := got[len(got)-1]
			if hasFlag(last.Flags, imap.FlagSeen) {
				t.Errorf("copy has flags %v: \\Seen is set, a pulling helpdesk would skip it", last.Flags)
			}
			annotation, original, ok := bytes.Cut(last.Raw, []byte(imaproute.HeaderFingerprint+": "))
			if !ok {
				t.Fatalf("copy has no %s field:\n%s", imaproute.HeaderFingerprint, last.Raw)
			}
			if want := forwarder.Annotation(v, tc.released); string(annotation) != want {
				t.Errorf("fields above the original:\n%q\nwant\n%q", annotation, want)
			}
			_, original, _ = bytes.Cut(original, []byte("\r\n"))
			if !bytes.Equal(original, raw) {
				t.Errorf("original not byte for byte:\n%q\nwant\n%q", original, raw)
			}
		})
	}
}

// TestForwardAgainFindsCopy: forwarding a message whose copy is already in
// the folder (the poller crashed after the APPEND, before its record)
// appends nothing, in the same session and in a new one.
func TestForwardAgainFindsCopy(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	tests := []struct {
		name       string
		newSession bool // the second forward comes from a new process
	}{
		{"same session", false},
		{"after a crash", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := message("again-" + tc.name[:4])
			v := verdict(t, raw)
			r := newRoute(t, imaproute.Config{IMAP: acct})
			if err := r.Forward(ctx, v, false, int64(len(raw)), bytes.NewReader(raw)); err != nil {
				t.Fatalf("first Forward: %v", err)
			}
			if tc.newSession {
				r = newRoute(t, imaproute.Config{IMAP: acct})
			}
			if err := r.Forward(ctx, v, false, int64(len(raw)), bytes.NewReader(raw)); err != nil {
				t.Fatalf("second Forward: %v", err)
			}
			if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != i+1 {
				t.Errorf("INBOX holds %d messages after forwarding %d messages twice each, want %d", got, i+1, i+1)
			}
		})
	}
	// A different message with the same Message-ID is not mistaken for the
	// copy (the fingerprint hashes more than the Message-ID).
	raw := bytes.Replace(message("again-same"), []byte("Printer on fire"), []byte("Scanner on fire"), 1)
	if err := newRoute(t, imaproute.Config{IMAP: acct}).Forward(ctx, verdict(t, raw), false, int64(len(raw)), bytes.NewReader(raw)); err != nil {
		t.Fatalf("Forward of a look-alike: %v", err)
	}
	if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != len(tests)+1 {
		t.Errorf("INBOX holds %d messages, want %d: a look-alike was taken for a copy", got, len(tests)+1)
	}
}

// failingReader returns some octets, then an error.
type failingReader struct{ r io.Reader }

var errSource = errors.New("FETCH literal cut off")

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p[:min(len(p), 10)])
	if err == io.EOF || n == 0 {
		return n, errSource
	}
	return n, err
}

// TestForwardErrors: each failure has the forwarder's kind, so the poller
// pauses (temporary) or flags (permanent) as on the SMTP route, and none
// leaves a partial or any copy behind.
func TestForwardErrors(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	raw := message("errors")
	wrongPassword := withWrongPassword(acct)
	tests := []struct {
		name      string
		acct      poller.IMAP
		folder    string
		size      int64
		body      io.Reader
		kind      forwarder.Kind
		temporary bool
		wantText  string
	}{
		{"missing folder", acct, "No/Such/Folder", int64(len(raw)), bytes.NewReader(raw), forwarder.KindTemporary, true, `folder "No/Such/Folder" cannot be opened`},
		{"wrong password", wrongPassword, "", int64(len(raw)), bytes.NewReader(raw), forwarder.KindAuth, true, "log in"},
		{"body shorter than its size", acct, "", int64(len(raw)) + 10, bytes.NewReader(raw), forwarder.KindRejected, false, "ended after"},
		{"body longer than its size", acct, "", int64(len(raw)) - 10, bytes.NewReader(raw), forwarder.KindRejected, false, "longer than"},
		{"body read fails", acct, "", int64(len(raw)), failingReader{bytes.NewReader(raw)}, forwarder.KindTemporary, true, errSource.Error()},
		{"size unknown", acct, "", 0, bytes.NewReader(raw), forwarder.KindRejected, false, "size unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoute(t, imaproute.Config{IMAP: tc.acct, Folder: tc.folder})
			err := r.Forward(ctx, verdict(t, raw), false, tc.size, tc.body)
			var fe *forwarder.Error
			if !errors.As(err, &fe) {
				t.Fatalf("Forward = %v, want a *forwarder.Error", err)
			}
			if fe.Kind != tc.kind || fe.Temporary() != tc.temporary {
				t.Errorf("Forward = %v: kind %s, temporary %v; want %s, %v", err, fe.Kind, fe.Temporary(), tc.kind, tc.temporary)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Forward = %q, want it to say %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), helpdeskPassword) {
				t.Errorf("error holds the password: %v", err)
			}
		})
	}
	if got := folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX"); len(got) != 0 {
		t.Errorf("INBOX holds %d messages after failed forwards, want none: %q", len(got), got[0].Raw)
	}
	// The route is usable after a failure in the middle of a literal.
	r := newRoute(t, imaproute.Config{IMAP: acct})
	if err := r.Forward(ctx, verdict(t, raw), false, int64(len(raw))+1, bytes.NewReader(raw)); err == nil {
		t.Fatal("Forward of a short body succeeded")
	}
	if err := r.Forward(ctx, verdict(t, raw), false, int64(len(raw)), bytes.NewReader(raw)); err != nil {
		t.Fatalf("Forward after a failed one: %v", err)
	}
	if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != 1 {
		t.Errorf("INBOX holds %d messages, want 1", got)
	}
}

// TestNewChecksConfig: bad settings are refused before any connection.
func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  imaproute.Config
		want string
	}{
		{"no port", imaproute.Config{IMAP: poller.IMAP{Address: "imap.example.com"}}, "want host:port"},
		{"no host", imaproute.Config{IMAP: poller.IMAP{Address: ":993"}}, "want host:port"},
		{"newline in folder", imaproute.Config{IMAP: poller.IMAP{Address: "imap.example.com:993"}, Folder: "A\r\nB"}, "control character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := imaproute.New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestForwardSurvivesClosedSession: a session the server closed between two
// forwards is reopened once, without losing the message.
func TestForwardSurvivesClosedSession(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	r := newRoute(t, imaproute.Config{IMAP: acct})
	for i, id := range []string{"before-restart", "after-restart"} {
		raw := message(id)
		if err := r.Forward(ctx, verdict(t, raw), false, int64(len(raw)), bytes.NewReader(raw)); err != nil {
			t.Fatalf("Forward %s: %v", id, err)
		}
		if i == 0 {
			dc.Restart()
		}
	}
	if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != 2 {
		t.Errorf("INBOX holds %d messages, want 2", got)
	}
}

// TestCheck: `mailtriage check` logs in and opens the folder.
func TestCheck(t *testing.T) {
	_, acct := helpdesk(t)
	wrongPassword := withWrongPassword(acct)
	tests := []struct {
		name   string
		acct   poller.IMAP
		folder string
		want   forwarder.Kind // "" for success
	}{
		{"ok", acct, "", ""},
		{"missing folder", acct, "Nowhere", forwarder.KindTemporary},
		{"wrong password", wrongPassword, "", forwarder.KindAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newRoute(t, imaproute.Config{IMAP: tc.acct, Folder: tc.folder}).Check(t.Context())
			var fe *forwarder.Error
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Check: %v", err)
			case tc.want != "" && (!errors.As(err, &fe) || fe.Kind != tc.want):
				t.Fatalf("Check = %v, want a %s error", err, tc.want)
			}
		})
	}
}

// TestOriginalsOwnFieldIsNoCopy: an original that carries a fingerprint
// field of its own (mail that went through another mailtriage, or a forged
// one) below ours does not make the message it names count as forwarded.
func TestOriginalsOwnFieldIsNoCopy(t *testing.T) {
	dc, acct := helpdesk(t)
	ctx := t.Context()
	createFolder(t, dc, "Scratch")
	// The mark of B, as the route writes it.
	b := message("named")
	if err := newRoute(t, imaproute.Config{IMAP: acct, Folder: "Scratch"}).Forward(ctx, verdict(t, b), false, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatalf("Forward B to Scratch: %v", err)
	}
	scratch := folder(t, dc, helpdeskUser, helpdeskPassword, "Scratch")
	if len(scratch) != 1 {
		t.Fatalf("Scratch holds %d messages, want 1", len(scratch))
	}
	i := bytes.Index(scratch[0].Raw, []byte(imaproute.HeaderFingerprint+":"))
	if i < 0 {
		t.Fatalf("the copy of B has no %s field", imaproute.HeaderFingerprint)
	}
	field, _, _ := bytes.Cut(scratch[0].Raw[i:], []byte("\r\n"))

	// A carries B's field in its own header; its copy gets ours on top.
	a := bytes.Replace(message("carrier"), []byte("Subject:"), append(append(field, "\r\n"...), "Subject:"...), 1)
	if err := newRoute(t, imaproute.Config{IMAP: acct}).Forward(ctx, verdict(t, a), false, int64(len(a)), bytes.NewReader(a)); err != nil {
		t.Fatalf("Forward A: %v", err)
	}
	if err := newRoute(t, imaproute.Config{IMAP: acct}).Forward(ctx, verdict(t, b), false, int64(len(b)), bytes.NewReader(b)); err != nil {
		t.Fatalf("Forward B: %v", err)
	}
	if got := len(folder(t, dc, helpdeskUser, helpdeskPassword, "INBOX")); got != 2 {
		t.Errorf("INBOX holds %d messages, want A and B: A's own field was taken for B's copy", got)
	}
}
