package poller

import (
	"context"
	"fmt"

	"github.com/emersion/go-imap/v2"

	"github.com/mailtriage/mailtriage/notify"
)

// Digester sends the review folder's digest to an operator once per
// period. notify.Digester implements it.
type Digester interface {
	// Due claims the digest for now; true means send it.
	Due(ctx context.Context, mailbox string) (bool, error)
	Send(ctx context.Context, mailbox string, items []notify.DigestItem) error
}

// digestReasons are the keywords a digest counts, with its words for them.
var digestReasons = []struct {
	flag imap.Flag
	word string
}{
	{KeywordEncrypted, "encrypted"},
	{KeywordUnparseable, "unparseable"},
	{KeywordPrivateRelay, "private relay"},
	{KeywordForwardFailed, "forward failed"},
}

// digest sends the review folder's digest when one is due: every
// message's flags, INTERNALDATE and envelope (From, Subject), never a
// body. It runs at the end of a cycle; a failure is logged.
func (cy *cycle) digest() {
	p := cy.p
	dg := p.mb.Digest
	if dg == nil {
		return
	}
	due, err := dg.Due(cy.ctx, p.mb.Name)
	if err != nil {
		p.m.StoreError(p.mb.Name)
		p.log.Warn("digest not sent", "error", err)
		return
	}
	if !due {
		return
	}
	items, err := cy.reviewItems()
	if err == nil {
		err = dg.Send(cy.ctx, p.mb.Name, items)
	}
	if err != nil {
		p.log.Warn("digest not sent", "error", err)
		return
	}
	p.log.Info("digest sent", "messages", len(items))
}

// reviewItems reads the review folder for the digest.
func (cy *cycle) reviewItems() ([]notify.DigestItem, error) {
	folder := cy.p.mb.ReviewFolder
	ok, err := cy.c.exists(cy.ctx, folder)
	if err != nil || !ok {
		return nil, err
	}
	sel, err := cy.c.selectFolder(cy.ctx, folder, true)
	if err != nil || sel.NumMessages == 0 {
		return nil, err
	}
	var items []notify.DigestItem
	err = cy.c.do(cy.ctx, func() error {
		bufs, err := cy.c.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, InternalDate: true, Envelope: true}).Collect()
		for _, b := range bufs {
			it := notify.DigestItem{Arrived: b.InternalDate, Notified: hasFlag(b.Flags, KeywordNotified)}
			if e := b.Envelope; e != nil {
				it.Subject = e.Subject
				if len(e.From) > 0 {
					it.From = e.From[0].Addr()
					if e.From[0].Name != "" {
						it.From = e.From[0].Name + " <" + it.From + ">"
					}
				}
			}
			for _, r := range digestReasons {
				if hasFlag(b.Flags, r.flag) {
					it.Reasons = append(it.Reasons, r.word)
				}
			}
			items = append(items, it)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch the digest of %s: %w", folder, err)
	}
	return items, nil
}
