package poller

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/testenv"
	"github.com/mailtriage/mailtriage/internal/tlsmode"
)

// serverEnv is env with a real IMAP server (a private Dovecot or Cyrus)
// in place of the in-process one, for what that one does not do:
// namespaces, special-use folders, missing MOVE and UIDPLUS.
type serverEnv struct {
	*env
	imap   IMAP // how the poller reaches the server
	client func() *imapclient.Client
}

func newDovecotEnv(t *testing.T, opt testenv.DovecotOptions) *serverEnv {
	t.Helper()
	dc := testenv.StartDovecotWith(t, opt)
	e := &serverEnv{env: newEnv(t, envOptions{}), client: func() *imapclient.Client { return dc.Dial(t, dc.User, dc.Password) }}
	e.imap = IMAP{Address: dc.Addr, TLS: tlsmode.Implicit, RootCAs: dc.RootCAs,
		Auth: credential.Auth{Mechanism: credential.Plain, Username: dc.User, Secret: credential.Static(secret.New(dc.Password))}}
	return e
}

func newCyrusEnv(t *testing.T, opt testenv.CyrusOptions) *serverEnv {
	t.Helper()
	cy := testenv.StartCyrus(t, opt)
	e := &serverEnv{env: newEnv(t, envOptions{}), client: func() *imapclient.Client {
		c, err := imapclient.DialInsecure(cy.Addr, nil)
		if err != nil {
			t.Fatalf("dial Cyrus: %v", err)
		}
		if err := c.Login(cy.User, cy.Password).Wait(); err != nil {
			t.Fatalf("log in to Cyrus: %v\n%s", err, cy.LogTail())
		}
		return c
	}}
	e.imap = IMAP{Address: cy.Addr, TLS: tlsmode.None, InsecurePlaintext: true,
		Auth: credential.Auth{Mechanism: credential.Plain, Username: cy.User, Secret: credential.Static(secret.New(cy.Password))}}
	return e
}

// poller is a poller of the test mailbox on the server.
func (e *serverEnv) poller(fw Forwarder, edit func(*Mailbox)) *Poller {
	mb := e.mailbox()
	mb.IMAP.Address, mb.IMAP.TLS, mb.IMAP.InsecurePlaintext, mb.IMAP.RootCAs, mb.IMAP.Auth = e.imap.Address, e.imap.TLS, e.imap.InsecurePlaintext, e.imap.RootCAs, e.imap.Auth
	if edit != nil {
		edit(&mb)
	}
	if fw == nil {
		fw = e.fw
	}
	return New(mb, analyzer.New(nil), e.st, fw, e.metrics, e.log)
}

// append delivers raw to folder over IMAP.
func (e *serverEnv) append(folder, raw string) {
	e.t.Helper()
	c := e.client()
	defer c.Close()
	testenv.Append(e.t, c, folder, []byte(raw))
}

// count is the number of messages in folder not marked \Deleted.
func (e *serverEnv) count(folder string) int {
	e.t.Helper()
	c := e.client()
	defer c.Close()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		e.t.Fatalf("select %s: %v", folder, err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		e.t.Fatalf("search %s: %v", folder, err)
	}
	return len(data.AllUIDs())
}

// moveAll moves the messages of from that are not \Deleted to to,
// creating to, as a reviewer's mail client without MOVE does: COPY,
// \Deleted, EXPUNGE.
func (e *serverEnv) moveAll(from, to string) {
	e.t.Helper()
	c := e.client()
	defer c.Close()
	list, err := c.List("", to, nil).Collect()
	if err != nil {
		e.t.Fatalf("list %s: %v", to, err)
	}
	if !slices.ContainsFunc(list, func(l *imap.ListData) bool { return l.Mailbox == to }) {
		if err := c.Create(to, nil).Wait(); err != nil {
			e.t.Fatalf("create %s: %v", to, err)
		}
	}
	if _, err := c.Select(from, nil).Wait(); err != nil {
		e.t.Fatalf("select %s: %v", from, err)
	}
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		e.t.Fatalf("search %s: %v", from, err)
	}
	uids := imap.UIDSetNum(data.AllUIDs()...)
	if _, err := c.Copy(uids, to).Wait(); err != nil {
		e.t.Fatalf("copy %s to %s: %v", from, to, err)
	}
	if err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		e.t.Fatalf("store in %s: %v", from, err)
	}
	if err := c.Expunge().Close(); err != nil {
		e.t.Fatalf("expunge %s: %v", from, err)
	}
}

// interop runs the suite every real server passes: a cycle flags one
// message into review and forwards the clean ones, a second reads nothing
// again, the release loop forwards what a reviewer moved from review to
// release, and a last cycle sends nothing twice. review and release are
// the server's names of the folders.
func (e *serverEnv) interop(p *Poller, review, release string, uidplus bool) {
	e.t.Helper()
	e.append("INBOX", encryptedMessage("interop-enc-1"))
	e.append("INBOX", cleanMessage("interop-clean-1"))
	e.append("INBOX", cleanMessage("interop-clean-2"))
	if rep := e.cycle(p); rep.Counts.Flagged != 1 || rep.Counts.Forwarded != 2 {
		e.t.Fatalf("first cycle: %+v", rep.Counts)
	}
	if got := e.count(review); got != 1 {
		e.t.Fatalf("%s holds %d messages, want the flagged one", review, got)
	}
	if rep := e.cycle(p); rep.Counts.Seen != 0 || rep.Counts.Forwarded != 0 {
		e.t.Fatalf("second cycle: %+v, want nothing read again", rep.Counts)
	}
	e.moveAll(review, release)
	if rep := e.cycle(p); rep.Counts.Forwarded != 1 {
		e.t.Fatalf("release cycle: %+v", rep.Counts)
	}
	// Without UIDPLUS the released original stays, marked \Deleted.
	if got := e.count(release); got != 0 && uidplus {
		e.t.Errorf("%s holds %d messages after the release loop", release, got)
	}
	if rep := e.cycle(p); rep.Counts.Forwarded != 0 {
		e.t.Fatalf("last cycle forwarded %d again", rep.Counts.Forwarded)
	}
	if e.sink.Count() != 3 {
		e.t.Errorf("sink got %d messages, want the two clean ones and the released one", e.sink.Count())
	}
}
