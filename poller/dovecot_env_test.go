package poller

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/analyzer"
	"github.com/mailtriage/mailtriage/internal/credential"
	"github.com/mailtriage/mailtriage/internal/secret"
	"github.com/mailtriage/mailtriage/internal/testenv"
)

// dovecotEnv is env with a private Dovecot as the IMAP server, for what
// the in-process server does not do (namespaces, special-use folders).
type dovecotEnv struct {
	*env
	dc *testenv.Dovecot
}

func newDovecotEnv(t *testing.T, opt testenv.DovecotOptions) *dovecotEnv {
	t.Helper()
	e := newEnv(t, envOptions{})
	return &dovecotEnv{env: e, dc: testenv.StartDovecotWith(t, opt)}
}

// poller is a poller of the test mailbox on Dovecot.
func (e *dovecotEnv) poller(fw Forwarder, edit func(*Mailbox)) *Poller {
	mb := e.mailbox()
	mb.IMAP.Address, mb.IMAP.TLS, mb.IMAP.RootCAs = e.dc.Addr, TLSImplicit, e.dc.RootCAs
	mb.IMAP.Auth = credential.Auth{Mechanism: credential.Plain, Username: e.dc.User, Secret: credential.Static(secret.New(e.dc.Password))}
	if edit != nil {
		edit(&mb)
	}
	if fw == nil {
		fw = e.fw
	}
	return New(mb, analyzer.New(nil), e.st, fw, e.metrics, e.log)
}

// append delivers raw to folder over IMAP.
func (e *dovecotEnv) append(folder, raw string) {
	e.t.Helper()
	c := e.dc.Dial(e.t, e.dc.User, e.dc.Password)
	defer c.Close()
	testenv.Append(e.t, c, folder, []byte(raw))
}

// count is the number of messages in folder not marked \Deleted.
func (e *dovecotEnv) count(folder string) int {
	e.t.Helper()
	c := e.dc.Dial(e.t, e.dc.User, e.dc.Password)
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

// moveAll moves every message of from to to, creating to, as a reviewer's
// mail client does.
func (e *dovecotEnv) moveAll(from, to string) {
	e.t.Helper()
	c := e.dc.Dial(e.t, e.dc.User, e.dc.Password)
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
	if _, err := c.Move(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, to).Wait(); err != nil {
		e.t.Fatalf("move %s to %s: %v", from, to, err)
	}
}
