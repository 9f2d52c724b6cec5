package poller

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/robfig/cron/v3"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/forwarder"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/memimap"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/selfsigned"
	"github.com/mailtriage/mailtriage/internal/smtpsink"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
	"github.com/mailtriage/mailtriage/store"
)

const (
	testUser     = "triage@example.net"
	testPassword = "imap-pass-never-logged"
)

// Test messages: small literals that classify the same way whatever the
// details of the analyzer's rules.
func cleanMessage(id string) string {
	return "From: Alice <alice@example.com>\r\n" +
		"To: support@example.net\r\n" +
		"Subject: Printer on fire " + id + "\r\n" +
		"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n" +
		"Message-ID: <" + id + "@example.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello, the printer on floor 3 is on fire again. Please help.\r\n"
}

func encryptedMessage(id string) string {
	return "From: Bob <bob@example.org>\r\n" +
		"To: support@example.net\r\n" +
		"Subject: Secret " + id + "\r\n" +
		"Date: Tue, 24 Nov 2026 09:01:00 +0000\r\n" +
		"Message-ID: <" + id + "@example.org>\r\n" +
		"X-Test-Class: encrypted\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n" +
		"\r\n" +
		"--b1\r\n" +
		"Content-Type: application/pgp-encrypted\r\n" +
		"\r\n" +
		"Version: 1\r\n" +
		"\r\n" +
		"--b1\r\n" +
		"Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n" +
		"Content-Disposition: inline; filename=\"encrypted.asc\"\r\n" +
		"\r\n" +
		"-----BEGIN PGP MESSAGE-----\r\n" +
		"\r\n" +
		"hQEMA5ZHj1sX7QqWAQf/Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6\r\n" +
		"=abcd\r\n" +
		"-----END PGP MESSAGE-----\r\n" +
		"\r\n" +
		"--b1--\r\n"
}

// env is one test's world: an in-process IMAP server over TLS, the bbolt
// store, an SMTP sink and the real forwarder.
type env struct {
	t       testing.TB
	log     *slog.Logger
	imap    *memimap.Server
	user    *imapmemserver.User
	addr    string
	tls     tlsmode.Mode
	pool    *x509.CertPool
	st      store.Store
	sink    *smtpsink.Sink
	fw      *forwarder.Forwarder
	metrics *fakeMetrics
}

type envOptions struct {
	tls  tlsmode.Mode // tlsmode.Implicit (default) or tlsmode.StartTLS
	hide []imap.Cap   // capabilities the server hides (memimap.Options.Hide); it offers IMAP4rev1, UIDPLUS, MOVE, NAMESPACE, IDLE

	discardBodies bool // the sink keeps sizes and hashes only

	oauthToken string                  // when set, the server also offers AUTHENTICATE OAUTHBEARER with this token (and hides NAMESPACE and MOVE)
	oauthValid func(token string) bool // when set, OAUTHBEARER takes the tokens it accepts (an issuer's check), as oauthToken
	noKeywords bool                    // PERMANENTFLAGS lists system flags only, no "\\*" (and the server hides NAMESPACE and MOVE)

	counts *commandCounts // when set, counts the SELECTs, STOREs and MOVEs the server receives
}

// commandCounts are the commands a server received that cost it most.
type commandCounts struct{ sel, store, move atomic.Int32 }

func (s countingSession) Select(mailbox string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.n.sel.Add(1)
	return s.Session.Select(mailbox, options)
}

// countingSession counts SELECTs, STOREs and MOVEs into n.
type countingSession struct {
	imapserver.Session
	n *commandCounts
}

func (s countingSession) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.n.store.Add(1)
	return s.Session.Store(w, numSet, flags, options)
}

func (s countingSession) Namespace() (*imap.NamespaceData, error) {
	return s.Session.(imapserver.SessionNamespace).Namespace()
}

func (s countingSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	s.n.move.Add(1)
	return s.Session.(imapserver.SessionMove).Move(w, numSet, dest)
}

// oauthSession adds SASL OAUTHBEARER (RFC 7628) to a memserver session.
type oauthSession struct {
	imapserver.Session
	valid func(token string) bool
}

func (s oauthSession) AuthenticateMechanisms() []string { return []string{"PLAIN", "OAUTHBEARER"} }

func (s oauthSession) Authenticate(mech string) (sasl.Server, error) {
	if mech == "PLAIN" {
		return sasl.NewPlainServer(func(_, username, password string) error { return s.Login(username, password) }), nil
	}
	return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
		if !s.valid(o.Token) || s.Login(o.Username, testPassword) != nil {
			return &sasl.OAuthBearerError{Status: "invalid_token"}
		}
		return nil
	}), nil
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.tls == "" {
		o.tls = tlsmode.Implicit
	}
	if o.oauthToken != "" && o.oauthValid == nil {
		o.oauthValid = func(token string) bool { return token == o.oauthToken }
	}
	if o.hide == nil && (o.oauthValid != nil || o.noKeywords) {
		o.hide = []imap.Cap{imap.CapMove, imap.CapNamespace}
	}
	ctx := t.Context()
	e := &env{t: t, log: slogFor(t), tls: o.tls, metrics: newFakeMetrics()}
	cert, err := selfsigned.Loopback("mailtriage test IMAP")
	if err != nil {
		t.Fatal(err)
	}
	e.pool = cert.RootCAs
	e.imap = testenv.StartMemIMAP(t, memimap.Options{
		TLS:        &tls.Config{Certificates: []tls.Certificate{cert.TLS}},
		StartTLS:   o.tls == tlsmode.StartTLS,
		Hide:       o.hide,
		NoKeywords: o.noKeywords,
		Session: func(s imapserver.Session) imapserver.Session {
			if o.oauthValid != nil {
				return oauthSession{s, o.oauthValid}
			}
			if o.counts != nil {
				return countingSession{s, o.counts}
			}
			return s
		},
	})
	e.addr = e.imap.Addr
	if e.user, err = e.imap.AddUser(testUser, testPassword); err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(ctx, "file:"+t.TempDir()+"/state.db", store.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st

	sink, err := smtpsink.Start(ctx, smtpsink.Options{DiscardBodies: o.discardBodies})
	if err != nil {
		t.Fatalf("start SMTP sink: %v", err)
	}
	// The sink closes itself when the test's context ends.
	e.sink = sink
	e.fw = e.forwarder(sink.Addr())
	return e
}

func (e *env) forwarder(addr string) *forwarder.Forwarder {
	e.t.Helper()
	fw, err := forwarder.New(forwarder.Config{
		Address: addr, TLS: tlsmode.None, InsecurePlaintext: true,
		From: "triage@example.net", To: []string{"helpdesk@example.zendesk.com"},
		Timeout: 5 * time.Second,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatalf("forwarder: %v", err)
	}
	e.t.Cleanup(func() { fw.Close() })
	return fw
}

// mailbox is the default settings of the test mailbox.
func (e *env) mailbox() Mailbox {
	return Mailbox{
		Name:     "support",
		Schedule: cron.Every(time.Hour),
		IMAP: IMAP{
			Address: e.addr, TLS: e.tls, RootCAs: e.pool,
			Auth:           credential.Auth{Mechanism: credential.Plain, Username: testUser, Secret: credential.Static(secret.New(testPassword))},
			DialTimeout:    5 * time.Second,
			CommandTimeout: 10 * time.Second,
			BodyTimeout:    10 * time.Second,
		},
		Folder:        "INBOX",
		ReviewFolder:  "Triage/Review",
		ReleaseFolder: "Triage/Release",
		BatchSize:     2, // several batches even in small tests
		LeaseTTL:      3 * time.Second,
	}
}

// poller builds a poller of the test mailbox after edit changes settings.
func (e *env) poller(fw Forwarder, edit func(*Mailbox)) *Poller {
	mb := e.mailbox()
	if edit != nil {
		edit(&mb)
	}
	if fw == nil {
		fw = e.fw
	}
	return New(mb, analyzer.New(nil), e.st, fw, e.metrics, e.log)
}

// slogFor logs into the test's output.
func slogFor(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// appendMsg puts raw into folder with flags, as a delivery would.
func (e *env) appendMsg(folder, raw string, flags ...imap.Flag) {
	e.t.Helper()
	if _, err := e.user.Append(folder, literal{strings.NewReader(raw), int64(len(raw))}, &imap.AppendOptions{Flags: flags}); err != nil {
		e.t.Fatalf("append to %s: %v", folder, err)
	}
}

type literal struct {
	*strings.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// stored is one message as the test sees it in a folder.
type stored struct {
	UID       imap.UID
	Flags     []imap.Flag
	MessageID string
}

func (s stored) has(f imap.Flag) bool { return hasFlag(s.Flags, f) }

// folder lists the messages of name (nil when it does not exist).
func (e *env) folder(name string) []stored {
	e.t.Helper()
	ctx := e.t.Context()
	p := e.poller(nil, nil)
	c, err := p.dial(ctx, nil)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	defer c.logout(ctx)
	if ok, err := c.exists(ctx, name); err != nil || !ok {
		return nil
	}
	sel, err := c.selectFolder(ctx, name, true)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	if sel.NumMessages == 0 {
		return []stored{}
	}
	uids, err := c.search(ctx, name, 0)
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	bufs, err := c.fetch(ctx, uids, &imap.FetchOptions{
		UID: true, Flags: true,
		BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}},
	})
	if err != nil {
		e.t.Fatalf("inspect %s: %v", name, err)
	}
	var out []stored
	for _, b := range bufs {
		s := stored{UID: b.UID, Flags: b.Flags}
		for _, sec := range b.BodySection {
			h := strings.TrimSpace(string(sec.Bytes))
			if i := strings.Index(h, "<"); i >= 0 {
				s.MessageID = strings.Trim(h[i:], "<>")
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b stored) int { return int(a.UID) - int(b.UID) })
	return out
}

// find returns the message with id in list.
func find(list []stored, id string) (stored, bool) {
	for _, s := range list {
		if s.MessageID == id {
			return s, true
		}
	}
	return stored{}, false
}

// received lists the Message-IDs the sink accepted, in order.
func (e *env) received() []string {
	var ids []string
	for _, m := range e.sink.Messages() {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if strings.HasPrefix(strings.ToLower(line), "message-id:") {
				ids = append(ids, strings.Trim(strings.TrimSpace(line[len("message-id:"):]), "<>"))
				break
			}
		}
	}
	return ids
}

func (e *env) cycle(p *Poller) Report {
	e.t.Helper()
	rep, err := p.Cycle(e.t.Context())
	if err != nil {
		e.t.Fatalf("cycle: %v", err)
	}
	return rep
}

// fakeMetrics records what the poller counted.
type fakeMetrics struct {
	mu       sync.Mutex
	messages map[string]int // class/action
	failed   map[string]int // kind
	cycles   int
	errs     int
	review   int       // the review folder's messages, as last reported
	oldest   time.Time // and its oldest arrival

	pausedSince time.Time // the last ForwardingPaused
}

func newFakeMetrics() *fakeMetrics {
	return &fakeMetrics{messages: map[string]int{}, failed: map[string]int{}}
}

func (f *fakeMetrics) Message(_ string, c analyzer.Class, action analyzer.Action) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages[string(c)+"/"+string(action)]++
}

func (f *fakeMetrics) ForwardFailed(_, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[kind]++
}

func (f *fakeMetrics) Cycle(_ string, _ time.Duration, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cycles++
	if err != nil {
		f.errs++
	}
}

func (f *fakeMetrics) Lease(string, bool) {}
func (f *fakeMetrics) StoreError(string)  {}

func (f *fakeMetrics) Review(_ string, n int, oldest time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.review, f.oldest = n, oldest
}

func (f *fakeMetrics) ForwardingPaused(_ string, since time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pausedSince = since
}

// funcForwarder is a Forwarder made of a function, called for one job at
// a time, for faults the sink cannot make (panics, slow sends).
type funcForwarder func(ctx context.Context, v analyzer.Verdict, body io.Reader) error

func (f funcForwarder) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	for j := range jobs {
		results <- forwarder.Result{Key: j.Key, Err: f(ctx, j.Verdict, j.Body.Reader())}
	}
}

func (funcForwarder) Close() error { return nil }

// hookForwarder passes the jobs and results of fw through before and
// after (either may be nil), each called in the order they pass. Without
// before, fw reads the jobs itself: no job waits in the hook.
type hookForwarder struct {
	fw     Forwarder
	before func(forwarder.Job)
	after  func(forwarder.Result)
}

func (h *hookForwarder) Deliver(ctx context.Context, jobs <-chan forwarder.Job, results chan<- forwarder.Result) {
	in := jobs
	out := make(chan forwarder.Result)
	var wg sync.WaitGroup
	if h.before != nil {
		pipe := make(chan forwarder.Job)
		in = pipe
		wg.Go(func() {
			defer close(pipe)
			for j := range jobs {
				h.before(j)
				pipe <- j
			}
		})
	}
	wg.Go(func() {
		for r := range out {
			if h.after != nil {
				h.after(r)
			}
			results <- r
		}
	})
	h.fw.Deliver(ctx, in, out)
	close(out)
	wg.Wait()
}

func (h *hookForwarder) Close() error { return h.fw.Close() }

// drain reads body fully, as a real forwarder would.
func drain(body io.Reader) error {
	_, err := io.Copy(io.Discard, body)
	return err
}
